//! A model's CPU plan kept beside it: built on first use, rebuilt once an in-place update of
//! its weights (fine-tuning) has moved a version counter or another model was put in its
//! place, so an owner of a [`Bert`] (the encoder, a reranker) never runs a plan of stale
//! weights.

use super::{Bert, CpuPlan};
use std::sync::{Arc, Mutex};

/// The plan of one model, with the load it came from and the version counters of the
/// weights it was built from.
#[derive(Debug, Default)]
pub struct PlanCache(Mutex<Option<(Key, Arc<CpuPlan>)>>);

type Key = (u64, Vec<i64>);

impl PlanCache {
    /// The plan of `bert`; `None` where it has none (CUDA, another activation or kind).
    pub fn get(&self, bert: &Bert) -> Option<Arc<CpuPlan>> {
        if bert.device() != tch::Device::Cpu {
            return None;
        }
        // Fresh tensors all start at version 0: the load id tells a reloaded model apart.
        let key: Key = (
            bert.load_id(),
            bert.parameters()
                .iter()
                .map(|(_, t)| t.internal_version())
                .collect(),
        );
        // A poisoned lock only means a panic elsewhere while it was held: the cache is rebuilt.
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((k, plan)) if *k == key => Some(plan.clone()),
            _ => {
                let plan = Arc::new(bert.cpu_plan(true)?);
                *cached = Some((key, plan.clone()));
                Some(plan)
            }
        }
    }
}
