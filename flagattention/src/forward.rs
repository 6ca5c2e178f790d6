//! The forward pass: each task owns one (batch, head, block of query rows) and streams the
//! key/value blocks through an online softmax (running max and sum per row), so memory is
//! O(block × D) per task and the output is written once.

use crate::dropout::Dropout;
use crate::dtype::Float;
use crate::mask::{first_seeing, reach, Band};
use crate::matmul::{dots, matmul, matmul_colmax, Lhs, MR, NR};
use crate::output::{write_rows, zeroed, Output};
use crate::pack::{self, LhsPack, RhsPack, RhsT};
use crate::scores::padded;
use crate::scratch::Buf;
use crate::shape::{check, Dims};
use crate::split_kv;
use crate::vexp::{exp_shift, max_into};
use crate::Result;
use flagcore::TensorView;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Query rows per task and keys per block: multiples of the kernel's row group and panel
/// width, which is where blocks start in the packed operands.
pub(crate) const BR: usize = 96;
pub(crate) const BC: usize = 192;
const _: () =
    assert!(BR.is_multiple_of(MR) && (BC / 2).is_multiple_of(MR) && (BC / 2).is_multiple_of(NR));

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

/// Attention of q (B, Hq, M, D) over k, v (B, Hk, N, D).
pub fn flash_attention<T: Float>(
    q: &TensorView<'_, T>,
    k: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    opts: Options,
) -> Result<Attention<T>> {
    let dims = check(q, k, v, &opts)?;
    Ok(forward(&[(q, k)], v, dims, None, opts, 1))
}

/// The forward of attention whose scores come from `pairs` ((q, k) views checked against
/// `dims`; two for piecewise attention, `band` saying which scores where), each query
/// block's keys split into `splits` parts attended in parallel (see `split_kv.rs`).
pub(crate) fn forward<T: Float>(
    pairs: &[(&TensorView<'_, T>, &TensorView<'_, T>)],
    v: &TensorView<'_, T>,
    dims: Dims,
    band: Option<Band>,
    opts: Options,
    splits: usize,
) -> Attention<T> {
    let Dims { b, hq, m, n, d, .. } = dims;
    let (len, zero) = (b * hq * m * d, T::from_f32(0.0));
    let mut lse = vec![f32::NEG_INFINITY; b * hq * m];
    let rows = pack::pair_rows(pairs);
    let refs = pack::pair_slices(&rows);
    let v_rows = pack::rows(v);
    let o = if m > 0 && n > 0 {
        let qb = query_block(opts);
        let in_place = T::as_f32(&[zero]).is_some();
        // Query rows `r0..` of head `bh` into their output block, every element written
        // (see `Ctx::attend`): f32 in place, others through an f32 block.
        let run = |ctx: &Ctx<'_>, bh: usize, r0: usize, o_blk: &mut [MaybeUninit<T>], lse_blk| {
            let attend = |out: &mut [f32]| match splits {
                1 => ctx.attend(bh, r0, 0..n, out, lse_blk),
                _ => split_kv::attend(ctx, bh, r0, splits, out, lse_blk),
            };
            match in_place {
                true => attend(T::as_f32_mut(zeroed(o_blk, zero)).expect("f32")),
                false => {
                    let mut out = Buf::for_overwrite(o_blk.len());
                    attend(&mut out);
                    write_rows(&out, o_blk);
                }
            }
        };
        let group = dims.group();
        let mut o = Output::new(len);
        // One task per key/value head packs its keys and values, then attends every query
        // block of its query heads. Packing inside the parallel loop rather than before it
        // lets one thread's packing, bound by memory, run beside the other's products
        // (1024/128 unmasked: 156 → 160 GFLOP/s on two Zen 3 cores), and the packs are
        // fresh in cache for their first uses.
        (o.parts().par_chunks_mut(group * m * d))
            .zip(lse.par_chunks_mut(group * m))
            .enumerate()
            .for_each(|(kv, (o_group, lse_group))| {
                let ctx = Ctx::new(dims, opts, &refs, band, &v_rows, kv);
                let heads = o_group
                    .par_chunks_mut(m * d)
                    .zip(lse_group.par_chunks_mut(m));
                heads.enumerate().for_each(|(g, (o_head, lse_head))| {
                    let blocks = o_head
                        .par_chunks_mut(qb * d)
                        .zip(lse_head.par_chunks_mut(qb));
                    blocks.enumerate().for_each(|(blk, (o_blk, lse_blk))| {
                        run(&ctx, kv * group + g, blk * qb, o_blk, lse_blk)
                    });
                });
            });
        // SAFETY: the chunks above cover the output (B·Hk groups of G·M·D, matched one to
        // one by the lse's B·Hk groups of G·M, and so on down to the blocks), and `run`
        // initialises each block.
        unsafe { o.finish() }
    } else {
        vec![zero; len]
    };
    finish(dims, opts, o, lse, &refs, band)
}

