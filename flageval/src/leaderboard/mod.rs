//! The leaderboard: results files gathered into rows (one per results file: a model on a set
//! of tasks), columns per task (its main metric) and per capability, base and chat boards;
//! rendered as one self-contained HTML page (`html.rs`) and served with a read-only JSON API
//! (`crate::serve`).
//!
//! A task's column carries the task hash most rows have; a row whose hash differs ran another
//! task config or data, and its cell is marked and left out of its averages.

mod html;

pub use html::render;

use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize)]
pub struct Score {
    pub value: f64,
    pub stderr: Option<f64>,
    /// `metric,filter`.
    pub metric: String,
    pub higher_is_better: bool,
    pub hash: String,
    /// False when the hash differs from the column's.
    pub comparable: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// Stable id: the results file's path under the scanned root.
    pub id: String,
    pub model: String,
    /// `base` or `chat`.
    pub board: String,
    /// What the run recorded of the model: source, fingerprint, flageval version, date.
    pub provenance: Value,
    pub tasks: BTreeMap<String, Score>,
    pub capabilities: BTreeMap<String, f64>,
    /// Mean of the comparable higher-is-better task scores.
    pub average: Option<f64>,
    #[serde(skip)]
    pub path: PathBuf,
    /// Task → capability, as this results file's taxonomy says.
    #[serde(skip)]
    capability_of: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Column {
    pub task: String,
    pub metric: String,
    pub capability: Option<String>,
    pub hash: String,
    pub higher_is_better: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Board {
    pub columns: Vec<Column>,
    pub capabilities: Vec<String>,
    pub entries: Vec<Entry>,
}

/// `results.json` files under each path (a file is taken as is, a folder searched).
pub fn results_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
            continue;
        }
        let mut stack = vec![p.clone()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|e| Error::Io {
                path: d.clone(),
                error: e,
            })?;
            for e in entries.flatten() {
                let q = e.path();
                // Links are not followed: a link could lead out of the folder or loop.
                let Ok(kind) = e.file_type() else { continue };
                if kind.is_dir() {
                    stack.push(q);
                } else if kind.is_file() && q.file_name().is_some_and(|n| n == "results.json") {
                    out.push(q);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn entry(path: &Path, root: Option<&Path>) -> Result<Entry> {
    let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let results = v["results"]
        .as_object()
        .ok_or_else(|| bad("no `results` object: not a flageval results file".into()))?;
    let mut tasks = BTreeMap::new();
    for (task, r) in results {
        let main = v["taxonomy"][task]["main_metric"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                r.as_object()?
                    .keys()
                    .find(|k| k.contains(',') && !k.contains("_stderr"))
                    .cloned()
            });
        let Some(metric) = main else { continue };
        let Some(value) = r[&metric].as_f64() else {
            continue;
        };
        let (name, filter) = metric.split_once(',').unwrap_or((&metric, "none"));
        tasks.insert(
            task.clone(),
            Score {
                value,
                stderr: r[format!("{name}_stderr,{filter}")].as_f64(),
                higher_is_better: v["higher_is_better"][task][name].as_bool().unwrap_or(true),
                metric: metric.clone(),
                hash: v["task_hashes"][task].as_str().unwrap_or("").to_string(),
                comparable: true,
            },
        );
    }
    let id = root
        .and_then(|r| path.strip_prefix(r).ok())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let config = &v["config"];
    Ok(Entry {
        id,
        model: config["model"].as_str().unwrap_or("?").to_string(),
        board: config["board"].as_str().unwrap_or("base").to_string(),
        provenance: serde_json::json!({
            "source": config["model_source"], "fingerprint": config["model_fingerprint"],
            "flageval": config["flageval_version"], "date": config["date"],
            "limit": config["limit"],
        }),
        tasks,
        capabilities: BTreeMap::new(),
        average: None,
        path: path.to_path_buf(),
        capability_of: v["taxonomy"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(t, x)| Some((t.clone(), x["capability"].as_str()?.to_string())))
            .collect(),
    })
}

/// The board of every results file under `paths`; ids are paths relative to `root`.
pub fn build(paths: &[PathBuf], root: Option<&Path>) -> Result<Board> {
    let files = results_files(paths)?;
    // A file that is not a readable results file is left out (and said so), not fatal: one
    // stray file must not take the whole board down.
    let mut entries = Vec::new();
    for f in &files {
        match entry(f, root) {
            Ok(e) => entries.push(e),
            Err(e) => tracing::warn!("leaderboard: skipping {e}"),
        }
    }
    // Capabilities per task, from the results files' taxonomy (read with each entry).
    let capability_of: BTreeMap<String, String> = entries
        .iter()
        .flat_map(|e| e.capability_of.iter().map(|(t, c)| (t.clone(), c.clone())))
        .collect();
    // Each column's hash: the one most rows ran (ties: the smallest, for a stable choice).
    let mut votes: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for e in &entries {
        for (t, s) in &e.tasks {
            *votes
                .entry(t.clone())
                .or_default()
                .entry(s.hash.clone())
                .or_default() += 1;
        }
    }
    let mut columns = Vec::new();
    for (task, hashes) in &votes {
        let hash = hashes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(h, _)| h.clone())
            .unwrap_or_default();
        let first = entries.iter().find_map(|e| e.tasks.get(task));
        columns.push(Column {
            task: task.clone(),
            metric: first.map(|s| s.metric.clone()).unwrap_or_default(),
            capability: capability_of.get(task).cloned(),
            hash,
            higher_is_better: first.is_none_or(|s| s.higher_is_better),
        });
    }
    let capabilities: Vec<String> = {
        let mut c: Vec<String> = capability_of
            .iter()
            .filter(|(t, _)| votes.contains_key(*t))
            .map(|(_, c)| c.clone())
            .collect();
        c.sort();
        c.dedup();
        c
    };
    for e in &mut entries {
        for col in &columns {
            if let Some(s) = e.tasks.get_mut(&col.task) {
                s.comparable = s.hash == col.hash;
            }
        }
        let good: Vec<(&String, f64)> = e
            .tasks
            .iter()
            .filter(|(_, s)| s.comparable && s.higher_is_better)
            .map(|(t, s)| (t, s.value))
            .collect();
        for cap in &capabilities {
            let v: Vec<f64> = good
                .iter()
                .filter(|(t, _)| capability_of.get(*t) == Some(cap))
                .map(|(_, v)| *v)
                .collect();
            if !v.is_empty() {
                e.capabilities.insert(cap.clone(), crate::metrics::mean(&v));
            }
        }
        if !good.is_empty() {
            e.average = Some(crate::metrics::mean(
                &good.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            ));
        }
    }
    entries.sort_by(|a, b| {
        b.average
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&a.average.unwrap_or(f64::NEG_INFINITY))
    });
    Ok(Board {
        columns,
        capabilities,
        entries,
    })
}
