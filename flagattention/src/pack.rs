//! Each input copied once per call into the f32 layouts the matrix products read directly:
//! contiguous rows (B, H, T, D), and for operands used transposed (kᵀ, vᵀ), panels of
//! [`NR`] rows each stored column by column. Both are O(T·D) per head, against the O(T²·D)
//! products that read them.

use crate::dtype::Float;
use crate::matmul::NR;
use flagcore::TensorView;
use rayon::prelude::*;

/// A (B, H, T, D) view as contiguous f32, whatever its strides and element type.
pub(crate) fn rows<T: Float>(v: &TensorView<'_, T>) -> Vec<f32> {
    let (sh, s) = (v.shape(), v.strides());
    let (heads, t, d) = (sh[1], sh[2], sh[3]);
    let data = v.data();
    let mut out = vec![0f32; v.numel()];
    if t * d == 0 {
        return out;
    }
    out.par_chunks_mut(t * d)
        .enumerate()
        .for_each(|(bh, head)| {
            let base = (bh / heads) * s[0] + (bh % heads) * s[1];
            for (r, row) in head.chunks_exact_mut(d).enumerate() {
                let at = base + r * s[2];
                if s[3] == 1 {
                    T::rows_to_f32(&data[at..at + d], row);
                } else {
                    row.iter_mut()
                        .enumerate()
                        .for_each(|(c, x)| *x = data[at + c * s[3]].to_f32());
                }
            }
        });
    out
}

/// Elements per head of [`panels`] for `t` rows of `d`.
pub(crate) fn panel_len(t: usize, d: usize) -> usize {
    t.div_ceil(NR) * NR * d
}

/// The transpose of each head's rows (`heads` heads of `t` × `d`, contiguous) in panels of
/// [`NR`] rows: element (c, j) of head h's transpose at `h·panel_len + (j / NR)·NR·d + c·NR +
/// j % NR`, zero past row `t`.
pub(crate) fn panels(rows: &[f32], t: usize, d: usize) -> Vec<f32> {
    let len = panel_len(t, d);
    let mut out = vec![0f32; rows.len() / (t * d).max(1) * len];
    if len == 0 {
        return out;
    }
    out.par_chunks_mut(len)
        .zip(rows.par_chunks(t * d))
        .for_each(|(dst, src)| {
            for (j, row) in src.chunks_exact(d).enumerate() {
                let panel = &mut dst[(j / NR) * NR * d..];
                for (c, &x) in row.iter().enumerate() {
                    panel[c * NR + j % NR] = x;
                }
            }
        });
    out
}
