//! The backward pass, parallel over key blocks: a task owns (batch, key head, a share of its
//! key blocks), so its dK and dV blocks are its own (no atomics); it walks every query row of
//! the group's heads, adding to a dQ of its own, and those are summed at the end (one share
//! per head when there are enough heads to keep the threads busy, so no sum at all).
//! Probabilities are recomputed from the forward's log-sum-exp: P = exp(scale·q·k − lse);
//! nothing of size M×N is held.

use crate::dropout::Dropout;
use crate::dtype::Float;
use crate::forward::{key_block, query_block, Attention, Options, BR};
use crate::mask::{reach, Band};
use crate::matmul::{dots, matmul, Lhs};
use crate::output::{write_rows, Output};
use crate::pack::{self, LhsPack, RhsPack, RhsT};
use crate::scores::{padded, Scores};
use crate::scratch::Buf;
use crate::shape::{check, expect, Dims};
use crate::vexp::{add, dot, score_grads};
use crate::Result;
use flagcore::TensorView;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::slice::ChunksMut;

/// Gradients in the inputs' type: dq (B, Hq, M, D), dk and dv (B, Hk, N, D), row-major.
#[derive(Clone, Debug)]
pub struct Grads<T> {
    pub dq: Vec<T>,
    pub dk: Vec<T>,
    pub dv: Vec<T>,
}

/// dq, dk, dv of `fwd` (the forward of the same q, k, v and options) given `d_o`, the
/// gradient of its output (B, Hq, M, D).
pub fn flash_attention_backward<T: Float>(
    q: &TensorView<'_, T>,
    k: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    fwd: &Attention<T>,
    d_o: &TensorView<'_, T>,
    opts: Options,
) -> Result<Grads<T>> {
    let dims = check(q, k, v, &opts)?;
    let (mut dq, mut dk, dv) = backward(&[(q, k)], v, fwd, d_o, dims, None, opts)?;
    Ok(Grads {
        dq: dq.remove(0),
        dk: dk.remove(0),
        dv,
    })
}

/// The backward of attention whose scores come from `pairs` ((q, k) views checked against
/// `dims`; two for piecewise attention, `band` saying which scores where): each pair's dq
/// and dk, and dv.
#[allow(clippy::type_complexity)]
pub(crate) fn backward<T: Float>(
    pairs: &[(&TensorView<'_, T>, &TensorView<'_, T>)],
    v: &TensorView<'_, T>,
    fwd: &Attention<T>,
    d_o: &TensorView<'_, T>,
    dims: Dims,
    band: Option<Band>,
    opts: Options,
) -> Result<(Vec<Vec<T>>, Vec<Vec<T>>, Vec<T>)> {
    let Dims { b, hq, hk, m, n, d } = dims;
    expect("d_o", d_o, &[b, hq, m, d])?;
    if fwd.opts != opts {
        return Err(crate::Error::shape(
            "opts",
            format!("{opts:?} differ from the forward's {:?}", fwd.opts),
        ));
    }
    if fwd.dims != dims || fwd.o.len() != b * hq * m * d || fwd.lse.len() != b * hq * m {
        return Err(crate::Error::shape(
            "fwd",
            "the forward outputs are of another problem",
        ));
    }
    let zero = T::from_f32(0.0);
    let (q_len, k_len) = (b * hq * m * d, b * hk * n * d);
    if b == 0 || m == 0 || n == 0 {
        let dqs = vec![vec![zero; q_len]; pairs.len()];
        return Ok((dqs, vec![vec![zero; k_len]; pairs.len()], vec![zero; k_len]));
    }
    let dor = pack::rows(d_o);
    // D_i = do_i · o_i, the softmax backward's row term.
    let mut delta = vec![0f32; b * hq * m];
    delta
        .par_chunks_mut(m)
        .zip(dor.par_chunks(m * d))
        .zip(fwd.o.par_chunks(m * d))
        .for_each(|((delta, dor), o)| {
            let mut row = vec![0f32; d];
            for (i, x) in delta.iter_mut().enumerate() {
                T::rows_to_f32(&o[i * d..(i + 1) * d], &mut row);
                *x = dot(&dor[i * d..(i + 1) * d], &row);
            }
        });
    let rows = pack::pair_rows(pairs);
    let refs = pack::pair_slices(&rows);
    let v_rows = pack::rows(v);
    let g = dims.group();
    // Enough shares to give every thread two tasks; each share beyond the first costs a dQ.
    let shares = (2 * rayon::current_num_threads())
        .div_ceil(b * hk)
        .clamp(1, n.div_ceil(key_block(opts)));
    // Per (batch, key head): its query heads' dQ rows and its dK rows (per pair), its dV
    // rows, each written once by the head's task (nothing zeroes them first).
    let mut dqs: Vec<Output<T>> = (0..pairs.len()).map(|_| Output::new(q_len)).collect();
    let mut dks: Vec<Output<T>> = (0..pairs.len()).map(|_| Output::new(k_len)).collect();
    let mut dv = Output::new(k_len);
    fn parts<T>(outs: &mut [Output<T>], part: usize) -> Vec<ChunksMut<'_, MaybeUninit<T>>> {
        outs.iter_mut()
            .map(|o| o.parts().chunks_mut(part))
            .collect()
    }
    fn next<'s, T>(rows: &mut [ChunksMut<'s, T>]) -> Vec<&'s mut [T]> {
        let head = rows.iter_mut().map(|r| r.next());
        head.map(|h| h.expect("one chunk per key head")).collect()
    }
    let (mut dq_rows, mut dk_rows) = (parts(&mut dqs, g * m * d), parts(&mut dks, n * d));
    let heads: Vec<_> = (dv.parts().chunks_mut(n * d))
        .map(|dv| (next(&mut dq_rows), next(&mut dk_rows), dv))
        .collect();
    // Each (batch, key head) task packs its operands (inside the parallel loop, so that one
    // thread's packing, bound by memory, runs beside the other's products), runs its shares
    // and writes its own rows of the gradients.
    heads
        .into_par_iter()
        .enumerate()
        .for_each(|(kv, (mut dq, mut dk, dv))| {
            let ctx = Ctx::new(dims, opts, &refs, band, &v_rows, &dor, &fwd.lse, &delta, kv);
            let parts: Vec<Part> = (0..shares)
                .into_par_iter()
                .map(|share| ctx.share(share, shares))
                .collect();
            for (p, (dq, dk)) in dq.iter_mut().zip(dk.iter_mut()).enumerate() {
                match &parts[..] {
                    [one] => write_rows(&one.dq[p], dq),
                    _ => {
                        let mut sum = Buf::zeroed(g * m * d);
                        for part in &parts {
                            add(&mut sum, &part.dq[p]);
                        }
                        write_rows(&sum, dq);
                    }
                }
                for part in &parts {
                    for (c0, bk, _) in &part.blocks {
                        write_rows(&bk[p], &mut dk[c0 * d..][..bk[p].len()]);
                    }
                }
            }
            // The shares' blocks are every key block once (see `Ctx::share`).
            for part in &parts {
                for (c0, _, bv) in &part.blocks {
                    write_rows(bv, &mut dv[c0 * d..][..bv.len()]);
                }
            }
        });
    // SAFETY: the heads' chunks cover each output (B·Hk of them), and each head's task
    // wrote its dQ rows whole and every one of its key blocks' dK and dV rows.
    let finish = |outs: Vec<Output<T>>| outs.into_iter().map(|o| unsafe { o.finish() });
    Ok((finish(dqs).collect(), finish(dks).collect(), unsafe {
        dv.finish()
    }))
}

