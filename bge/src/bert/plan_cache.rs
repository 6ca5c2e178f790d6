//! A model's CPU plan kept beside it: built on first use, rebuilt once an in-place update of
//! its weights (fine-tuning) has moved a version counter, so an owner of a [`Bert`] (the
//! encoder, a reranker) never runs a plan of stale weights.

use super::{Bert, CpuPlan};
use crate::Result;
use std::sync::{Arc, Mutex};
use tch::Tensor;

/// The plan of one model, with the version counters of the weights it was built from. Keep
/// one per [`Bert`]: the counters say nothing about which model they came from.
#[derive(Debug, Default)]
pub struct PlanCache(Mutex<Option<(Vec<i64>, Arc<CpuPlan>)>>);

impl PlanCache {
    /// The plan of `bert`, the model this cache belongs to; `None` where it has none (CUDA,
    /// another activation or kind).
    pub fn get(&self, bert: &Bert) -> Option<Arc<CpuPlan>> {
        if bert.device() != tch::Device::Cpu {
            return None;
        }
        let versions: Vec<i64> = bert
            .parameters()
            .iter()
            .map(|(_, t)| t.internal_version())
            .collect();
        // A poisoned lock only means a panic elsewhere while it was held: the cache is rebuilt.
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((v, plan)) if *v == versions => Some(plan.clone()),
            _ => {
                let plan = Arc::new(bert.cpu_plan(true)?);
                *cached = Some((versions, plan.clone()));
                Some(plan)
            }
        }
    }
}

impl Bert {
    /// Last hidden states for inference: through `plan` (a [`Bert::cpu_plan`] of this model)
    /// when given, otherwise [`Bert::forward_t`] without dropout. Padding positions hold
    /// zeros on the first path and what libtorch computed on the second: read real tokens
    /// only.
    pub fn last_hidden(
        &self,
        plan: Option<&CpuPlan>,
        ids: &Tensor,
        types: Option<&Tensor>,
        mask: &Tensor,
    ) -> Result<Tensor> {
        match plan {
            Some(plan) => self.forward_planned(plan, ids, types, mask),
            None => self.forward_t(ids, types, mask, false),
        }
    }
}
