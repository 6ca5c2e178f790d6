//! Pipelines described in YAML: inputs, ordered cleaning and filtering steps, optional
//! deduplication, run in parallel over shards and resumable.
//!
//! ```yaml
//! name: wudao-zh
//! inputs:
//!   - {name: zh, format: wudao, paths: [raw/zh]}
//! output: {dir: out/zh}
//! steps:
//!   - nfkc
//!   - normalize_whitespace
//!   - gopher_quality: {language: zh}
//!   - language: {languages: [zh], min_confidence: 0.8}
//! dedup: {exact: true, minhash: {n_grams: 5, bands: 14, rows: 8}}
//! ```
//!
//! Layout of the output folder: `clean/<shard>.jsonl.zst` plus its completion marker
//! `clean/<shard>.stats.json` (written last, atomically); `dedup/` likewise; then `stats.json`,
//! `report.md` and `manifest.json`. A rerun skips every shard whose marker exists.

pub mod output;
pub mod parquet_out;
mod run;
pub mod stats;
pub mod steps;

use crate::dedup::DedupConfig;
use crate::read::SourceSpec;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub use run::RunSummary;
pub use stats::Stats;
use steps::{parse_step, Step, StepSpec};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub dir: PathBuf,
    /// Also write dropped documents (with `drop_reason` and `drop_step` in metadata).
    #[serde(default)]
    pub keep_dropped: bool,
    /// Also write the final documents as Parquet (`<shard>.parquet` beside the JSONL).
    #[serde(default)]
    pub parquet: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub name: String,
    pub inputs: Vec<SourceSpec>,
    pub output: OutputSpec,
    #[serde(default)]
    pub steps: Vec<Value>,
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
    /// Fail on the first bad input record instead of counting it and going on.
    #[serde(default)]
    pub strict: bool,
    /// Worker threads (default: all cores).
    #[serde(default)]
    pub workers: Option<usize>,
    /// A `tokenizer.json` to count tokens with (documents read and kept) in the stats.
    #[serde(default)]
    pub stats_tokenizer: Option<PathBuf>,
}

/// One input file and where its outputs go.
#[derive(Clone, Debug)]
pub struct Shard {
    pub source: usize,
    pub path: PathBuf,
    /// Stable name: `<source>-<index in the source's sorted file list>`.
    pub id: String,
}

/// A validated pipeline, ready to run: every step is built and every input listed, so a bad
/// description fails here, before any work.
#[derive(Debug)]
pub struct Pipeline {
    pub config: PipelineConfig,
    pub config_path: PathBuf,
    pub resolved: Value,
    pub config_sha256: String,
    pub steps: Vec<Step>,
    pub step_names: Vec<&'static str>,
    pub shards: Vec<Shard>,
    pub tokenizer: Option<tokenizers::Tokenizer>,
}

impl Pipeline {
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let resolved = flagcore::config::ConfigLoader::new()
            .file(path)
            .overrides(overrides)
            .resolve()?;
        let config: PipelineConfig = resolved.parse()?;
        let fail = |key: String, message: String| Error::Pipeline {
            path: path.to_path_buf(),
            key,
            message,
        };
        let mut steps = Vec::new();
        let mut step_names = Vec::new();
        for (i, raw) in config.steps.iter().enumerate() {
            let spec: StepSpec = parse_step(raw).map_err(|m| fail(format!("steps.{i}"), m))?;
            step_names.push(spec.name());
            steps.push(spec.build().map_err(|m| fail(format!("steps.{i}"), m))?);
        }
        if config.inputs.is_empty() {
            return Err(fail("inputs".into(), "no inputs listed".into()));
        }
        let mut shards = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (si, source) in config.inputs.iter().enumerate() {
            let key = format!("inputs.{si}");
            if !names.insert(source.name.clone()) {
                return Err(fail(
                    format!("{key}.name"),
                    format!("input name `{}` is used twice", source.name),
                ));
            }
            if source.name.is_empty()
                || !source
                    .name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return Err(fail(
                    format!("{key}.name"),
                    "input names are letters, digits, `_` and `-`".into(),
                ));
            }
            let files = source
                .files()
                .map_err(|e| fail(format!("{key}.paths"), e.to_string()))?;
            if files.is_empty() {
                return Err(fail(
                    format!("{key}.paths"),
                    format!("no {:?} files found", source.format),
                ));
            }
            for (fi, file) in files.into_iter().enumerate() {
                shards.push(Shard {
                    source: si,
                    path: file,
                    id: format!("{}-{fi:05}", source.name),
                });
            }
        }
        if config.workers == Some(0) {
            return Err(fail("workers".into(), "must be at least 1".into()));
        }
        if let Some(d) = &config.dedup {
            d.validate().map_err(|m| fail("dedup".into(), m))?;
        }
        let tokenizer = match &config.stats_tokenizer {
            Some(t) => Some(
                crate::tokenize::load(t)
                    .map_err(|e| fail("stats_tokenizer".into(), e.to_string()))?,
            ),
            None => None,
        };
        // The markers' config hash leaves out settings that do not change outputs, so a rerun
        // with more workers or --strict resumes instead of refusing the folder.
        let mut outputs_config = resolved.value().clone();
        if let Some(m) = outputs_config.as_object_mut() {
            m.remove("workers");
            m.remove("strict");
        }
        let config_sha256 = flagcore::manifest::config_sha256(&outputs_config)?;
        Ok(Pipeline {
            resolved: resolved.value().clone(),
            config,
            config_path: path.to_path_buf(),
            config_sha256,
            steps,
            step_names,
            shards,
            tokenizer,
        })
    }

    pub fn out_dir(&self) -> &Path {
        &self.config.output.dir
    }

    /// Where the documents that survive the whole pipeline end up.
    pub fn final_dir(&self) -> PathBuf {
        self.out_dir().join(if self.config.dedup.is_some() {
            "dedup"
        } else {
            "clean"
        })
    }
}
