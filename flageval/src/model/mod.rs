//! Models behind one trait: a local flagscale checkpoint or GGUF (`local.rs`) and a
//! deterministic dummy for tests (`dummy.rs`).

mod dummy;
mod local;

pub use dummy::Dummy;
pub use local::Local;

use crate::Result;

/// A scoring request: the log-probability of `continuation` after `context`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    pub context: String,
    pub continuation: String,
}

pub trait Model {
    /// A name for results and caches.
    fn name(&self) -> String;
    /// For each request: the continuation's summed log-probability, and whether greedy
    /// decoding would have produced it.
    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>>;
}
