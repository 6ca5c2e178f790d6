//! A response cache around any model: answers are stored in SQLite under a hash of the model's
//! fingerprint and the request, committed chunk by chunk, so an interrupted run resumes where
//! it stopped and a re-run is instant.

use super::{Model, Request};
use crate::{Error, Result};
use sha2::Digest;
use std::path::Path;

#[derive(Debug)]
pub struct Cached<M> {
    pub inner: M,
    db: rusqlite::Connection,
    /// Requests answered from the cache in this process.
    pub hits: usize,
    /// Requests sent to the model per committed chunk.
    pub chunk: usize,
}

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("response cache {}: {e}", path.display()))
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
        let db = rusqlite::Connection::open(path).map_err(db_error(path))?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS loglikelihood (key TEXT PRIMARY KEY, ll REAL NOT NULL, greedy INTEGER NOT NULL);",
        )
        .map_err(db_error(path))?;
        Ok(Cached {
            inner,
            db,
            hits: 0,
            chunk: 256,
        })
    }

    fn key(&self, r: &Request) -> String {
        let mut h = sha2::Sha256::new();
        for part in [
            self.inner.fingerprint().as_str(),
            "loglikelihood",
            &r.context,
            &r.continuation,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
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
        let here = Path::new("cache");
        let keys: Vec<String> = requests.iter().map(|r| self.key(r)).collect();
        let mut out: Vec<Option<(f64, bool)>> = Vec::with_capacity(requests.len());
        {
            let mut get = self
                .db
                .prepare_cached("SELECT ll, greedy FROM loglikelihood WHERE key = ?1")
                .map_err(db_error(here))?;
            for k in &keys {
                let found = get
                    .query_row([k], |row| {
                        Ok((row.get::<_, f64>(0)?, row.get::<_, i64>(1)? != 0))
                    })
                    .ok();
                out.push(found);
            }
        }
        let missing: Vec<usize> = (0..requests.len()).filter(|&i| out[i].is_none()).collect();
        self.hits += requests.len() - missing.len();
        for part in missing.chunks(self.chunk.max(1)) {
            let reqs: Vec<Request> = part.iter().map(|&i| requests[i].clone()).collect();
            let answers = self.inner.loglikelihood(&reqs)?;
            // One transaction per chunk: what is answered is kept, even if a later chunk fails.
            let tx = self.db.transaction().map_err(db_error(here))?;
            {
                let mut put = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO loglikelihood (key, ll, greedy) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(db_error(here))?;
                for (&i, a) in part.iter().zip(&answers) {
                    put.execute(rusqlite::params![keys[i], a.0, a.1 as i64])
                        .map_err(db_error(here))?;
                    out[i] = Some(*a);
                }
            }
            tx.commit().map_err(db_error(here))?;
        }
        out.into_iter()
            .map(|a| a.ok_or_else(|| Error::Invalid("a request went unanswered".into())))
            .collect()
    }
}