/// The outputs, with total attention added when asked for (it needs the final lse).
fn finish<T>(
    dims: Dims,
    opts: Options,
    o: Vec<T>,
    lse: Vec<f32>,
    pairs: &[(&[f32], &[f32])],
    band: Option<Band>,
) -> Attention<T> {
    let total = opts.total_attention.then(|| {
        let mut t = vec![0f32; dims.b * dims.hq * dims.n];
        if dims.m > 0 && dims.n > 0 {
            let heads = 0..dims.b * dims.hk;
            let scores = crate::scores::Scores::new(dims, opts, pairs, band, heads);
            crate::total::total_attention(&scores, &lse, &mut t);
        }
        t
    });
    Attention {
        dims,
        opts,
        o,
        lse,
        total,
    }
}

/// Query rows per forward task (and per backward tile with the AVX-512 kernel): without the
/// causal mask every task costs the same, and larger ones pack fewer query blocks and reuse
/// each key block more; under it, smaller ones balance the threads better and waste less on
/// the diagonal.
pub(crate) fn query_block(opts: Options) -> usize {
    if opts.causal {
        BR
    } else {
        2 * BR
    }
}

/// Keys per block (per backward task; per forward step with the AVX-512 kernel): causal
/// blocks on the diagonal are partly masked but fully computed, and smaller key blocks waste
/// less there.
pub(crate) fn key_block(opts: Options) -> usize {
    if opts.causal {
        BC / 2
    } else {
        BC
    }
}

/// What the forward's tasks of one key/value head read: q as rows, that head's k and v
/// packed as the operands they are.
pub(crate) struct Ctx<'a> {
    dims: Dims,
    opts: Options,
    /// Per score pair (one; two for piecewise attention): q as rows, k packed.
    q: Vec<&'a [f32]>,
    k: Vec<LhsPack>,
    band: Option<Band>,
    v: RhsPack,
    /// The key/value head packed (the packs' only head).
    kv: usize,
}

