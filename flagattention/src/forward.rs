//! The forward pass: each task owns one (batch, head, block of query rows) and streams the
//! key/value blocks through an online softmax (running max and sum per row), so memory is
//! O(block × D) per task and the output is written once.

use crate::matmul::{matmul, Mat};
use crate::shape::{check, rows, Dims};
use crate::vexp::exp_inplace;
use crate::Result;
use flagcore::TensorView;
use rayon::prelude::*;

/// Query rows per task and keys per block.
pub(crate) const BR: usize = 64;
pub(crate) const BC: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Bottom-right aligned causal mask.
    pub causal: bool,
    /// Scale of q·k; FlagAttention's default is 1/√D.
    pub sm_scale: f32,
}

impl Options {
    /// Non-causal with the default scale 1/√`head_dim`.
    pub fn new(head_dim: usize) -> Self {
        Options {
            causal: false,
            sm_scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }
}

/// The forward outputs: `o` (B, Hq, M, D) and the log-sum-exp of each row's scaled scores
/// `lse` (B, Hq, M), −∞ for a row that sees no key; both row-major.
#[derive(Clone, Debug)]
pub struct Attention {
    pub dims: Dims,
    /// The options it ran with: the backward must use the same.
    pub opts: Options,
    pub o: Vec<f32>,
    pub lse: Vec<f32>,
}

/// Σ a_i·b_i in eight independent lanes, so it vectorises without reassociating floats.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
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

/// Keys rows `r0..r0 + r` see at most: one past the last visible key of the block's last
/// row (the latest under the bottom-right mask); 0 when none sees any.
#[inline]
pub(crate) fn reach(r0: usize, r: usize, m: usize, n: usize, causal: bool) -> usize {
    match r {
        0 => 0,
        _ => last_visible(r0 + r - 1, m, n, causal).map_or(0, |l| l + 1),
    }
}

/// Attention of q (B, Hq, M, D) over k, v (B, Hk, N, D).
pub fn flash_attention(
    q: &TensorView<'_, f32>,
    k: &TensorView<'_, f32>,
    v: &TensorView<'_, f32>,
    opts: Options,
) -> Result<Attention> {
    let dims = check(q, k, v, opts.sm_scale)?;
    let Dims { hq, m, d, .. } = dims;
    let mut o = vec![0f32; dims.b * hq * m * d];
    let mut lse = vec![f32::NEG_INFINITY; dims.b * hq * m];
    if m == 0 || d == 0 {
        return Ok(Attention { dims, opts, o, lse });
    }
    o.par_chunks_mut(m * d)
        .zip(lse.par_chunks_mut(m))
        .enumerate()
        .for_each(|(bh, (o_head, lse_head))| {
            let (bi, h) = (bh / hq, bh % hq);
            let kh = h / dims.group();
            o_head
                .par_chunks_mut(BR * d)
                .zip(lse_head.par_chunks_mut(BR))
                .enumerate()
                .for_each(|(blk, (o_blk, lse_blk))| {
                    block(q, k, v, opts, dims, bi, h, kh, blk * BR, o_blk, lse_blk);
                });
        });
    Ok(Attention { dims, opts, o, lse })
}

/// One block of query rows `start..` (as many as `lse_blk` holds) of head `h`.
#[allow(clippy::too_many_arguments)]
fn block(
    q: &TensorView<'_, f32>,
    k: &TensorView<'_, f32>,
    v: &TensorView<'_, f32>,
    opts: Options,
    dims: Dims,
    bi: usize,
    h: usize,
    kh: usize,
    start: usize,
    o_blk: &mut [f32],
    lse_blk: &mut [f32],
) {
    let (m, n, d) = (dims.m, dims.n, dims.d);
    let r = lse_blk.len();
    let mut qb = Vec::new();
    rows(q, bi, h, start, r, &mut qb);
    let (mut kb, mut vb) = (Vec::new(), Vec::new());
    let mut row_max = vec![f32::NEG_INFINITY; r];
    let mut row_sum = vec![0f32; r];
    // Scores, then probabilities, of the block: r × c.
    let mut s = vec![0f32; r * BC];
    let last: Vec<Option<usize>> = (0..r)
        .map(|i| last_visible(start + i, m, n, opts.causal))
        .collect();
    let reach = reach(start, r, m, n, opts.causal);
    let mut c0 = 0;
    while c0 < reach {
        let c = BC.min(n - c0);
        rows(k, bi, kh, c0, c, &mut kb);
        rows(v, bi, kh, c0, c, &mut vb);
        let s = &mut s[..r * c];
        matmul(
            s,
            r,
            c,
            d,
            Mat::rows(&qb, d),
            Mat::transposed(&kb, d),
            false,
        );
        for i in 0..r {
            let si = &mut s[i * c..(i + 1) * c];
            let visible = match last[i] {
                Some(lim) if lim >= c0 => (lim + 1 - c0).min(c),
                _ => 0,
            };
            let mut bmax = f32::NEG_INFINITY;
            for x in &mut si[..visible] {
                *x *= opts.sm_scale;
                bmax = bmax.max(*x);
            }
            si[visible..].fill(0.0);
            if visible == 0 {
                continue;
            }
            let new_max = row_max[i].max(bmax);
            let alpha = (row_max[i] - new_max).exp();
            if alpha != 1.0 {
                o_blk[i * d..(i + 1) * d]
                    .iter_mut()
                    .for_each(|x| *x *= alpha);
            }
            si[..visible].iter_mut().for_each(|x| *x -= new_max);
            exp_inplace(&mut si[..visible]);
            let sum: f32 = si[..visible].iter().sum();
            row_sum[i] = row_sum[i] * alpha + sum;
            row_max[i] = new_max;
        }
        // acc += P · V
        matmul(o_blk, r, d, c, Mat::rows(s, c), Mat::rows(&vb, d), true);
        c0 += c;
    }
    for i in 0..r {
        let acc = &mut o_blk[i * d..(i + 1) * d];
        if row_sum[i] > 0.0 {
            let inv = 1.0 / row_sum[i];
            acc.iter_mut().for_each(|x| *x *= inv);
            lse_blk[i] = row_max[i] + row_sum[i].ln();
        } else {
            acc.iter_mut().for_each(|x| *x = 0.0);
            lse_blk[i] = f32::NEG_INFINITY;
        }
    }
}
