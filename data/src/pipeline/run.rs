//! Running a pipeline: the per-shard clean stage in parallel, then deduplication, then stats,
//! report and manifest.

use super::output::DocWriter;
use super::stats::Stats;
use super::{Pipeline, Shard};
use crate::read::Record;
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Which input file a shard was made from, as it was then: a changed or different file (new
/// files shift shard numbers) makes the shard run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InputId {
    path: String,
    bytes: u64,
    modified_ns: u128,
}

impl InputId {
    fn of(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(InputId {
            path: path.display().to_string(),
            bytes: meta.len(),
            modified_ns,
        })
    }
}

/// The completion marker of a shard: its stats, the config and the input that produced it.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    config_sha256: String,
    input: InputId,
    stats: Stats,
}

#[derive(Debug)]
pub struct RunSummary {
    pub stats: Stats,
    pub shards_done_before: usize,
    pub dedup: Option<crate::dedup::DedupStats>,
    pub final_dir: PathBuf,
}

fn marker_path(dir: &Path, shard: &str) -> PathBuf {
    dir.join(format!("{shard}.stats.json"))
}

/// The stats of a finished shard, `None` when it must run (no marker, or another input file);
/// an error when the output folder was made by another config.
fn read_marker(path: &Path, sha: &str, input: &InputId) -> Result<Option<Stats>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let marker: Marker =
        serde_json::from_str(&text).map_err(|e| Error::format(path, "marker", e.to_string()))?;
    if marker.config_sha256 != sha {
        return Err(Error::Invalid(format!(
            "{} was made by a different pipeline config (sha256 {}, now {sha}): use a new output dir or remove the old one",
            path.display(),
            marker.config_sha256
        )));
    }
    Ok((marker.input == *input).then_some(marker.stats))
}

fn write_marker(path: &Path, sha: &str, input: InputId, stats: &Stats) -> Result<()> {
    let m = Marker {
        config_sha256: sha.to_string(),
        input,
        stats: stats.clone(),
    };
    let text = serde_json::to_vec_pretty(&m).map_err(|e| Error::Invalid(e.to_string()))?;
    flagcore::fsutil::write_atomic(path, &text)?;
    Ok(())
}

