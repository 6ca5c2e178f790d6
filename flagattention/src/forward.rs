//! The forward pass: each task owns one (batch, head, block of query rows) and streams the
//! key/value blocks through an online softmax (running max and sum per row), so memory is
//! O(block × D) per task and the output is written once.

use crate::dropout::Dropout;
use crate::dtype::Float;
use crate::matmul::{matmul, Lhs, Rhs, NR};
use crate::pack;
use crate::shape::{check, Dims};
use crate::vexp::{exp_affine, max};
use crate::Result;
use flagcore::TensorView;
use rayon::prelude::*;

/// Query rows per task and keys per block (a multiple of the packed panels' width).
pub(crate) const BR: usize = 64;
pub(crate) const BC: usize = 128;
const _: () = assert!(BC.is_multiple_of(NR));

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Bottom-right aligned causal mask.
    pub causal: bool,
    /// Scale of q·k; FlagAttention's default is 1/√D.
    pub sm_scale: f32,
    /// Dropout on the probabilities (the backward regenerates the same mask).
    pub dropout: Option<Dropout>,
    /// Also return the total attention each key receives.
    pub total_attention: bool,
}

impl Options {
    /// Non-causal, no dropout, with the default scale 1/√`head_dim`.
    pub fn new(head_dim: usize) -> Self {
        Options {
            causal: false,
            sm_scale: 1.0 / (head_dim as f32).sqrt(),
            dropout: None,
            total_attention: false,
        }
    }
}

/// The forward outputs, row-major: `o` (B, Hq, M, D) in the inputs' type; `lse` (B, Hq, M),
/// the natural log-sum-exp of each row's scaled scores, −∞ for a row that sees no key; and,
/// when asked for, `total` (B, Hq, N): each key's probability summed over the query rows
/// (before dropout).
#[derive(Clone, Debug)]
pub struct Attention<T> {
    pub dims: Dims,
    /// The options it ran with: the backward must use the same.
    pub opts: Options,
    pub o: Vec<T>,
    pub lse: Vec<f32>,
    pub total: Option<Vec<f32>>,
}

/// Σ a_i·b_i in sixteen independent lanes, so it vectorises without reassociating floats.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// The last key row `i` (of `m`) may see among `n` keys, bottom-right aligned; `None` when
/// it sees none. Without the causal mask every row sees all keys.
#[inline]
pub(crate) fn last_visible(i: usize, m: usize, n: usize, causal: bool) -> Option<usize> {
    if !causal {
        return n.checked_sub(1);
    }
    let lim = i as i64 + n as i64 - m as i64;
    (lim >= 0).then(|| (lim as usize).min(n.saturating_sub(1)))
}

/// How many of the keys `c0..c0 + c` row `i` sees (they are a prefix).
#[inline]
pub(crate) fn visible(i: usize, c0: usize, c: usize, dims: Dims, causal: bool) -> usize {
    match last_visible(i, dims.m, dims.n, causal) {
        Some(lim) if lim >= c0 => (lim + 1 - c0).min(c),
        _ => 0,
    }
}

/// Keys rows `r0..r0 + r` see at most: one past the last visible key of the block's last
/// row (the latest under the bottom-right mask); 0 when none sees any.
#[inline]
pub(crate) fn reach(r0: usize, r: usize, m: usize, n: usize, causal: bool) -> usize {
    match r {
        0 => 0,
        _ => last_visible(r0 + r - 1, m, n, causal).map_or(0, |l| l + 1),
    }
}

/// The packed inputs every pass reads: q as rows, k as transposed panels.
pub(crate) struct Packed {
    pub dims: Dims,
    pub opts: Options,
    pub q: Vec<f32>,
    pub kt: Vec<f32>,
}

impl Packed {
    /// Head `h`'s rows `r0..r0 + r` of q.
    pub fn q_rows(&self, bi: usize, h: usize, r0: usize, r: usize) -> &[f32] {
        let Dims { hq, m, d, .. } = self.dims;
        &self.q[((bi * hq + h) * m + r0) * d..][..r * d]
    }

    /// Key head `kh`'s transposed panels from key `c0` (a multiple of [`NR`]) on.
    pub fn kt_from(&self, bi: usize, kh: usize, c0: usize) -> &[f32] {
        panels_from(&self.kt, self.dims, bi, kh, c0)
    }

    /// The unscaled scores q·kᵀ (r × c, row stride c) of head `h`'s rows `r0..` against keys
    /// `c0..` (a multiple of [`NR`]).
    #[allow(clippy::too_many_arguments)]
    pub fn scores(
        &self,
        s: &mut [f32],
        bi: usize,
        h: usize,
        r0: usize,
        r: usize,
        c0: usize,
        c: usize,
    ) {
        let d = self.dims.d;
        let kh = h / self.dims.group();
        matmul(
            s,
            c,
            r,
            c,
            d,
            Lhs::rows(self.q_rows(bi, h, r0, r), d),
            Rhs::panels(self.kt_from(bi, kh, c0), d),
            false,
        );
    }

    /// The probabilities exp(scale·q·k − lse_i) (r × c) of head `h`'s rows `r0..` against
    /// keys `c0..`, 0 where masked; `lse` holds the head's log-sum-exps.
    #[allow(clippy::too_many_arguments)]
    pub fn probabilities(
        &self,
        s: &mut [f32],
        bi: usize,
        h: usize,
        r0: usize,
        r: usize,
        c0: usize,
        c: usize,
        lse: &[f32],
    ) {
        self.scores(s, bi, h, r0, r, c0, c);
        for (i, si) in s.chunks_exact_mut(c).enumerate() {
            let l = lse[r0 + i];
            let vis = match l.is_finite() {
                true => visible(r0 + i, c0, c, self.dims, self.opts.causal),
                false => 0,
            };
            exp_affine(&mut si[..vis], self.opts.sm_scale, -l);
            si[vis..].fill(0.0);
        }
    }
}

