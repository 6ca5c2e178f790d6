//! Probabilities recomputed from the forward's log-sum-exp, P = exp(scale·q·k − lse), a
//! block at a time, for the passes that run after the forward (backward, total attention).

use crate::mask::{visible, Band};
use crate::matmul::dots;
use crate::pack::{LhsPack, RhsT};
use crate::shape::Dims;
use crate::vexp::exp_affine;
use crate::Options;

pub(crate) struct Scores {
    pub dims: Dims,
    pub opts: Options,
    /// Per score pair (one; two for piecewise attention, `band` saying which scores where),
    /// the packed heads' q and k.
    q: Vec<LhsPack>,
    kt: Vec<RhsT>,
    pub band: Option<Band>,
    /// The first key/value head packed.
    kv0: usize,
}

impl Scores {
    /// Key/value heads `kv` (of B·Hk) and their query heads packed: `pairs` holds the rows
    /// of each (q, k) score pair (all heads).
    pub fn new(
        dims: Dims,
        opts: Options,
        pairs: &[(&[f32], &[f32])],
        band: Option<Band>,
        kv: std::ops::Range<usize>,
    ) -> Self {
        let Dims { m, n, d, .. } = dims;
        let g = dims.group();
        let (qs, ks) = (
            kv.start * g * m * d..kv.end * g * m * d,
            kv.start * n * d..kv.end * n * d,
        );
        Scores {
            dims,
            opts,
            q: (pairs.iter())
                .map(|p| LhsPack::new(&p.0[qs.clone()], m, d))
                .collect(),
            kt: (pairs.iter())
                .map(|p| RhsT::new(&p.1[ks.clone()], n, d))
                .collect(),
            band,
            kv0: kv.start,
        }
    }

    /// exp(scale·q·k − lse_i) (r × c, row stride `ld`) of query head `bh` (= batch·Hq +
    /// head), rows `r0..` (a multiple of the kernel's row group) against keys `c0..` (of
    /// its panel width); 0 where masked. `lse` holds the head's log-sum-exps; `spare` (as
    /// large as `s`) takes the second pair's scores where a block needs both.
    #[allow(clippy::too_many_arguments)]
    pub fn probabilities(
        &self,
        s: &mut [f32],
        spare: &mut [f32],
        ld: usize,
        bh: usize,
        (r0, r): (usize, usize),
        (c0, c): (usize, usize),
        lse: &[f32],
    ) {
        let Dims { m, n, d, .. } = self.dims;
        // The packs' own head indices.
        let kv = self.dims.kv_head(bh) - self.kv0;
        let qh = bh - self.kv0 * self.dims.group();
        let product = |p: usize, out: &mut [f32]| {
            let (a, b) = (self.q[p].from(qh, r0), self.kt[p].from(kv, c0));
            dots(out, ld, r, c, d, a, b)
        };
        match self.band {
            None => product(0, s),
            Some(band) => {
                let far = |i: usize| band.far_keys(r0 + i, c0, c, m, n);
                if far(r - 1) == 0 {
                    product(0, s);
                } else if far(0) == c {
                    product(1, s);
                } else {
                    product(0, s);
                    product(1, spare);
                    let rows = s.chunks_mut(ld).zip(spare.chunks(ld)).take(r);
                    for (i, (row, other)) in rows.enumerate() {
                        row[..far(i)].copy_from_slice(&other[..far(i)]);
                    }
                }
            }
        }
        for (i, si) in s.chunks_mut(ld).take(r).enumerate() {
            let l = lse[r0 + i];
            // −∞: the row saw no key (its gradients are 0); a NaN goes on, as in the forward.
            let vis = match l == f32::NEG_INFINITY {
                false => visible(r0 + i, c0, c, m, n, self.opts.causal),
                true => 0,
            };
            exp_affine(&mut si[..vis], self.opts.sm_scale, -l);
            si[vis..c].fill(0.0);
        }
    }
}

/// A row stride for a block `c` wide that is not a large power of two (rows that far apart
/// would share one cache set).
pub(crate) fn padded(c: usize) -> usize {
    c.next_multiple_of(16) + 16
}
