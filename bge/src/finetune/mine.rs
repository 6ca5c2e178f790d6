//! Hard-negative mining as FlagEmbedding's `hn_mine` does it: embed a candidate pool and the
//! queries (with the query instruction), retrieve exactly, and sample negatives among the
//! hits ranked in a window (default 10–210), never a positive or the query itself; when the
//! window holds too few, the rest are drawn from the whole pool.

use super::data::Example;
use crate::retrieval::{rows_tensor, search};
use crate::{Encoder, Error, Result};
use flagcore::rng::Rng;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
pub struct MineOptions {
    /// Ranks [start, end) to sample from, 0-based as FlagEmbedding's `range_for_sampling`.
    pub range: (usize, usize),
    pub negatives: usize,
    pub query_instruction: String,
    pub seed: u64,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions {
            range: (10, 210),
            negatives: 15,
            query_instruction: String::new(),
            seed: 42,
        }
    }
}

/// Replaces each example's `neg` with mined negatives. `pool` is the candidate corpus; without
/// one, every `pos` and `neg` text of the examples (deduplicated, first seen first) is.
pub fn mine(
    encoder: &Encoder,
    examples: &mut [Example],
    pool: Option<Vec<String>>,
    opts: &MineOptions,
) -> Result<()> {
    let (start, end) = opts.range;
    if start >= end {
        return Err(Error::Invalid(format!(
            "range {start}-{end}: the start must be below the end"
        )));
    }
    let pool = pool.unwrap_or_else(|| {
        let mut seen = HashSet::new();
        examples
            .iter()
            .flat_map(|e| e.pos.iter().chain(&e.neg))
            .filter(|t| seen.insert(t.as_str()))
            .cloned()
            .collect()
    });
    // Each text once: a repeated text must not come back as another copy of a positive.
    let mut seen = HashSet::new();
    let pool: Vec<String> = pool
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect();
    if pool.is_empty() {
        return Err(Error::Invalid("the candidate pool is empty".into()));
    }
    let index: HashMap<&str, usize> = pool
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let corpus = rows_tensor(&encoder.encode(&pool)?);
    let queries: Vec<&str> = examples.iter().map(|e| e.query.as_str()).collect();
    let q = rows_tensor(&encoder.encode_queries(&queries, &opts.query_instruction)?);
    let hits = search(&q, &corpus, end, 256)?;
    let mut rng = Rng::new(opts.seed);
    for (ex, hits) in examples.iter_mut().zip(hits) {
        let banned: HashSet<usize> = ex
            .pos
            .iter()
            .map(String::as_str)
            .chain([ex.query.as_str()])
            .filter_map(|t| index.get(t).copied())
            .collect();
        let window: Vec<usize> = hits
            .iter()
            .skip(start)
            .map(|h| h.0)
            .filter(|i| !banned.contains(i))
            .collect();
        let mut chosen = rng.sample(&window, opts.negatives);
        // Too few in the window: fill from the whole pool (FlagEmbedding does the same).
        let mut tries = 0;
        while chosen.len() < opts.negatives && tries < 100 * opts.negatives {
            let i = rng.below(pool.len());
            if !banned.contains(&i) && !chosen.contains(&i) {
                chosen.push(i);
            }
            tries += 1;
        }
        ex.neg = chosen.into_iter().map(|i| pool[i].clone()).collect();
    }
    Ok(())
}
