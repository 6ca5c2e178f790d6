//! The backward pass in two sweeps that never hold an M×N matrix and need no atomics:
//! over key blocks (dK, dV: each task owns its keys and walks every query of its group's
//! heads) and over query blocks (dQ: each task owns its rows). Probabilities are recomputed
//! from the forward's log-sum-exp: P = exp(scale·q·k − lse).

use crate::forward::{dot, last_visible, reach, Attention, Options, BC, BR};
use crate::matmul::{matmul, Mat};
use crate::shape::{check, expect, rows, Dims};
use crate::vexp::exp_inplace;
use crate::Result;
use flagcore::TensorView;
use rayon::prelude::*;

/// Gradients: dq (B, Hq, M, D), dk and dv (B, Hk, N, D), row-major.
#[derive(Clone, Debug)]
pub struct Grads {
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
}

/// dq, dk, dv of `fwd` (the forward of the same q, k, v and options) given `d_o`, the
/// gradient of its output (B, Hq, M, D).
pub fn flash_attention_backward(
    q: &TensorView<'_, f32>,
    k: &TensorView<'_, f32>,
    v: &TensorView<'_, f32>,
    fwd: &Attention,
    d_o: &TensorView<'_, f32>,
    opts: Options,
) -> Result<Grads> {
    let dims = check(q, k, v, opts.sm_scale)?;
    let Dims { b, hq, hk, m, n, d } = dims;
    expect("do", d_o, &[b, hq, m, d])?;
    if fwd.opts != opts {
        return Err(crate::Error::Shape {
            arg: "opts",
            message: format!("{opts:?} differ from the forward's {:?}", fwd.opts),
        });
    }
    if fwd.dims != dims || fwd.o.len() != b * hq * m * d || fwd.lse.len() != b * hq * m {
        return Err(crate::Error::Shape {
            arg: "fwd",
            message: "the forward outputs are of another problem".into(),
        });
    }
    // D_i = do_i · o_i, the softmax backward's row term.
    let mut delta = vec![0f32; b * hq * m];
    let mut dob = Vec::new();
    for bh in 0..b * hq {
        rows(d_o, bh / hq, bh % hq, 0, m, &mut dob);
        for i in 0..m {
            let at = (bh * m + i) * d;
            delta[bh * m + i] = dot(&dob[i * d..(i + 1) * d], &fwd.o[at..at + d]);
        }
    }
    let ctx = Ctx {
        q,
        k,
        v,
        d_o,
        lse: &fwd.lse,
        delta: &delta,
        dims,
        opts,
    };
    let mut dk = vec![0f32; b * hk * n * d];
    let mut dv = vec![0f32; b * hk * n * d];
    if n > 0 {
        dk.par_chunks_mut(n * d)
            .zip(dv.par_chunks_mut(n * d))
            .enumerate()
            .for_each(|(bk, (dk_head, dv_head))| {
                dk_head
                    .par_chunks_mut(BC * d)
                    .zip(dv_head.par_chunks_mut(BC * d))
                    .enumerate()
                    .for_each(|(blk, (dk_blk, dv_blk))| {
                        ctx.key_block(bk / hk, bk % hk, blk * BC, dk_blk, dv_blk)
                    });
            });
    }
    let mut dq = vec![0f32; b * hq * m * d];
    if m > 0 {
        dq.par_chunks_mut(m * d)
            .enumerate()
            .for_each(|(bh, dq_head)| {
                dq_head
                    .par_chunks_mut(BR * d)
                    .enumerate()
                    .for_each(|(blk, dq_blk)| ctx.query_block(bh / hq, bh % hq, blk * BR, dq_blk));
            });
    }
    Ok(Grads { dq, dk, dv })
}

/// A block of the score matrix: rows `r0..r0 + r` of query head `h` in batch `bi` against
/// keys `c0..c0 + c`.
#[derive(Clone, Copy)]
struct Tile {
    bi: usize,
    h: usize,
    r0: usize,
    r: usize,
    c0: usize,
    c: usize,
}

struct Ctx<'a, 'v> {
    q: &'a TensorView<'v, f32>,
    k: &'a TensorView<'v, f32>,
    v: &'a TensorView<'v, f32>,
    d_o: &'a TensorView<'v, f32>,
    lse: &'a [f32],
    delta: &'a [f32],
    dims: Dims,
    opts: Options,
}

