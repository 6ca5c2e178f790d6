//! Models behind one trait: a local flagscale checkpoint or GGUF (`local.rs`), a
//! any OpenAI-compatible server (`server.rs`), a deterministic dummy for tests (`dummy.rs`),
//! and a SQLite response cache around any of them
//! (`cached.rs`).

mod cached;
mod dummy;
mod local;
mod server;

pub use cached::Cached;
pub use dummy::Dummy;
pub use local::Local;
pub use server::Server;

use crate::Result;

/// A scoring request: the log-probability of `continuation` after `context`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    pub context: String,
    pub continuation: String,
}

pub trait Model {
    /// A name for results.
    fn name(&self) -> String;
    /// What identifies the model's answers in a response cache: the same fingerprint must mean
    /// the same log-likelihoods.
    fn fingerprint(&self) -> String {
        self.name()
    }
    /// For each request: the continuation's summed log-probability, and whether greedy
    /// decoding would have produced it.
    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>>;
}

impl Model for Box<dyn Model> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn fingerprint(&self) -> String {
        (**self).fingerprint()
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        (**self).loglikelihood(requests)
    }
}
