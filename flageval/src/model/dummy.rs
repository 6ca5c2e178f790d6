//! A deterministic model for tests: answers from a hash of the request, so runs are repeatable
//! without weights.

use super::{cut_at_stops, GenRequest, Model, Request};
use crate::Result;
use sha2::Digest;

#[derive(Debug, Default)]
pub struct Dummy {
    /// Requests answered, to check caching and batching.
    pub calls: usize,
    /// Fail (as a server dying mid-run would) once this many requests were answered.
    pub fail_after: Option<usize>,
}

impl Dummy {
    fn count(&mut self, n: usize) -> Result<()> {
        if self.fail_after.is_some_and(|max| self.calls + n > max) {
            return Err(crate::Error::Invalid(format!(
                "dummy model: stopped after {} requests",
                self.calls
            )));
        }
        self.calls += n;
        Ok(())
    }
}

fn hash(parts: &[&str]) -> [u8; 32] {
    sha2::Sha256::digest(parts.join("\u{0}")).into()
}

impl Model for Dummy {
    fn name(&self) -> String {
        "dummy".into()
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        self.count(requests.len())?;
        Ok(requests
            .iter()
            .map(|r| {
                let h = hash(&[&r.context, &r.continuation]);
                let x = u16::from_le_bytes([h[0], h[1]]) as f64 / 65536.0;
                (-1.0 - 10.0 * x, h[2] % 4 == 0)
            })
            .collect())
    }

    fn loglikelihood_rolling(&mut self, texts: &[String]) -> Result<Vec<f64>> {
        self.count(texts.len())?;
        // About 2 nats per character, varying by text.
        Ok(texts
            .iter()
            .map(|t| -(t.chars().count() as f64) * (1.5 + hash(&[t])[0] as f64 / 255.0))
            .collect())
    }

    fn generate_until(&mut self, requests: &[GenRequest]) -> Result<Vec<String>> {
        self.count(requests.len())?;
        Ok(requests
            .iter()
            .map(|r| {
                let h = hash(&[&r.context]);
                let text = format!(" answer {}\n\nmore", h[0] % 4);
                cut_at_stops(&text, &r.until)
            })
            .collect())
    }
}
