//! Decoding attention (Dao et al., 2023, "Flash-Decoding for long-context inference"): when
//! a few query rows meet a long key/value cache, one task per query block would leave
//! threads idle, so the keys are split into parts attended in parallel, each giving an
//! output normalised over its part and that part's log-sum-exp, and the parts are combined:
//! lse = log Σ_s e^(lse_s), o = Σ_s e^(lse_s − lse)·o_s. The same results as
//! [`crate::flash_attention`] (total attention and dropout included), forward only.

use crate::dtype::Float;
use crate::forward::{finish, Attention, Ctx, Options, BC, BR};
use crate::shape::{check, Dims};
use crate::{pack, Error, Result};
use flagcore::TensorView;
use rayon::prelude::*;

/// Parts enough for every thread to have two tasks, none shorter than four key blocks.
pub fn default_splits(dims: Dims) -> usize {
    let tasks = dims.b * dims.hq * dims.m.div_ceil(BR);
    let want = (2 * rayon::current_num_threads()).div_ceil(tasks.max(1));
    want.clamp(1, dims.n.div_ceil(4 * BC).max(1))
}

/// Attention of q (B, Hq, M, D) over k, v (B, Hk, N, D) with the keys split into `splits`
/// parts (whole key blocks; fewer when there are fewer blocks).
pub fn flash_attention_split_kv<T: Float>(
    q: &TensorView<'_, T>,
    k: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    opts: Options,
    splits: usize,
) -> Result<Attention<T>> {
    let dims = check(q, k, v, &opts)?;
    if splits == 0 {
        return Err(Error::Shape {
            arg: "splits",
            message: "must be at least 1".into(),
        });
    }
    let Dims { b, hq, m, n, d, .. } = dims;
    let mut o = vec![T::from_f32(0.0); b * hq * m * d];
    let mut lse = vec![f32::NEG_INFINITY; b * hq * m];
    let (qr, kr) = (pack::rows(q), pack::rows(k));
    if m == 0 || n == 0 {
        return Ok(finish(dims, opts, o, lse, &[(&qr, &kr)], None));
    }
    let ctx = Ctx::new(dims, opts, &[(&qr, &kr)], None, &pack::rows(v));
    let blocks = n.div_ceil(BC);
    let splits = splits.min(blocks);
    let part = |s: usize| (s * blocks / splits * BC).min(n);
    o.par_chunks_mut(m * d)
        .zip(lse.par_chunks_mut(m))
        .enumerate()
        .for_each(|(bh, (o_head, lse_head))| {
            o_head
                .par_chunks_mut(BR * d)
                .zip(lse_head.par_chunks_mut(BR))
                .enumerate()
                .for_each(|(blk, (o_blk, lse_blk))| {
                    let r = lse_blk.len();
                    let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..splits)
                        .into_par_iter()
                        .map(|s| {
                            let (mut out, mut l) = (vec![0f32; r * d], vec![0f32; r]);
                            ctx.attend(bh, blk * BR, part(s)..part(s + 1), &mut out, &mut l);
                            (out, l)
                        })
                        .collect();
                    let mut row = vec![0f32; d];
                    for i in 0..r {
                        let top = parts
                            .iter()
                            .map(|p| p.1[i])
                            // A NaN part (from NaN inputs) makes the row NaN.
                            .fold(
                                f32::NEG_INFINITY,
                                |a, x| if x > a || x.is_nan() { x } else { a },
                            );
                        row.fill(0.0);
                        if top == f32::NEG_INFINITY {
                            T::rows_from_f32(&row, &mut o_blk[i * d..(i + 1) * d]);
                            continue;
                        }
                        let weights: Vec<f32> =
                            parts.iter().map(|p| (p.1[i] - top).exp()).collect();
                        let total: f32 = weights.iter().sum();
                        for (p, w) in parts.iter().zip(&weights) {
                            let w = w / total;
                            let src = &p.0[i * d..(i + 1) * d];
                            row.iter_mut().zip(src).for_each(|(o, x)| *o += w * x);
                        }
                        lse_blk[i] = top + total.ln();
                        T::rows_from_f32(&row, &mut o_blk[i * d..(i + 1) * d]);
                    }
                });
        });
    Ok(finish(dims, opts, o, lse, &[(&qr, &kr)], None))
}
