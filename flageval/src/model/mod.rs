//! Models behind one trait with lm-eval's three request kinds: a local flagscale checkpoint or
//! GGUF (`local/`), any OpenAI-compatible server (`server.rs`), a deterministic dummy for tests
//! (`dummy.rs`), and a SQLite response cache around any of them (`cached.rs`).

mod cached;
mod dummy;
mod local;
mod server;

pub use cached::Cached;
pub use dummy::Dummy;
pub use local::{rolling_windows, Local};
pub use server::Server;

use crate::Result;
use serde::{Deserialize, Serialize};

/// A scoring request: the log-probability of `continuation` after `context`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    pub context: String,
    pub continuation: String,
}

/// A generation request: text after `context` until one of `until` (left out of the answer),
/// the end-of-text token, or `max_gen_toks` tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenRequest {
    pub context: String,
    pub until: Vec<String>,
    pub max_gen_toks: usize,
    /// 0 is greedy decoding.
    pub temperature: f64,
    pub seed: u64,
}

pub trait Model {
    /// A name for results.
    fn name(&self) -> String;
    /// What identifies the model's answers in a response cache: the same fingerprint must mean
    /// the same answers.
    fn fingerprint(&self) -> String {
        self.name()
    }
    /// For each request: the continuation's summed log-probability, and whether greedy
    /// decoding would have produced it.
    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>>;
    /// For each text: the summed log-probability of all its tokens, the first given the
    /// end-of-text token, in windows of the model's context (lm-eval's rolling windows).
    fn loglikelihood_rolling(&mut self, texts: &[String]) -> Result<Vec<f64>>;
    /// For each request: the generated text, cut before the first stop string.
    fn generate_until(&mut self, requests: &[GenRequest]) -> Result<Vec<String>>;
}

/// A borrowed or boxed model is a model: every call goes to the one behind it.
macro_rules! forward_model {
    ($($ty:ty),*) => {$(
        impl<M: Model + ?Sized> Model for $ty {
            fn name(&self) -> String {
                (**self).name()
            }

            fn fingerprint(&self) -> String {
                (**self).fingerprint()
            }

            fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
                (**self).loglikelihood(requests)
            }

            fn loglikelihood_rolling(&mut self, texts: &[String]) -> Result<Vec<f64>> {
                (**self).loglikelihood_rolling(texts)
            }

            fn generate_until(&mut self, requests: &[GenRequest]) -> Result<Vec<String>> {
                (**self).generate_until(requests)
            }
        }
    )*};
}

forward_model!(&mut M, Box<M>);

/// Cuts `text` before the first occurrence of any non-empty stop string, as lm-eval does with
/// a generation.
pub fn cut_at_stops(text: &str, until: &[String]) -> String {
    let end = until
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .unwrap_or(text.len());
    text[..end].to_string()
}