impl Pipeline {
    /// Cleans and filters one shard into `clean/<shard>.jsonl.zst`; returns its stats.
    fn run_shard(&self, shard: &Shard, stop: &AtomicBool) -> Result<Stats> {
        let clean = self.out_dir().join("clean");
        let source = &self.config.inputs[shard.source];
        let input = InputId::of(&shard.path)?;
        let mut stats = Stats::for_steps(&self.step_names);
        stats.shards = 1;
        let mut out = DocWriter::create(&clean.join(format!("{}.jsonl.zst", shard.id)))?;
        let mut dropped = match self.config.output.keep_dropped {
            true => Some(DocWriter::create(
                &self
                    .out_dir()
                    .join("dropped")
                    .join(format!("{}.jsonl.zst", shard.id)),
            )?),
            false => None,
        };
        let strict = self.config.strict;
        source.read(&shard.path, &mut |record| {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Invalid("stopped: another shard failed".into()));
            }
            stats.records_read += 1;
            let mut doc = match record {
                Record::Bad(bad) if strict => return Err(bad.into_error()),
                Record::Bad(bad) => {
                    // An unknown field is a warning: the document itself still arrives.
                    if bad.kind == "unknown_field" {
                        stats.records_read -= 1;
                    }
                    stats.record_bad(bad);
                    return Ok(());
                }
                Record::Doc(doc) => doc,
            };
            stats.documents_in += 1;
            stats.chars_in += doc.text.chars().count() as u64;
            let count_tokens = |text: &str| -> Result<u64> {
                match &self.tokenizer {
                    Some(t) => Ok(t
                        .encode(text, false)
                        .map_err(|e| Error::Tokenizer(e.to_string()))?
                        .len() as u64),
                    None => Ok(0),
                }
            };
            stats.tokens_in += count_tokens(&doc.text)?;
            for (i, step) in self.steps.iter().enumerate() {
                let before = doc.text.chars().count() as u64;
                let s = &mut stats.steps[i];
                s.documents_in += 1;
                s.chars_in += before;
                if let Some(reason) = step.apply(&mut doc)? {
                    *s.dropped.entry(reason.clone()).or_default() += 1;
                    if let Some(w) = dropped.as_mut() {
                        doc.metadata
                            .insert("drop_step".into(), self.step_names[i].into());
                        doc.metadata.insert("drop_reason".into(), reason.into());
                        w.write(&doc)?;
                    }
                    return Ok(());
                }
                s.documents_out += 1;
                s.chars_out += doc.text.chars().count() as u64;
            }
            let lang = doc
                .metadata
                .get("language")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            stats.record_output(doc.text.chars().count(), lang.as_deref());
            stats.tokens_out += count_tokens(&doc.text)?;
            out.write(&doc)
        })?;
        out.finish()?;
        if let Some(w) = dropped {
            w.finish()?;
        }
        write_marker(
            &marker_path(&clean, &shard.id),
            &self.config_sha256,
            input,
            &stats,
        )?;
        Ok(stats)
    }

    /// Runs what is missing: shards without a marker, then deduplication if configured.
    pub fn run(&self, progress: bool) -> Result<RunSummary> {
        let clean = self.out_dir().join("clean");
        std::fs::create_dir_all(&clean).map_err(|e| Error::io(&clean, e))?;
        let mut manifest = flagcore::Manifest::begin("flagdata run", env!("CARGO_PKG_VERSION"))
            .with_config(&self.resolved)?;
        manifest.add_input(&self.config_path)?;
        let threads = self
            .config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut done_before = 0;
        let mut todo = Vec::new();
        let mut stats_by_shard: Vec<Option<Stats>> = vec![None; self.shards.len()];
        for (i, shard) in self.shards.iter().enumerate() {
            let input = InputId::of(&shard.path)?;
            match read_marker(&marker_path(&clean, &shard.id), &self.config_sha256, &input)? {
                Some(s) => {
                    done_before += 1;
                    stats_by_shard[i] = Some(s);
                }
                None => todo.push(i),
            }
        }
        let bar = if progress {
            flagcore::telemetry::progress_bar(todo.len() as u64, "clean")
        } else {
            indicatif::ProgressBar::hidden()
        };
        let stop = AtomicBool::new(false);
        let results: Vec<(usize, Result<Stats>)> = pool.install(|| {
            todo.par_iter()
                .map(|&i| {
                    let r = self.run_shard(&self.shards[i], &stop);
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    bar.inc(1);
                    (i, r)
                })
                .collect()
        });
        bar.finish_and_clear();
        // Report the first real failure, not the "stopped" of the shards it interrupted.
        let mut first_err = None;
        for (i, r) in results {
            match r {
                Ok(s) => stats_by_shard[i] = Some(s),
                Err(e) => {
                    let stopped = e.to_string().starts_with("stopped:");
                    if first_err.is_none()
                        || (!stopped && first_err.as_ref().is_some_and(|(s, _)| *s))
                    {
                        first_err = Some((stopped, e));
                    }
                }
            }
        }
        if let Some((_, e)) = first_err {
            return Err(e);
        }
        let mut stats = Stats::for_steps(&self.step_names);
        for s in stats_by_shard.iter().flatten() {
            stats.merge(s);
        }
        for shard in &self.shards {
            manifest.add_input(&shard.path)?;
        }
        // Deduplication reruns whenever any clean shard changed: its inputs are named by the
        // shards' markers (input files and stats).
        let mut clean_digest = xxhash_rust::xxh3::Xxh3::new();
        for shard in &self.shards {
            clean_digest.update(shard.id.as_bytes());
            let marker = std::fs::read(marker_path(&clean, &shard.id))
                .map_err(|e| Error::io(marker_path(&clean, &shard.id), e))?;
            clean_digest.update(&marker);
        }
        let clean_digest = format!("{:032x}", clean_digest.digest128());
        let dedup = match &self.config.dedup {
            Some(cfg) => Some(crate::dedup::run(
                self,
                cfg,
                &pool,
                progress,
                &clean_digest,
            )?),
            None => None,
        };
        let final_dir = self.final_dir();
        if self.config.output.parquet {
            for shard in &self.shards {
                let out = final_dir.join(format!("{}.parquet", shard.id));
                let jsonl = final_dir.join(format!("{}.jsonl.zst", shard.id));
                let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                // Remade when its JSON Lines source is newer (a shard or dedup rerun).
                if modified(&out).is_none() || modified(&out) < modified(&jsonl) {
                    super::parquet_out::write_parquet(&out, super::output::doc_iter(&jsonl)?)?;
                }
            }
        }
        crate::report::write(self.out_dir(), &self.config.name, &stats, dedup.as_ref())?;
        manifest.finish();
        manifest.write_beside(self.out_dir())?;
        Ok(RunSummary {
            stats,
            shards_done_before: done_before,
            dedup,
            final_dir,
        })
    }
}
