//! AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") over named
//! parameters held in one flat buffer, with linear warmup then cosine decay of the learning rate, and clipping by the
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

/// AdamW over one flat f32 buffer: every parameter becomes a view into it (matrices first, so
/// weight decay is one slice), and moments are flat too, so a step is a handful of whole-buffer
/// kernels instead of several per parameter — and a sharded optimizer later splits one range.
#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Names, handles (views into `flat`) and offsets, in buffer order.
    params: Vec<(String, Tensor, i64)>,
    flat: Tensor,
    /// Elements of `flat` that decay (the matrices, which come first).
    decayed: i64,
    m: Tensor,
    v: Tensor,
    pub step: usize,
}

impl AdamW {
    /// Weight decay applies to matrices, not to norm weights (one-dimensional tensors). The
    /// parameters must be f32 (master weights) on one device; their storage moves into the
    /// optimizer's buffer, which every holder of the same tensors (the model) sees.
    pub fn new(
        params: Vec<(String, Tensor)>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        let Some(device) = params.first().map(|(_, p)| p.device()) else {
            return Err(crate::Error::Invalid("no parameters to optimize".into()));
        };
        if let Some((n, p)) = params
            .iter()
            .find(|(_, p)| p.kind() != Kind::Float || p.device() != device)
        {
            return Err(crate::Error::Invalid(format!(
                "`{n}` is {:?} on {:?}: training keeps f32 master weights on one device",
                p.kind(),
                p.device()
            )));
        }
        let mut params = params;
        // Stable: matrices in their order, then the rest.
        params.sort_by_key(|(_, p)| p.dim() <= 1);
        let decayed = params
            .iter()
            .filter(|(_, p)| p.dim() > 1)
            .map(|(_, p)| p.numel() as i64)
            .sum();
        let flat = tch::no_grad(|| {
            let pieces: Vec<Tensor> = params
                .iter()
                .map(|(_, p)| p.detach().reshape([-1]))
                .collect();
            Tensor::cat(&pieces, 0)
        });
        let mut offset = 0i64;
        let mut placed = Vec::with_capacity(params.len());
        for (name, mut p) in params {
            let n = p.numel() as i64;
            let view = flat.narrow(0, offset, n).view(p.size().as_slice());
            p.set_data(&view);
            placed.push((name, p, offset));
            offset += n;
        }
        Ok(AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
            params: placed,
            m: flat.zeros_like(),
            v: flat.zeros_like(),
            flat,
            decayed,
            step: 0,
        })
    }

    /// All gradients as one flat tensor (zeros for a parameter that got none).
    fn flat_grad(&self) -> Tensor {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p, _)| {
                let g = p.grad();
                if g.defined() {
                    g.reshape([-1])
                } else {
                    p.detach().zeros_like().reshape([-1])
                }
            })
            .collect();
        Tensor::cat(&grads, 0)
    }

    /// One update with learning rate `lr`, after scaling the gradients down to a global L2
    /// norm of `max_norm` when above it (0 turns clipping off); gradients are zeroed after.
    /// Returns the norm before clipping as a 0-d tensor on the device, so the step never
    /// waits for the device.
    pub fn step(&mut self, lr: f64, max_norm: f64) -> Tensor {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            let mut g = self.flat_grad();
            let norm = g.norm();
            if max_norm > 0.0 {
                let coef = (max_norm / (&norm + 1e-6)).clamp_max(1.0);
                let _ = g.g_mul_(&coef);
            }
            // As PyTorch's AdamW: m ← lerp(m, g, 1−β1), v ← lerp(v, g², 1−β2),
            // p ← p·(1 − lr·λ) − (lr/bc1)·m / (√v/√bc2 + ε).
            let _ = self.m.lerp_(&g, 1.0 - b1);
            let _ = self.v.lerp_(&g.square(), 1.0 - b2);
            let mut denom = self.v.sqrt();
            let _ = denom.g_div_scalar_(bc2.sqrt()).g_add_scalar_(self.eps);
            if self.weight_decay > 0.0 && self.decayed > 0 {
                let _ = self
                    .flat
                    .narrow(0, 0, self.decayed)
                    .g_mul_scalar_(1.0 - lr * self.weight_decay);
            }
            let _ = self.flat.addcdiv_(&(&self.m * (-lr / bc1)), &denom);
            self.zero_grad();
            norm
        })
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _) in &mut self.params {
            p.zero_grad();
        }
    }

    fn slice(&self, buf: &Tensor, i: usize) -> Tensor {
        let (_, p, offset) = &self.params[i];
        buf.narrow(0, *offset, p.numel() as i64)
            .view(p.size().as_slice())
    }

    /// Moment tensors by name (`m.<param>`, `v.<param>`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (n, _, _)) in self.params.iter().enumerate() {
            out.push((format!("m.{n}"), self.slice(&self.m, i)));
            out.push((format!("v.{n}"), self.slice(&self.v, i)));
        }
        out
    }

    /// Restores moments saved by [`state`](Self::state); every parameter must be present.
    pub fn load_state(&mut self, mut saved: HashMap<String, Tensor>, step: usize) -> Result<()> {
        for i in 0..self.params.len() {
            let n = self.params[i].0.clone();
            for (prefix, buf) in [("m", &self.m), ("v", &self.v)] {
                let key = format!("{prefix}.{n}");
                let t = saved.remove(&key).ok_or_else(|| {
                    crate::Error::Invalid(format!("optimizer state lacks `{key}`"))
                })?;
                let mut slot = self.slice(buf, i);
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
        let mut opt =
            AdamW::new(vec![("w".into(), p.shallow_clone())], 0.9, 0.95, 1e-8, 0.1).unwrap();
        (&p * &p).sum(Kind::Float).backward();
        let norm = opt.step(0.01, 0.0).double_value(&[]);
        assert!((norm - 20f64.sqrt()).abs() < 1e-5, "{norm}");
        // First step: m̂ = g, v̂ = g², so the update is sign(g) + 0.1·p.
        let got = Vec::<f32>::try_from(&p.detach().view([-1])).unwrap();
        let want = [1.0 - 0.01 * (1.0 + 0.1), -2.0 - 0.01 * (-1.0 - 0.2)];
        assert!(
            (got[0] - want[0] as f32).abs() < 1e-6 && (got[1] - want[1] as f32).abs() < 1e-6,
            "{got:?}"
        );
    }
}
