//! Probabilities recomputed from the forward's log-sum-exp, P = exp(scale·q·k − lse), a
//! block at a time, for the passes that run after the forward (backward, total attention).

use crate::mask::visible;
use crate::matmul::matmul;
use crate::pack::{LhsPack, RhsT};
use crate::shape::Dims;
use crate::vexp::exp_affine;
use crate::Options;

pub(crate) struct Scores {
    pub dims: Dims,
    pub opts: Options,
    q: LhsPack,
    kt: RhsT,
}

impl Scores {
    pub fn new(dims: Dims, opts: Options, q_rows: &[f32], k_rows: &[f32]) -> Self {
        Scores {
            dims,
            opts,
            q: LhsPack::new(q_rows, dims.m, dims.d),
            kt: RhsT::new(k_rows, dims.n, dims.d),
        }
    }

    /// exp(scale·q·k − lse_i) (r × c, row stride `ld`) of query head `bh` (= batch·Hq +
    /// head), rows `r0..` (a multiple of the kernel's row group) against keys `c0..` (of
    /// its panel width); 0 where masked. `lse` holds the head's log-sum-exps.
    #[allow(clippy::too_many_arguments)]
    pub fn probabilities(
        &self,
        s: &mut [f32],
        ld: usize,
        bh: usize,
        r0: usize,
        r: usize,
        c0: usize,
        c: usize,
        lse: &[f32],
    ) {
        let Dims {
            hq, hk, m, n, d, ..
        } = self.dims;
        let kv = (bh / hq) * hk + (bh % hq) / self.dims.group();
        matmul(
            s,
            ld,
            r,
            c,
            d,
            self.q.from(bh, r0),
            self.kt.from(kv, c0),
            false,
        );
        for (i, si) in s.chunks_mut(ld).take(r).enumerate() {
            let l = lse[r0 + i];
            let vis = match l.is_finite() {
                true => visible(r0 + i, c0, c, m, n, self.opts.causal),
                false => 0,
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