impl<'a> Ctx<'a> {
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Key/value head `kv` (of B·Hk) packed, for its query heads: `pairs` holds the rows
    /// of each (q, k) score pair (all heads); `band` says which pair scores which (query,
    /// key) when there are two.
    pub fn new(
        dims: Dims,
        opts: Options,
        pairs: &[(&'a [f32], &[f32])],
        band: Option<Band>,
        v: &[f32],
        kv: usize,
    ) -> Self {
        let (n, d) = (dims.n, dims.d);
        let head = kv * n * d..(kv + 1) * n * d;
        let (k, v) = rayon::join(
            || {
                (pairs.iter())
                    .map(|p| LhsPack::new(&p.1[head.clone()], n, d))
                    .collect()
            },
            || RhsPack::new(&v[head.clone()], n, d),
        );
        Ctx {
            dims,
            opts,
            q: pairs.iter().map(|p| p.0).collect(),
            k,
            band,
            v,
            kv,
        }
    }

    /// The unscaled scores of keys `c0..c0 + c` (rows) against queries `r0..r0 + r`
    /// (columns, packed per pair in `qt`) into `st` (row stride `ld`), and each query's
    /// largest visible score merged into `top` (NaNs passed over); `spare` holds the second
    /// pair's scores where a block needs both.
    #[allow(clippy::too_many_arguments)]
    fn scores_t(
        &self,
        st: &mut [f32],
        spare: &mut [f32],
        ld: usize,
        (r0, r): (usize, usize),
        (c0, c): (usize, usize),
        qt: &[RhsT],
        top: &mut [f32],
    ) {
        let Dims { m, n, d, .. } = self.dims;
        let product = |p: usize, out: &mut [f32]| {
            let (a, b) = (self.k[p].from(0, c0), qt[p].from(0, 0));
            dots(out, ld, c, r, d, a, b)
        };
        let first = |j: usize| first_seeing(c0 + j, r0, r, m, n, self.opts.causal);
        match self.band {
            // Every score visible: the maxima come from the product's registers.
            None if first(c - 1) == 0 => {
                let (a, b) = (self.k[0].from(0, c0), qt[0].from(0, 0));
                return matmul_colmax(st, ld, c, r, d, a, b, top);
            }
            None => product(0, st),
            Some(band) => {
                let far = |j: usize| band.first_far_row(c0 + j, r0, r, m, n);
                if far(0) >= r {
                    product(0, st);
                } else if far(c - 1) == 0 {
                    product(1, st);
                } else {
                    product(0, st);
                    product(1, spare);
                    let rows = st.chunks_mut(ld).zip(spare.chunks(ld)).take(c);
                    for (j, (row, other)) in rows.enumerate() {
                        row[far(j)..r].copy_from_slice(&other[far(j)..r]);
                    }
                }
            }
        }
        for (j, row) in st.chunks_exact(ld).enumerate() {
            let f = first(j);
            max_into(&mut top[f..], &row[f..r]);
        }
    }

    /// Query rows `r0..` (as many as `lse_out` holds) of query head `bh` (= batch·Hq +
    /// head) against the keys `keys` (its start a multiple of [`BC`]): their attention
    /// output, normalised over those keys, into `out`, and its log-sum-exp into `lse_out`.
    /// The scores are computed transposed, keys × queries, so the softmax runs down columns
    /// with one query per vector lane (no reductions across a vector), and both products
    /// read their left operand at constant offsets.
    pub fn attend(
        &self,
        bh: usize,
        r0: usize,
        keys: std::ops::Range<usize>,
        out: &mut [f32],
        lse_out: &mut [f32],
    ) {
        let Dims { m, n, d, .. } = self.dims;
        let (opts, r) = (self.opts, lse_out.len());
        debug_assert!(keys.start.is_multiple_of(BC) && keys.end <= n);
        debug_assert_eq!(self.dims.kv_head(bh), self.kv);
        // This block's queries transposed into panels: the right operand of k·qᵀ.
        let qt: Vec<RhsT> = (self.q.iter())
            .map(|q| RhsT::new(&q[(bh * m + r0) * d..][..r * d], r, d))
            .collect();
        // Sums over keys are taken per block, then across blocks (in `acc` and `row_sum`):
        // one running sum over thousands of keys would lose digits.
        // The first block's product writes it (no pass zeroing it first).
        let mut acc = Buf::for_overwrite(r * d);
        let mut row_max = vec![f32::NEG_INFINITY; r];
        let (mut row_sum, mut block_sum) = (vec![0f32; r], vec![0f32; r]);
        let (mut block_max, mut alpha) = (vec![0f32; r], vec![1f32; r]);
        let ld = padded(r);
        // Keys per block: P·V reads the block's probabilities in place, transposed, one
        // cache line per step; at 96 keys those lines stay in L1, at 192 (the unmasked
        // block size, measured on the AVX-512 kernel) the AVX2 kernel ran P·V at 81 instead
        // of 94 GFLOP/s. Without AVX-512 (the `gemm` fallback too), 96.
        let kb = match crate::matmul::wide_kernel() {
            true => key_block(opts),
            false => BC / 2,
        };
        // Written before read: from the free list unzeroed.
        let mut st = Buf::for_overwrite(kb * ld);
        let mut spare = Buf::for_overwrite(self.band.map_or(0, |_| kb * ld));
        let mut c0 = keys.start;
        while c0 < reach(r0, r, m, n, opts.causal).min(keys.end) {
            let c = kb.min(keys.end - c0);
            let st = &mut st[..c * ld];
            block_max.fill(f32::NEG_INFINITY);
            let (rows, cols) = ((r0, r), (c0, c));
            self.scores_t(st, &mut spare, ld, rows, cols, &qt, &mut block_max);
            // The scale is positive, so the largest score scales to the largest.
            for i in 0..r {
                let new_max = row_max[i].max(block_max[i] * opts.sm_scale);
                alpha[i] = match new_max > row_max[i] {
                    true => (row_max[i] - new_max).exp(),
                    false => 1.0,
                };
                row_max[i] = new_max;
            }
            block_sum.fill(0.0);
            let first = |j: usize| first_seeing(c0 + j, r0, r, m, n, opts.causal);
            for (j, row) in st.chunks_exact_mut(ld).enumerate() {
                let (f, row) = (first(j), &mut row[..r]);
                row[..f].fill(0.0);
                let (shift, sums) = (&row_max[f..], &mut block_sum[f..]);
                exp_shift(&mut row[f..], opts.sm_scale, shift, sums);
                if let Some(drop) = opts.dropout {
                    let at = Dropout::counter(self.dims, bh, r0 + f, c0 + j);
                    drop.apply(at, n as u64, &mut row[f..]);
                }
            }
            // acc = acc·alpha + P · V, P being the transpose of the block
            let p = Lhs::transposed(st, ld);
            // Rows rescaled only where their maximum moved (few after the first blocks);
            // the product adds the block's sum, taken from zero, to acc.
            let first_block = c0 == keys.start;
            if !first_block {
                let rows = acc.chunks_exact_mut(d).zip(&alpha);
                for (acc, &a) in rows.filter(|(_, &a)| a != 1.0) {
                    acc.iter_mut().for_each(|x| *x *= a);
                }
            }
            matmul(&mut acc, d, r, d, c, p, self.v.from(0, c0), !first_block);
            for i in 0..r {
                row_sum[i] = row_sum[i] * alpha[i] + block_sum[i];
            }
            c0 += c;
        }
        let rows = acc.chunks_exact(d).zip(out.chunks_exact_mut(d));
        for (i, (acc, out)) in rows.enumerate() {
            // Exactly 0 only when the row saw no key (its largest term is e^0 = 1; its `acc`
            // may be unwritten); a NaN from the inputs goes on to the output.
            if row_sum[i] != 0.0 {
                let inv = 1.0 / row_sum[i];
                out.iter_mut().zip(acc).for_each(|(o, a)| *o = a * inv);
                lse_out[i] = row_max[i] + row_sum[i].ln();
            } else {
                out.fill(0.0);
                lse_out[i] = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accumulator and the non-f32 output blocks come unzeroed from the free list: with
    /// NaN-filled buffers there (or whatever the packs left in them), a causal M > N forward
    /// (rows that see no key, rows whose first visible key lies past the first key block)
    /// still equals the formula in f64. (Accumulating onto the first block's buffer fails
    /// it at the first row that sees a key.)
    #[test]
    fn reused_buffers_never_reach_the_output() {
        let (m, n, d) = (300, 200, 16);
        let mut rng = flagcore::rng::Rng::new(3);
        let mut fill = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
                .collect()
        };
        let (q, k, v) = (fill(m * d), fill(n * d), fill(n * d));
        let opts = Options {
            causal: true,
            ..Options::new(d)
        };
        // Held at once, then freed (one at a time, each would be taken back), several of
        // each size, the accumulator's (96 causal rows × 16) among them, so that the
        // forward's buffers are these.
        let poisoned: Vec<Buf> = [1_536, 5_000, 20_000, 60_000]
            .iter()
            .flat_map(|&len| std::iter::repeat_n(len, 8))
            .map(|len| {
                let mut b = Buf::for_overwrite(len);
                b.fill(f32::NAN);
                b
            })
            .collect();
        drop(poisoned);
        fn view<T: Float>(x: &[T], t: usize, d: usize) -> TensorView<'_, T> {
            TensorView::from_slice(x, &[1, 1, t, d]).unwrap()
        }
        let (qv, kv, vv) = (view(&q, m, d), view(&k, n, d), view(&v, n, d));
        let out = flash_attention(&qv, &kv, &vv, opts).unwrap();
        let f16s =
            |x: &[f32]| -> Vec<half::f16> { x.iter().map(|&x| half::f16::from_f32(x)).collect() };
        let (q16, k16, v16) = (f16s(&q), f16s(&k), f16s(&v));
        let out16 = flash_attention(
            &view(&q16, m, d),
            &view(&k16, n, d),
            &view(&v16, n, d),
            opts,
        );
        let out16 = out16.unwrap();
        for i in 0..m {
            // Query i sees keys j ≤ i + N − M.
            let seen = (i + n).checked_sub(m).map_or(0, |last| last + 1);
            let s: Vec<f64> = (0..seen)
                .map(|j| {
                    let dot: f64 = (0..d).map(|c| (q[i * d + c] * k[j * d + c]) as f64).sum();
                    dot * opts.sm_scale as f64
                })
                .collect();
            let top = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = s.iter().map(|x| (x - top).exp()).sum();
            for c in 0..d {
                let want = match seen {
                    0 => 0.0,
                    _ => (0..seen)
                        .map(|j| (s[j] - top).exp() / sum * v[j * d + c] as f64)
                        .sum(),
                };
                let got = out.o[i * d + c] as f64;
                assert!(
                    (got - want).abs() < 1e-5,
                    "row {i} col {c}: {got} vs {want}"
                );
                let got16 = out16.o[i * d + c].to_f32() as f64;
                assert!(
                    (got16 - want).abs() < 2e-2,
                    "f16 row {i} col {c}: {got16} vs {want}"
                );
            }
        }
    }
}