/// What one task produced: per score pair its group's dQ share (G × M × D), and its key
/// blocks' (first key, dK per pair, dV).
struct Part {
    dq: Vec<Buf>,
    blocks: Vec<(usize, Vec<Vec<f32>>, Vec<f32>)>,
}

/// What the tasks of one (batch, key head) read: its keys and values and its query heads'
/// q and do, packed as the operands they are.
struct Ctx<'a> {
    /// The score pairs' q and k, for the probabilities.
    scores: Scores,
    /// Per score pair: q and k as right operands (of dK and dQ).
    q: Vec<RhsPack>,
    k: Vec<RhsPack>,
    vt: RhsT,
    do_lhs: LhsPack,
    d_o: RhsPack,
    lse: &'a [f32],
    delta: &'a [f32],
    /// The key head, batch·Hk + head.
    kv: usize,
}

impl<'a> Ctx<'a> {
    /// Key head `kv` (of B·Hk) packed with its query heads; the rows given are all heads'.
    #[allow(clippy::too_many_arguments)]
    fn new(
        dims: Dims,
        opts: Options,
        pairs: &[(&[f32], &[f32])],
        band: Option<Band>,
        v: &[f32],
        d_o: &[f32],
        lse: &'a [f32],
        delta: &'a [f32],
        kv: usize,
    ) -> Self {
        let Dims { m, n, d, .. } = dims;
        let g = dims.group();
        let (qs, ks) = (
            kv * g * m * d..(kv + 1) * g * m * d,
            kv * n * d..(kv + 1) * n * d,
        );
        Ctx {
            scores: Scores::new(dims, opts, pairs, band, kv..kv + 1),
            q: (pairs.iter())
                .map(|p| RhsPack::new(&p.0[qs.clone()], m, d))
                .collect(),
            k: (pairs.iter())
                .map(|p| RhsPack::new(&p.1[ks.clone()], n, d))
                .collect(),
            vt: RhsT::new(&v[ks], n, d),
            do_lhs: LhsPack::new(&d_o[qs.clone()], m, d),
            d_o: RhsPack::new(&d_o[qs], m, d),
            lse,
            delta,
            kv,
        }
    }

