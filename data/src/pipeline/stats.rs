//! Counts a run keeps: documents and characters in and out per step, why documents were
//! dropped, bad input records, languages and output lengths. Shard stats add up to run stats.

use crate::read::BadRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many bad-record examples (with file and position) a shard keeps for the report.
pub const BAD_EXAMPLES: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub name: String,
    pub documents_in: u64,
    pub documents_out: u64,
    pub chars_in: u64,
    pub chars_out: u64,
    pub dropped: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub shards: u64,
    pub records_read: u64,
    pub documents_in: u64,
    pub documents_out: u64,
    pub chars_in: u64,
    pub chars_out: u64,
    /// Tokens of the documents read and kept (with `stats_tokenizer`; else 0).
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub bad_records: BTreeMap<String, u64>,
    pub bad_examples: Vec<BadRecord>,
    pub steps: Vec<StepStats>,
    pub languages: BTreeMap<String, u64>,
    /// Output documents by length in characters: bucket k counts lengths in [2^k, 2^(k+1)).
    pub length_histogram: BTreeMap<u32, u64>,
}

impl Stats {
    pub fn for_steps(names: &[&str]) -> Self {
        Stats {
            steps: names
                .iter()
                .map(|n| StepStats {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn record_bad(&mut self, bad: BadRecord) {
        *self.bad_records.entry(bad.kind.clone()).or_default() += 1;
        if self.bad_examples.len() < BAD_EXAMPLES {
            self.bad_examples.push(bad);
        }
    }

    pub fn record_output(&mut self, chars: usize, language: Option<&str>) {
        self.documents_out += 1;
        self.chars_out += chars as u64;
        let bucket = usize::BITS - 1 - chars.max(1).leading_zeros();
        *self.length_histogram.entry(bucket).or_default() += 1;
        if let Some(l) = language {
            *self.languages.entry(l.to_string()).or_default() += 1;
        }
    }

    /// Adds another shard's counts into these.
    pub fn merge(&mut self, other: &Stats) {
        self.shards += other.shards;
        self.records_read += other.records_read;
        self.documents_in += other.documents_in;
        self.documents_out += other.documents_out;
        self.chars_in += other.chars_in;
        self.chars_out += other.chars_out;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        for (k, v) in &other.bad_records {
            *self.bad_records.entry(k.clone()).or_default() += v;
        }
        for b in &other.bad_examples {
            if self.bad_examples.len() < BAD_EXAMPLES {
                self.bad_examples.push(b.clone());
            }
        }
        if self.steps.is_empty() {
            self.steps = other
                .steps
                .iter()
                .map(|s| StepStats {
                    name: s.name.clone(),
                    ..Default::default()
                })
                .collect();
        }
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.documents_in += theirs.documents_in;
            mine.documents_out += theirs.documents_out;
            mine.chars_in += theirs.chars_in;
            mine.chars_out += theirs.chars_out;
            for (k, v) in &theirs.dropped {
                *mine.dropped.entry(k.clone()).or_default() += v;
            }
        }
        for (k, v) in &other.languages {
            *self.languages.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.length_histogram {
            *self.length_histogram.entry(*k).or_default() += v;
        }
    }
}
