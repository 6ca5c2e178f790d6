//! Decoding attention (Dao et al., 2023, "Flash-Decoding for long-context inference"): when
//! a few query rows meet a long key/value cache, one task per query block would leave
//! threads idle, so the keys are split into parts attended in parallel, each giving an
//! output normalised over its part and that part's log-sum-exp, and the parts are combined:
//! lse = log Σ_s e^(lse_s), o = Σ_s e^(lse_s − lse)·o_s. The same results as
//! [`crate::flash_attention`] (total attention and dropout included), forward only.

use crate::dtype::Float;
use crate::forward::{forward, query_block, Attention, Ctx, Options, BC};
use crate::shape::{check, Dims};
use crate::{Error, Result};
use flagcore::TensorView;
use rayon::prelude::*;

/// Parts enough for every thread to have two tasks, none shorter than four key blocks.
fn default_splits(dims: Dims, opts: Options) -> usize {
    let tasks = dims.b * dims.hq * dims.m.div_ceil(query_block(opts));
    let want = (2 * rayon::current_num_threads()).div_ceil(tasks.max(1));
    want.clamp(1, dims.n.div_ceil(4 * BC).max(1))
}

/// Attention of q (B, Hq, M, D) over k, v (B, Hk, N, D) with the keys split into `splits`
/// parts (whole key blocks; fewer when there are fewer blocks), or into as many as keep the
/// threads busy when `splits` is None.
pub fn flash_attention_split_kv<T: Float>(
    q: &TensorView<'_, T>,
    k: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    opts: Options,
    splits: Option<usize>,
) -> Result<Attention<T>> {
    let dims = check(q, k, v, &opts)?;
    let splits = match splits {
        Some(0) => return Err(Error::shape("splits", "must be at least 1")),
        Some(s) => s,
        None => default_splits(dims, opts),
    };
    let splits = splits.min(dims.n.div_ceil(BC)).max(1);
    Ok(forward(&[(q, k)], v, dims, None, opts, splits))
}

/// Query rows `r0..` of head `bh` against all keys in `splits` parts (whole blocks), in
/// parallel, combined into `out` and `lse_out` as [`Ctx::attend`] would give them.
pub(crate) fn attend(
    ctx: &Ctx<'_>,
    bh: usize,
    r0: usize,
    splits: usize,
    out: &mut [f32],
    lse_out: &mut [f32],
) {
    let (n, r) = (ctx.dims().n, lse_out.len());
    let d = out.len() / r.max(1);
    let blocks = n.div_ceil(BC);
    let part = |s: usize| (s * blocks / splits * BC).min(n);
    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..splits)
        .into_par_iter()
        .map(|s| {
            let (mut o, mut l) = (vec![0f32; r * d], vec![0f32; r]);
            ctx.attend(bh, r0, part(s)..part(s + 1), &mut o, &mut l);
            (o, l)
        })
        .collect();
    let mut weights = vec![0f32; splits];
    for (i, (row, lse)) in out.chunks_exact_mut(d).zip(lse_out.iter_mut()).enumerate() {
        // A NaN part (from NaN inputs) makes the row NaN.
        let top = (parts.iter().map(|p| p.1[i])).fold(f32::NEG_INFINITY, |a, x| {
            if x > a || x.is_nan() {
                x
            } else {
                a
            }
        });
        row.fill(0.0);
        *lse = top;
        if top == f32::NEG_INFINITY {
            continue;
        }
        for (w, p) in weights.iter_mut().zip(&parts) {
            *w = (p.1[i] - top).exp();
        }
        let total: f32 = weights.iter().sum();
        for (p, w) in parts.iter().zip(&weights) {
            let (w, src) = (w / total, &p.0[i * d..(i + 1) * d]);
            row.iter_mut().zip(src).for_each(|(o, x)| *o += w * x);
        }
        *lse = top + total.ln();
    }
}
