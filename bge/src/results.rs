//! Evaluation results in the layout flageval's leaderboard reads (`results.json`:
//! `results` per task as `metric,none`, `taxonomy` with the main metric and capability,
//! `higher_is_better`, `task_hashes`, `config` with the model, its fingerprint and the board),
//! so embedding models get their own board beside the language models.

use crate::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// One evaluated task: its name, capability (`retrieval`, `sts`), main metric, scores, and a
/// hash of what was evaluated (data and settings): scores compare only under equal hashes.
#[derive(Clone, Debug)]
pub struct TaskResult {
    pub task: String,
    pub capability: String,
    pub main_metric: String,
    pub scores: Vec<(String, f64)>,
    pub hash: String,
}

/// sha256 of the model's weights (or of its config when it has no single weights file).
pub fn fingerprint(model: &Path) -> Result<String> {
    let weights = model.join("model.safetensors");
    let file = if weights.is_file() {
        weights
    } else {
        model.join("config.json")
    };
    flagcore::fsutil::sha256_file(&file)
        .map(|(h, _)| h)
        .map_err(|e| Error::File {
            path: file,
            message: e.to_string(),
        })
}

/// The results document for `model` (a folder) with `extra` fields in its config.
pub fn document(model: &Path, tasks: &[TaskResult], date: &str, extra: Value) -> Result<Value> {
    let (mut results, mut taxonomy, mut better, mut hashes) =
        (Map::new(), Map::new(), Map::new(), Map::new());
    for t in tasks {
        let scores: Map<String, Value> = t
            .scores
            .iter()
            .map(|(k, v)| (format!("{k},none"), json!(v)))
            .collect();
        results.insert(t.task.clone(), Value::Object(scores));
        taxonomy.insert(
            t.task.clone(),
            json!({"main_metric": format!("{},none", t.main_metric), "capability": t.capability}),
        );
        better.insert(
            t.task.clone(),
            t.scores
                .iter()
                .map(|(k, _)| (k.clone(), json!(true)))
                .collect(),
        );
        hashes.insert(t.task.clone(), json!(t.hash));
    }
    // A folder named `model` (as packaged assets are) is named by its parent.
    let named = if model.file_name().is_some_and(|n| n == "model") {
        model.parent().unwrap_or(model)
    } else {
        model
    };
    let name = named
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.display().to_string());
    let mut config = json!({
        "model": name,
        "board": "embedding",
        "model_source": model.display().to_string(),
        "model_fingerprint": fingerprint(model)?,
        "bge_version": env!("CARGO_PKG_VERSION"),
        "date": date,
    });
    if let (Some(c), Value::Object(e)) = (config.as_object_mut(), extra) {
        c.extend(e);
    }
    Ok(json!({
        "results": results,
        "taxonomy": taxonomy,
        "higher_is_better": better,
        "task_hashes": hashes,
        "config": config,
    }))
}
