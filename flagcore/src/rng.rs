//! One seeded random generator for every crate, so a seed means the same samples on every
//! platform and device.

/// SplitMix64: a small seeded generator, the same sequence on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (rejection sampling, no modulo bias). Panics when `n` is 0: there is
    /// nothing to draw, and every caller draws from a non-empty range.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0): empty range");
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `k` distinct elements of `pool` in random order (partial Fisher–Yates).
    pub fn sample(&mut self, pool: &[usize], k: usize) -> Vec<usize> {
        let mut p = pool.to_vec();
        let k = k.min(p.len());
        for i in 0..k {
            let j = i + self.below(p.len() - i);
            p.swap(i, j);
        }
        p.truncate(k);
        p
    }
}
