//! Total attention: the probability each key receives, summed over the query rows (before
//! dropout), (B, Hq, N). It needs every row's final log-sum-exp, so it is a second sweep,
//! over key blocks, run only when asked for.

use crate::forward::{BC, BR};
use crate::mask::reach;
use crate::scores::{padded, Scores};
use crate::shape::Dims;
use crate::vexp::add;
use rayon::prelude::*;

pub(crate) fn total_attention(p: &Scores, lse: &[f32], total: &mut [f32]) {
    let Dims { m, n, .. } = p.dims;
    total.par_chunks_mut(n).enumerate().for_each(|(bh, head)| {
        head.par_chunks_mut(BC).enumerate().for_each(|(blk, t)| {
            let (c0, c) = (blk * BC, t.len());
            let ld = padded(c);
            let (mut s, mut part) = (vec![0f32; BR * ld], vec![0f32; c]);
            let mut spare = match p.band {
                Some(_) => vec![0f32; BR * ld],
                None => Vec::new(),
            };
            let mut r0 = 0;
            while r0 < m {
                let r = BR.min(m - r0);
                if reach(r0, r, m, n, p.opts.causal) > c0 {
                    let lse = &lse[bh * m..(bh + 1) * m];
                    p.probabilities(&mut s, &mut spare, ld, bh, (r0, r), (c0, c), lse);
                    // Summed per block of rows, then across blocks.
                    part.fill(0.0);
                    for row in s.chunks(ld).take(r) {
                        add(&mut part, &row[..c]);
                    }
                    add(t, &part);
                }
                r0 += r;
            }
        })
    });
}