/// Key head `kh`'s part of `panels` (packed by [`pack::panels`] from (B, Hk, N, D)) from key
/// `c0` (a multiple of [`NR`]) on.
pub(crate) fn panels_from(panels: &[f32], dims: Dims, bi: usize, kh: usize, c0: usize) -> &[f32] {
    let Dims { hk, n, d, .. } = dims;
    let len = pack::panel_len(n, d);
    &panels[(bi * hk + kh) * len..][..len][c0 * d..]
}

/// Key head `kh`'s rows of `rows` (B, Hk, N, D) from key `c0` on.
pub(crate) fn keys_from(rows: &[f32], dims: Dims, bi: usize, kh: usize, c0: usize) -> &[f32] {
    let Dims { hk, n, d, .. } = dims;
    &rows[((bi * hk + kh) * n + c0) * d..(bi * hk + kh + 1) * n * d]
}

/// Attention of q (B, Hq, M, D) over k, v (B, Hk, N, D).
pub fn flash_attention<T: Float>(
    q: &TensorView<'_, T>,
    k: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    opts: Options,
) -> Result<Attention<T>> {
    let dims = check(q, k, v, &opts)?;
    let Dims { b, hq, m, n, d, .. } = dims;
    let mut o = vec![T::from_f32(0.0); b * hq * m * d];
    let mut lse = vec![f32::NEG_INFINITY; b * hq * m];
    let total_len = b * hq * n;
    if m == 0 || n == 0 {
        let total = opts.total_attention.then(|| vec![0f32; total_len]);
        return Ok(Attention {
            dims,
            opts,
            o,
            lse,
            total,
        });
    }
    let p = Packed {
        dims,
        opts,
        q: pack::rows(q),
        kt: pack::panels(&pack::rows(k), n, d),
    };
    let vr = pack::rows(v);
    o.par_chunks_mut(m * d)
        .zip(lse.par_chunks_mut(m))
        .enumerate()
        .for_each(|(bh, (o_head, lse_head))| {
            o_head
                .par_chunks_mut(BR * d)
                .zip(lse_head.par_chunks_mut(BR))
                .enumerate()
                .for_each(|(blk, (o_blk, lse_blk))| {
                    block(&p, &vr, bh / hq, bh % hq, blk * BR, o_blk, lse_blk);
                });
        });
    let total = opts.total_attention.then(|| {
        let mut t = vec![0f32; total_len];
        crate::total::total_attention(&p, &lse, &mut t);
        t
    });
    Ok(Attention {
        dims,
        opts,
        o,
        lse,
        total,
    })
}

/// One block of query rows `r0..` (as many as `lse_blk` holds) of head `h`.
#[allow(clippy::too_many_arguments)]
fn block<T: Float>(
    p: &Packed,
    v: &[f32],
    bi: usize,
    h: usize,
    r0: usize,
    o_blk: &mut [T],
    lse_blk: &mut [f32],
) {
    let Dims { hq, m, n, d, .. } = p.dims;
    let opts = p.opts;
    let kh = h / p.dims.group();
    let r = lse_blk.len();
    let mut acc = vec![0f32; r * d];
    let mut row_max = vec![f32::NEG_INFINITY; r];
    let mut row_sum = vec![0f32; r];
    // Scores, then probabilities, of the block: r × c.
    let mut s = vec![0f32; r * BC];
    let mut c0 = 0;
    while c0 < reach(r0, r, m, n, opts.causal) {
        let c = BC.min(n - c0);
        let s = &mut s[..r * c];
        p.scores(s, bi, h, r0, r, c0, c);
        for (i, si) in s.chunks_exact_mut(c).enumerate() {
            let vis = visible(r0 + i, c0, c, p.dims, opts.causal);
            si[vis..].fill(0.0);
            if vis == 0 {
                continue;
            }
            // The scale is positive, so the largest score scales to the largest.
            let new_max = row_max[i].max(max(&si[..vis]) * opts.sm_scale);
            let alpha = (row_max[i] - new_max).exp();
            if alpha != 1.0 {
                acc[i * d..(i + 1) * d].iter_mut().for_each(|x| *x *= alpha);
            }
            let sum = exp_affine(&mut si[..vis], opts.sm_scale, -new_max);
            row_sum[i] = row_sum[i] * alpha + sum;
            row_max[i] = new_max;
            if let Some(drop) = opts.dropout {
                drop.apply(p.dims, bi * hq + h, r0 + i, c0, &mut si[..vis]);
            }
        }
        // acc += P · V
        matmul(
            &mut acc,
            d,
            r,
            d,
            c,
            Lhs::rows(s, c),
            Rhs::rows(keys_from(v, p.dims, bi, kh, c0), d),
            true,
        );
        c0 += c;
    }
    for (i, (row, out)) in acc
        .chunks_exact_mut(d)
        .zip(o_blk.chunks_exact_mut(d))
        .enumerate()
    {
        if row_sum[i] > 0.0 {
            let inv = 1.0 / row_sum[i];
            row.iter_mut().for_each(|x| *x *= inv);
            lse_blk[i] = row_max[i] + row_sum[i].ln();
        } else {
            row.fill(0.0);
            lse_blk[i] = f32::NEG_INFINITY;
        }
        T::rows_from_f32(row, out);
    }
}
