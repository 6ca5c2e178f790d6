//! Rotary position embeddings (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary
//! Position Embedding"), in both channel layouts: Hugging Face's halves (channel i pairs with
//! i + d/2) and the interleaved one (channel 2i pairs with 2i + 1, as in GPT-J and Megatron).

use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct Rope {
    /// Inverse frequencies θ^(−2i/d), i < d/2, in f32.
    inv_freq: Tensor,
    interleaved: bool,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f64, interleaved: bool, device: tch::Device) -> Self {
        let half = (head_dim / 2) as i64;
        let exponents = Tensor::arange(half, (Kind::Float, device)) * (2.0 / head_dim as f64);
        let inv_freq = (exponents * theta.ln()).exp().reciprocal();
        Rope {
            inv_freq,
            interleaved,
        }
    }

    /// cos and sin for positions `start..start + len`, each (len, head_dim) in f32.
    pub fn tables(&self, start: i64, len: i64) -> (Tensor, Tensor) {
        let pos = Tensor::arange_start(start, start + len, (Kind::Float, self.inv_freq.device()));
        self.expand(pos.outer(&self.inv_freq))
    }

    /// cos and sin for per-row positions `positions` (B, T): each (B, 1, T, head_dim) in f32.
    pub fn tables_at(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let freqs = positions
            .to_kind(Kind::Float)
            .unsqueeze(-1)
            .g_mul(&self.inv_freq);
        let (cos, sin) = self.expand(freqs);
        (cos.unsqueeze(1), sin.unsqueeze(1))
    }

    /// cos and sin of angles (..., head_dim / 2) spread over the channels of this layout.
    fn expand(&self, freqs: Tensor) -> (Tensor, Tensor) {
        let full = if self.interleaved {
            freqs.repeat_interleave_self_int(2, -1, None)
        } else {
            Tensor::cat(&[&freqs, &freqs], -1)
        };
        (full.cos(), full.sin())
    }

    /// Rotates `x` of shape (B, H, T, D) by the tables of its T positions, in `x`'s dtype
    /// (the tables are rounded to it first), as Hugging Face's LLaMA does.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        // A no-op when the tables already have x's dtype (the model rounds them once).
        let (cos, sin) = (cos.to_kind(x.kind()), sin.to_kind(x.kind()));
        let d = *x.size().last().expect("rank 4");
        let rotated = if self.interleaved {
            // (x0, x1) -> (−x1, x0) for each adjacent pair.
            let pairs = x.reshape([-1, d / 2, 2]);
            let (even, odd) = (pairs.select(-1, 0), pairs.select(-1, 1));
            Tensor::stack(&[odd.neg(), even], -1).view(x.size().as_slice())
        } else {
            let (a, b) = (x.narrow(-1, 0, d / 2), x.narrow(-1, d / 2, d / 2));
            Tensor::cat(&[b.neg(), a], -1)
        };
        x * cos + rotated * sin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_agree_after_permuting_channels() {
        let (d, t) = (8i64, 5i64);
        let x = Tensor::randn([1, 2, t, d], (Kind::Float, tch::Device::Cpu));
        let half = Rope::new(d as usize, 10_000.0, false, tch::Device::Cpu);
        let inter = Rope::new(d as usize, 10_000.0, true, tch::Device::Cpu);
        // Channel 2i of the interleaved layout is channel i of the halves layout; 2i+1 is i+d/2.
        let perm: Vec<i64> = (0..d / 2).flat_map(|i| [i, i + d / 2]).collect();
        let perm = Tensor::from_slice(&perm);
        let (c, s) = half.tables(0, t);
        let (ci, si) = inter.tables(0, t);
        let a = half.apply(&x, &c, &s).index_select(-1, &perm);
        let b = inter.apply(&x.index_select(-1, &perm), &ci, &si);
        assert!(a.allclose(&b, 1e-6, 1e-6, false));
        // Position 0 is the identity; rotations keep norms.
        assert!(half
            .apply(&x, &c, &s)
            .select(2, 0)
            .allclose(&x.select(2, 0), 1e-6, 1e-6, false));
        let n0 = x.square().sum_dim_intlist(-1, false, Kind::Float);
        let n1 = half
            .apply(&x, &c, &s)
            .square()
            .sum_dim_intlist(-1, false, Kind::Float);
        assert!(n0.allclose(&n1, 1e-5, 1e-5, false));
    }
}
