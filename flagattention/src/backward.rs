//! The backward pass in two sweeps that never hold an M×N matrix and need no atomics:
//! over key blocks (dK, dV: each task owns its keys and walks every query of its group's
//! heads) and over query blocks (dQ: each task owns its rows). Probabilities are recomputed
//! from the forward's log-sum-exp: P = exp(scale·q·k − lse).

use crate::forward::{axpy, dot, last_visible, Attention, Options, BC, BR};
use crate::shape::{check, expect, rows, Dims};
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
    /// dK, dV of keys `c0..` (as many as the block holds) of key head `kh`.
    fn key_block(&self, bi: usize, kh: usize, c0: usize, dk: &mut [f32], dv: &mut [f32]) {
        let Dims { hq, m, n, d, .. } = self.dims;
        let c = dk.len() / d;
        let (mut kb, mut vb, mut qb, mut ob) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        rows(self.k, bi, kh, c0, c, &mut kb);
        rows(self.v, bi, kh, c0, c, &mut vb);
        let g = self.dims.group();
        for h in kh * g..(kh + 1) * g {
            let mut r0 = 0;
            while r0 < m {
                let r = BR.min(m - r0);
                // Rows whose last visible key is before this block contribute nothing.
                let sees =
                    |i: usize| last_visible(i, m, n, self.opts.causal).is_some_and(|l| l >= c0);
                if !sees(r0 + r - 1) {
                    r0 += r;
                    continue;
                }
                rows(self.q, bi, h, r0, r, &mut qb);
                rows(self.d_o, bi, h, r0, r, &mut ob);
                for i in 0..r {
                    let gi = r0 + i;
                    let Some(lim) = last_visible(gi, m, n, self.opts.causal) else {
                        continue;
                    };
                    if lim < c0 {
                        continue;
                    }
                    let row = (bi * hq + h) * m + gi;
                    let (lse, delta) = (self.lse[row], self.delta[row]);
                    let (qi, doi) = (&qb[i * d..(i + 1) * d], &ob[i * d..(i + 1) * d]);
                    for j in 0..(lim + 1 - c0).min(c) {
                        let p = (self.opts.sm_scale * dot(qi, &kb[j * d..(j + 1) * d]) - lse).exp();
                        axpy(&mut dv[j * d..(j + 1) * d], p, doi);
                        let ds = p * (dot(doi, &vb[j * d..(j + 1) * d]) - delta);
                        axpy(&mut dk[j * d..(j + 1) * d], ds * self.opts.sm_scale, qi);
                    }
                }
                r0 += r;
            }
        }
    }

    /// dQ of rows `r0..` (as many as the block holds) of query head `h`.
    fn query_block(&self, bi: usize, h: usize, r0: usize, dq: &mut [f32]) {
        let Dims { hq, m, n, d, .. } = self.dims;
        let r = dq.len() / d;
        let kh = h / self.dims.group();
        let (mut qb, mut ob, mut kb, mut vb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        rows(self.q, bi, h, r0, r, &mut qb);
        rows(self.d_o, bi, h, r0, r, &mut ob);
        let last: Vec<Option<usize>> = (0..r)
            .map(|i| last_visible(r0 + i, m, n, self.opts.causal))
            .collect();
        let reach = last.iter().flatten().max().map_or(0, |&l| l + 1);
        let mut c0 = 0;
        while c0 < reach {
            let c = BC.min(n - c0);
            rows(self.k, bi, kh, c0, c, &mut kb);
            rows(self.v, bi, kh, c0, c, &mut vb);
            for i in 0..r {
                let Some(lim) = last[i] else { continue };
                if lim < c0 {
                    continue;
                }
                let row = (bi * hq + h) * m + r0 + i;
                let (lse, delta) = (self.lse[row], self.delta[row]);
                let (qi, doi) = (&qb[i * d..(i + 1) * d], &ob[i * d..(i + 1) * d]);
                let dqi = &mut dq[i * d..(i + 1) * d];
                for j in 0..(lim + 1 - c0).min(c) {
                    let kj = &kb[j * d..(j + 1) * d];
                    let p = (self.opts.sm_scale * dot(qi, kj) - lse).exp();
                    let ds = p * (dot(doi, &vb[j * d..(j + 1) * d]) - delta);
                    axpy(dqi, ds * self.opts.sm_scale, kj);
                }
            }
            c0 += c;
        }
    }
}
