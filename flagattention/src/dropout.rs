//! Dropout on the attention probabilities with a counter-based generator: whether element
//! (i, j) of query head h in batch b survives depends only on (seed, b, h, i, j), so the
//! backward regenerates the forward's mask without storing it, whatever the blocking or
//! thread order. The generator is SplitMix64 read at position (b·Hq + h)·M·N + i·N + j.

use crate::shape::Dims;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Dropout of probability `p` (0 ≤ p < 1; survivors scaled by 1 / (1 − p)) seeded by `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub p: f32,
    pub seed: u64,
}

#[inline(always)]
fn mix(counter: u64, seed: u64) -> u64 {
    let mut z = seed.wrapping_add(counter.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Dropout {
    /// Survivors draw a 32-bit value at or above this.
    fn threshold(&self) -> u64 {
        (self.p as f64 * 4_294_967_296.0) as u64
    }

    /// The generator's position for element (i, j) of query head `bh` (= batch·Hq + head).
    pub(crate) fn counter(dims: Dims, bh: usize, i: usize, j: usize) -> u64 {
        ((bh * dims.m + i) * dims.n + j) as u64
    }

    /// Whether element (i, j) of query head `bh` (= batch·Hq + head) survives.
    pub fn keeps(&self, dims: Dims, bh: usize, i: usize, j: usize) -> bool {
        mix(Self::counter(dims, bh, i, j), self.seed) >> 32 >= self.threshold()
    }

    /// Elements at positions `first`, `first + step`, …: survivors scaled by 1 / (1 − p), the
    /// others zeroed.
    pub(crate) fn apply(&self, first: u64, step: u64, xs: &mut [f32]) {
        let (cut, keep) = (self.threshold(), 1.0 / (1.0 - self.p));
        for (j, x) in xs.iter_mut().enumerate() {
            let survive = mix(first + j as u64 * step, self.seed) >> 32 >= cut;
            *x = if survive { *x * keep } else { 0.0 };
        }
    }
}
