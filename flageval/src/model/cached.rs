//! A response cache around any model: answers are stored in SQLite under a hash of the model's
//! fingerprint, the request kind and the request, committed chunk by chunk, so an interrupted
//! run resumes where it stopped and a re-run is instant.

use super::{GenRequest, Model, Request};
use crate::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Cached<M> {
    pub inner: M,
    db: rusqlite::Connection,
    path: PathBuf,
    /// Requests answered from the cache in this process.
    pub hits: usize,
    /// Requests passed on to the model in this process.
    pub inner_calls: usize,
    /// Requests sent to the model per committed chunk.
    pub chunk: usize,
}

impl<M: Model> Cached<M> {
    /// Opens (or creates) the cache at `path`.
    pub fn open(inner: M, path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                error: e,
            })?;
        }
        let fail =
            |e: rusqlite::Error| Error::Invalid(format!("response cache {}: {e}", path.display()));
        let db = rusqlite::Connection::open(path).map_err(fail)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL);",
        )
        .map_err(fail)?;
        Ok(Cached {
            inner,
            db,
            path: path.to_path_buf(),
            hits: 0,
            inner_calls: 0,
            chunk: 256,
        })
    }

    fn db_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("response cache {}: {e}", self.path.display()))
    }

    /// The cache key of one request: a hash of the model's fingerprint (asked once per call,
    /// not per request), the request kind and the request's parts.
    fn keys<'a>(&self, kind: &str, requests: impl Iterator<Item = Vec<&'a str>>) -> Vec<String> {
        let fingerprint = self.inner.fingerprint();
        requests
            .map(|parts| {
                let mut h = sha2::Sha256::new();
                for part in [fingerprint.as_str(), kind].iter().chain(&parts) {
                    h.update((part.len() as u64).to_le_bytes());
                    h.update(part.as_bytes());
                }
                hex::encode(h.finalize())
            })
            .collect()
    }

    /// Answers from the cache where present; the rest from `ask`, a chunk at a time, each
    /// chunk committed before the next is asked.
    fn through<Q: Clone, A: Serialize + DeserializeOwned + Clone>(
        &mut self,
        keys: Vec<String>,
        requests: &[Q],
        mut ask: impl FnMut(&mut M, &[Q]) -> Result<Vec<A>>,
    ) -> Result<Vec<A>> {
        let mut out: Vec<Option<A>> = Vec::with_capacity(requests.len());
        {
            let mut get = self
                .db
                .prepare_cached("SELECT answer FROM answers WHERE key = ?1")
                .map_err(|e| self.db_error(e))?;
            for k in &keys {
                let found: Option<String> = get.query_row([k], |row| row.get(0)).ok();
                out.push(found.and_then(|s| serde_json::from_str(&s).ok()));
            }
        }
        let missing: Vec<usize> = (0..requests.len()).filter(|&i| out[i].is_none()).collect();
        self.hits += requests.len() - missing.len();
        for part in missing.chunks(self.chunk.max(1)) {
            let reqs: Vec<Q> = part.iter().map(|&i| requests[i].clone()).collect();
            let answers = ask(&mut self.inner, &reqs)?;
            self.inner_calls += reqs.len();
            if answers.len() != reqs.len() {
                return Err(Error::Invalid(format!(
                    "the model answered {} of {} requests",
                    answers.len(),
                    reqs.len()
                )));
            }
            // One transaction per chunk: what is answered is kept, even if a later chunk fails.
            let tx = self
                .db
                .transaction()
                .map_err(|e| Error::Invalid(e.to_string()))?;
            {
                let mut put = tx
                    .prepare_cached("INSERT OR REPLACE INTO answers (key, answer) VALUES (?1, ?2)")
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                for (&i, a) in part.iter().zip(&answers) {
                    let text =
                        serde_json::to_string(a).map_err(|e| Error::Invalid(e.to_string()))?;
                    put.execute(rusqlite::params![keys[i], text])
                        .map_err(|e| Error::Invalid(e.to_string()))?;
                    out[i] = Some(a.clone());
                }
            }
            tx.commit().map_err(|e| self.db_error(e))?;
        }
        out.into_iter()
            .map(|a| a.ok_or_else(|| Error::Invalid("a request went unanswered".into())))
            .collect()
    }
}

impl<M: Model> Model for Cached<M> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn fingerprint(&self) -> String {
        self.inner.fingerprint()
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        let keys = self.keys(
            "loglikelihood",
            requests
                .iter()
                .map(|r| vec![r.context.as_str(), r.continuation.as_str()]),
        );
        self.through(keys, requests, |m, q| m.loglikelihood(q))
    }

    fn loglikelihood_rolling(&mut self, texts: &[String]) -> Result<Vec<f64>> {
        let keys = self.keys(
            "loglikelihood_rolling",
            texts.iter().map(|t| vec![t.as_str()]),
        );
        self.through(keys, texts, |m, q| m.loglikelihood_rolling(q))
    }

    fn generate_until(&mut self, requests: &[GenRequest]) -> Result<Vec<String>> {
        let specs: Vec<String> = requests
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .collect();
        let keys = self.keys("generate_until", specs.iter().map(|s| vec![s.as_str()]));
        self.through(keys, requests, |m, q| m.generate_until(q))
    }
}
