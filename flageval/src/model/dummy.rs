//! A deterministic model for tests: log-likelihoods from a hash of the request, so runs are
//! repeatable without weights.

use super::{Model, Request};
use crate::Result;
use sha2::Digest;

#[derive(Debug, Default)]
pub struct Dummy {
    /// Requests answered, to check caching and batching.
    pub calls: usize,
    /// Fail (as a server dying mid-run would) once this many requests were answered.
    pub fail_after: Option<usize>,
}

impl Model for Dummy {
    fn name(&self) -> String {
        "dummy".into()
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        if self
            .fail_after
            .is_some_and(|n| self.calls + requests.len() > n)
        {
            return Err(crate::Error::Invalid(format!(
                "dummy model: stopped after {} requests",
                self.calls
            )));
        }
        self.calls += requests.len();
        Ok(requests
            .iter()
            .map(|r| {
                let h = sha2::Sha256::digest(format!("{}\u{0}{}", r.context, r.continuation));
                let x = u16::from_le_bytes([h[0], h[1]]) as f64 / 65536.0;
                (-1.0 - 10.0 * x, h[2] % 4 == 0)
            })
            .collect())
    }
}
