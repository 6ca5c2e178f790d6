//! AdamW (Loshchilov & Hutter, 2019, "Decoupled Weight Decay Regularization") as
//! `torch.optim.AdamW` computes it, with the Hugging Face Trainer's habits: no decay on biases
//! and LayerNorm weights, gradients clipped to a global norm, and a linear schedule with
//! warmup whose first step runs at learning rate 0.

use tch::Tensor;

#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    step: i32,
    /// (parameter, decays, first moment, second moment)
    state: Vec<(Tensor, bool, Tensor, Tensor)>,
}

impl AdamW {
    /// Over named parameters (which must already require gradients).
    pub fn new(params: &[(String, Tensor)], weight_decay: f64) -> Self {
        let state = params
            .iter()
            .map(|(name, p)| {
                let decays = !(name.ends_with("bias") || name.contains("LayerNorm"));
                (p.shallow_clone(), decays, p.zeros_like(), p.zeros_like())
            })
            .collect();
        AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            state,
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm
    /// before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .state
                .iter()
                .map(|s| s.0.grad())
                .filter(|g| g.defined())
                .collect();
            if grads.is_empty() {
                return 0.0;
            }
            // One host read for the whole norm, not one per parameter.
            let norms: Vec<Tensor> = grads
                .iter()
                .map(|g| g.norm().to_kind(tch::Kind::Double))
                .collect();
            let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
            if total > max_norm {
                let scale = max_norm / (total + 1e-6);
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
            total
        })
    }

    /// One update at learning rate `lr`, then gradients are zeroed.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step);
        let c2 = 1.0 - b2.powi(self.step);
        tch::no_grad(|| {
            for (p, decays, m, v) in &mut self.state {
                let mut g = p.grad();
                if !g.defined() {
                    continue;
                }
                if *decays && self.weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let _ = m.g_mul_scalar_(b1);
                let _ = m.g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2);
                let _ = v.g_add_(&(g.square() * (1.0 - b2)));
                let denom = (&*v / c2).sqrt() + self.eps;
                let _ = p.g_sub_(&(&*m / &denom * (lr / c1)));
                let _ = g.zero_();
            }
        });
    }
}

/// transformers' `get_linear_schedule_with_warmup`: the factor of the base rate at optimizer
/// step `step` (0-based): rising linearly over `warmup` steps from 0, then falling linearly
/// to 0 at `total`.
pub fn linear_warmup(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        (total.saturating_sub(step) as f64 / total.saturating_sub(warmup).max(1) as f64).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_matches_transformers() {
        // get_linear_schedule_with_warmup(opt, 2, 6): factors 0, .5, 1, .75, .5, .25
        let f: Vec<f64> = (0..6).map(|s| linear_warmup(s, 2, 6)).collect();
        assert_eq!(f, [0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
    }

    #[test]
    fn one_step_equals_the_formula() {
        // After one step, Adam moves each parameter by lr · g / (|g| + eps) against its
        // gradient's sign, and decay shrinks weights (not biases) first.
        let w = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[0.5f64]).set_requires_grad(true);
        let loss = (&w * Tensor::from_slice(&[3.0f64, 4.0])).sum(tch::Kind::Double) + &b * -2.0;
        loss.sum(tch::Kind::Double).backward();
        let mut opt = AdamW::new(
            &[
                ("w".into(), w.shallow_clone()),
                ("x.bias".into(), b.shallow_clone()),
            ],
            0.1,
        );
        opt.step(0.01);
        let got = Vec::<f64>::try_from(&w).unwrap();
        let want = [
            1.0 * (1.0 - 0.001) - 0.01 * 3.0 / (3.0 + 1e-8),
            -2.0 * (1.0 - 0.001) - 0.01 * 4.0 / (4.0 + 1e-8),
        ];
        assert!(
            (got[0] - want[0]).abs() < 1e-12 && (got[1] - want[1]).abs() < 1e-12,
            "{got:?}"
        );
        assert!((b.double_value(&[0]) - (0.5 + 0.01 * 2.0 / (2.0 + 1e-8))).abs() < 1e-12);
        assert_eq!(w.grad().abs().sum(tch::Kind::Double).double_value(&[]), 0.0);
    }
}