impl Ctx<'_, '_> {
    /// Probabilities (r × c, in `s`, which holds the scores q·kᵀ on entry) of rows `r0..` of
    /// head `h` against keys `c0..`: exp(scale·s − lse), 0 where masked.
    fn probabilities(&self, s: &mut [f32], t: Tile) {
        let Tile {
            bi,
            h,
            r0,
            r,
            c0,
            c,
        } = t;
        let Dims { hq, m, n, .. } = self.dims;
        for i in 0..r {
            let si = &mut s[i * c..(i + 1) * c];
            let lse = self.lse[(bi * hq + h) * m + r0 + i];
            let visible = match last_visible(r0 + i, m, n, self.opts.causal) {
                Some(lim) if lim >= c0 && lse.is_finite() => (lim + 1 - c0).min(c),
                _ => 0,
            };
            for x in &mut si[..visible] {
                *x = self.opts.sm_scale * *x - lse;
            }
            exp_inplace(&mut si[..visible]);
            si[visible..].fill(0.0);
        }
    }

    /// dS = P ∘ (dP − D) · scale, in place of dP (r × c).
    fn score_grads(&self, dp: &mut [f32], p: &[f32], t: Tile) {
        let Tile {
            bi, h, r0, r, c, ..
        } = t;
        let Dims { hq, m, .. } = self.dims;
        for i in 0..r {
            let delta = self.delta[(bi * hq + h) * m + r0 + i];
            for (x, &pij) in dp[i * c..(i + 1) * c]
                .iter_mut()
                .zip(&p[i * c..(i + 1) * c])
            {
                *x = pij * (*x - delta) * self.opts.sm_scale;
            }
        }
    }

    /// P (into `s`) and dS (into `dp`) of tile `t` from its rows of q and do (`qb`, `ob`) and
    /// its keys and values (`kb`, `vb`): what both sweeps need before they accumulate.
    #[allow(clippy::too_many_arguments)]
    fn tile(
        &self,
        t: Tile,
        qb: &[f32],
        ob: &[f32],
        kb: &[f32],
        vb: &[f32],
        s: &mut [f32],
        dp: &mut [f32],
    ) {
        let (r, c, d) = (t.r, t.c, self.dims.d);
        matmul(s, r, c, d, Mat::rows(qb, d), Mat::transposed(kb, d), false);
        self.probabilities(s, t);
        matmul(dp, r, c, d, Mat::rows(ob, d), Mat::transposed(vb, d), false);
        self.score_grads(dp, s, t);
    }

    /// dK, dV of keys `c0..` (as many as the block holds) of key head `kh`.
    fn key_block(&self, bi: usize, kh: usize, c0: usize, dk: &mut [f32], dv: &mut [f32]) {
        let Dims { m, n, d, .. } = self.dims;
        let c = dk.len() / d;
        let (mut kb, mut vb, mut qb, mut ob) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut s, mut dp) = (vec![0f32; BR * c], vec![0f32; BR * c]);
        rows(self.k, bi, kh, c0, c, &mut kb);
        rows(self.v, bi, kh, c0, c, &mut vb);
        let g = self.dims.group();
        for h in kh * g..(kh + 1) * g {
            let mut r0 = 0;
            while r0 < m {
                let r = BR.min(m - r0);
                // Rows whose last visible key is before this block contribute nothing.
                if reach(r0, r, m, n, self.opts.causal) > c0 {
                    rows(self.q, bi, h, r0, r, &mut qb);
                    rows(self.d_o, bi, h, r0, r, &mut ob);
                    let (s, dp) = (&mut s[..r * c], &mut dp[..r * c]);
                    let t = Tile {
                        bi,
                        h,
                        r0,
                        r,
                        c0,
                        c,
                    };
                    self.tile(t, &qb, &ob, &kb, &vb, s, dp);
                    matmul(dv, c, d, r, Mat::transposed(s, c), Mat::rows(&ob, d), true);
                    matmul(dk, c, d, r, Mat::transposed(dp, c), Mat::rows(&qb, d), true);
                }
                r0 += r;
            }
        }
    }

    /// dQ of rows `r0..` (as many as the block holds) of query head `h`.
    fn query_block(&self, bi: usize, h: usize, r0: usize, dq: &mut [f32]) {
        let Dims { m, n, d, .. } = self.dims;
        let r = dq.len() / d;
        let kh = h / self.dims.group();
        let (mut qb, mut ob, mut kb, mut vb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut s, mut dp) = (vec![0f32; r * BC], vec![0f32; r * BC]);
        rows(self.q, bi, h, r0, r, &mut qb);
        rows(self.d_o, bi, h, r0, r, &mut ob);
        let mut c0 = 0;
        while c0 < reach(r0, r, m, n, self.opts.causal) {
            let c = BC.min(n - c0);
            rows(self.k, bi, kh, c0, c, &mut kb);
            rows(self.v, bi, kh, c0, c, &mut vb);
            let (s, dp) = (&mut s[..r * c], &mut dp[..r * c]);
            self.tile(
                Tile {
                    bi,
                    h,
                    r0,
                    r,
                    c0,
                    c,
                },
                &qb,
                &ob,
                &kb,
                &vb,
                s,
                dp,
            );
            matmul(dq, r, d, c, Mat::rows(dp, c), Mat::rows(&kb, d), true);
            c0 += c;
        }
    }
}
