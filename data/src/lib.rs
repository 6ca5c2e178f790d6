//! `flagdata`: the corpus pipeline, from raw WuDao-style text to Megatron training shards.
//!
//! Stages, one folder each: [`read`] (WuDao JSON arrays, JSON Lines, Parquet, text folders),
//! [`clean`] (normalisation, PII removal), [`filter`] (length, Gopher, C4, FineWeb, language,
//! decontamination), [`dedup`] (exact and MinHash LSH), [`pipeline`] (YAML-described,
//! parallel, resumable runs with stats), [`tokenize`] (train, load and apply tokenizers) and
//! [`indexed`] (Megatron's `.bin`/`.idx` writer and reader), [`mix`] (weighted blends and
//! hash splits).

pub mod clean;
pub mod dedup;
mod document;
mod error;
pub mod filter;
pub mod indexed;
pub mod mix;
pub mod pipeline;
pub mod read;
pub mod report;
pub mod tokenize;

pub use document::Document;
pub use error::{Error, Result};