    /// The key blocks `share`, `share + shares`, … (interleaved, so that under the causal
    /// mask every share gets early and late keys).
    fn share(&self, share: usize, shares: usize) -> Part {
        let dims = self.scores.dims;
        let Dims { m, n, d, .. } = dims;
        let (opts, pairs) = (self.scores.opts, self.q.len());
        let g = dims.group();
        let mut dq: Vec<Buf> = (0..pairs).map(|_| Buf::zeroed(g * m * d)).collect();
        let kb = key_block(opts);
        let ld = padded(kb);
        // Query rows per tile: the forward's (measured with the AVX-512 kernel), or without
        // AVX-512 BR whatever the mask (2·BR without it ran the backward 5 % slower on the
        // AVX2 kernel, whose row tiles sweep every column).
        let qb = match crate::matmul::wide_kernel() {
            true => query_block(opts),
            false => BR,
        };
        let (mut s, mut dp) = (vec![0f32; qb * ld], vec![0f32; qb * ld]);
        let mut spare = vec![0f32; if pairs > 1 { qb * ld } else { 0 }];
        let mut blocks = Vec::new();
        for blk in (share..n.div_ceil(kb)).step_by(shares) {
            let (c0, c) = (blk * kb, kb.min(n - blk * kb));
            let mut dk = vec![vec![0f32; c * d]; pairs];
            let mut dv = vec![0f32; c * d];
            for hh in 0..g {
                let bh = self.kv * g + hh;
                let lse = &self.lse[bh * m..(bh + 1) * m];
                let mut r0 = 0;
                while r0 < m {
                    let r = qb.min(m - r0);
                    // Rows whose last visible key is before this block contribute nothing.
                    if reach(r0, r, m, n, opts.causal) <= c0 {
                        r0 += r;
                        continue;
                    }
                    let (rows, keys) = ((r0, r), (c0, c));
                    self.scores
                        .probabilities(&mut s, &mut spare, ld, bh, rows, keys, lse);
                    let (a, b) = (self.do_lhs.from(hh, r0), self.vt.from(0, c0));
                    dots(&mut dp, ld, r, c, d, a, b);
                    // dS = P ∘ (dP − D)·scale, dP taken through the dropout mask; then P
                    // itself through it, for dV.
                    let rows = s.chunks_mut(ld).zip(dp.chunks_mut(ld)).take(r);
                    for (i, (pi, dpi)) in rows.enumerate() {
                        let (pi, dpi) = (&mut pi[..c], &mut dpi[..c]);
                        let delta = self.delta[bh * m + r0 + i];
                        let at = Dropout::counter(dims, bh, r0 + i, c0);
                        if let Some(drop) = opts.dropout {
                            drop.apply(at, 1, dpi);
                        }
                        score_grads(dpi, pi, delta, opts.sm_scale);
                        if let Some(drop) = opts.dropout {
                            drop.apply(at, 1, pi);
                        }
                    }
                    // Each tile's product summed from zero, then added to the gradient (in
                    // the kernel, one rounding per tile): sums over thousands of rows or
                    // keys kept in one running sum would lose digits.
                    let p_t = Lhs::transposed(&s, ld);
                    matmul(&mut dv, d, c, d, r, p_t, self.d_o.from(hh, r0), true);
                    for (p, ds) in self.split(&mut dp, &mut spare, ld, (r0, r), (c0, c)) {
                        let ds_t = Lhs::transposed(ds, ld);
                        matmul(&mut dk[p], d, c, d, r, ds_t, self.q[p].from(hh, r0), true);
                        let (ds, keys) = (Lhs::rows(ds, ld), self.k[p].from(0, c0));
                        let dq = &mut dq[p][(hh * m + r0) * d..][..r * d];
                        matmul(dq, d, r, d, c, ds, keys, true);
                    }
                    r0 += r;
                }
            }
            blocks.push((c0, dk, dv));
        }
        Part { dq, blocks }
    }

    /// dS (in `ds`, row stride `ld`) split among the score pairs that produced it: (pair,
    /// its part of dS) for each pair used in the tile; with two, the second's part is
    /// moved to `spare`.
    fn split<'b>(
        &self,
        ds: &'b mut [f32],
        spare: &'b mut [f32],
        ld: usize,
        (r0, r): (usize, usize),
        (c0, c): (usize, usize),
    ) -> Vec<(usize, &'b [f32])> {
        let Some(band) = self.scores.band else {
            return vec![(0, ds)];
        };
        let Dims { m, n, .. } = self.scores.dims;
        let far = |i: usize| band.far_keys(r0 + i, c0, c, m, n);
        if far(r - 1) == 0 {
            return vec![(0, ds)];
        }
        if far(0) == c {
            return vec![(1, ds)];
        }
        let rows = ds.chunks_mut(ld).zip(spare.chunks_mut(ld)).take(r);
        for (i, (near, other)) in rows.enumerate() {
            let f = far(i);
            other[..f].copy_from_slice(&near[..f]);
            other[f..c].fill(0.0);
            near[..f].fill(0.0);
        }
        vec![(0, ds), (1, spare)]
    }
}
