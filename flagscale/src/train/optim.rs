//! AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") over named
//! parameters, with linear warmup then cosine decay of the learning rate, and clipping by the
//! global gradient norm. Its state saves and loads by parameter name.

use crate::Result;
use std::collections::HashMap;
use tch::{Kind, Tensor};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrSchedule {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LrSchedule {
    /// The rate for (0-based) step `step`: warmup from lr/warmup, then cosine to `min_lr`.
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        self.min_lr
            + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Parameters (shallow handles to the model's tensors) and whether they decay.
    params: Vec<(String, Tensor, bool)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub step: usize,
}

impl AdamW {
    /// Weight decay applies to matrices, not to norm weights (one-dimensional tensors).
    pub fn new(
        params: Vec<(String, Tensor)>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Self {
        let m = params
            .iter()
            .map(|(_, p)| p.zeros_like().to_kind(Kind::Float))
            .collect();
        let v = params
            .iter()
            .map(|(_, p)| p.zeros_like().to_kind(Kind::Float))
            .collect();
        let params = params
            .into_iter()
            .map(|(n, p)| {
                let decay = p.dim() > 1;
                (n, p, decay)
            })
            .collect();
        AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
            params,
            m,
            v,
            step: 0,
        }
    }

    /// The global L2 norm of all gradients, after scaling them down to `max_norm` if above.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let sq: f64 = self
                .params
                .iter()
                .map(|(_, p, _)| {
                    p.grad()
                        .to_kind(Kind::Float)
                        .square()
                        .sum(Kind::Float)
                        .double_value(&[])
                })
                .sum();
            let norm = sq.sqrt();
            if max_norm > 0.0 && norm > max_norm {
                let scale = max_norm / (norm + 1e-6);
                for (_, p, _) in &self.params {
                    let mut g = p.grad();
                    let _ = g.g_mul_scalar_(scale);
                }
            }
            norm
        })
    }

    /// One update with learning rate `lr`; gradients are zeroed after.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for (((_, p, decay), m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v)
            {
                let g = p.grad().to_kind(Kind::Float);
                // In place, as PyTorch's AdamW: m ← lerp(m, g, 1−β1), v ← lerp(v, g², 1−β2),
                // p ← p·(1 − lr·λ) − (lr/bc1)·m / (√v/√bc2 + ε).
                let _ = m.lerp_(&g, 1.0 - b1);
                let _ = v.lerp_(&g.square(), 1.0 - b2);
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt()).g_add_scalar_(self.eps);
                if *decay && self.weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                if p.kind() == Kind::Float {
                    let _ = p.addcdiv_(&(&*m * (-lr / bc1)), &denom);
                } else {
                    let _ = p.g_add_(&((&*m * (-lr / bc1)) / &denom).to_kind(p.kind()));
                }
                p.zero_grad();
            }
        });
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Moment tensors by name (`m.<param>`, `v.<param>`), for checkpoints.
    pub fn state(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        for ((n, _, _), (m, v)) in self.params.iter().zip(self.m.iter().zip(&self.v)) {
            out.push((format!("m.{n}"), m));
            out.push((format!("v.{n}"), v));
        }
        out
    }

    /// Restores moments saved by [`state`](Self::state); every parameter must be present.
    pub fn load_state(&mut self, mut saved: HashMap<String, Tensor>, step: usize) -> Result<()> {
        for ((n, _, _), (m, v)) in self
            .params
            .iter()
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            for (prefix, slot) in [("m", m), ("v", v)] {
                let key = format!("{prefix}.{n}");
                let t = saved.remove(&key).ok_or_else(|| {
                    crate::Error::Invalid(format!("optimizer state lacks `{key}`"))
                })?;
                if t.size() != slot.size() {
                    return Err(crate::Error::Invalid(format!(
                        "optimizer state `{key}` has shape {:?}, not {:?}",
                        t.size(),
                        slot.size()
                    )));
                }
                tch::no_grad(|| slot.copy_(&t));
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = LrSchedule {
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert!((s.at(0) - 1e-4).abs() < 1e-12);
        assert!((s.at(9) - 1e-3).abs() < 1e-12);
        assert!((s.at(60) - 5.5e-4).abs() < 1e-12);
        assert!((s.at(110) - 1e-4).abs() < 1e-12);
        assert!((s.at(500) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn adamw_matches_the_update_rule() {
        let p = Tensor::from_slice(&[1.0f32, -2.0])
            .view([1, 2])
            .set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), p.shallow_clone())], 0.9, 0.95, 1e-8, 0.1);
        (&p * &p).sum(Kind::Float).backward();
        opt.step(0.01);
        // First step: m̂ = g, v̂ = g², so the update is sign(g) + 0.1·p.
        let got = Vec::<f32>::try_from(&p.detach().view([-1])).unwrap();
        let want = [1.0 - 0.01 * (1.0 + 0.1), -2.0 - 0.01 * (-1.0 - 0.2)];
        assert!(
            (got[0] - want[0] as f32).abs() < 1e-6 && (got[1] - want[1] as f32).abs() < 1e-6,
            "{got:?}"
        );
    }
}
