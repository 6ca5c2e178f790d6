//! Documents of a task split from local files: CSV (a header row; every value a string, as
//! Hugging Face's csv loader gives for text columns), a JSON list, or JSON lines.

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The file of `split`: `data_files` is one path (for every split) or split → path.
pub fn split_file(data_files: Option<&Value>, split: &str, base: &Path) -> Option<PathBuf> {
    let rel = match data_files? {
        Value::String(s) => s.clone(),
        Value::Object(m) => m.get(split)?.as_str()?.to_string(),
        _ => return None,
    };
    let p = PathBuf::from(rel);
    Some(if p.is_absolute() { p } else { base.join(p) })
}

/// Reads every document of `path` with the loader `kind` (`csv` or `json`).
pub fn read_docs(kind: &str, path: &Path) -> Result<Vec<Value>> {
    let io = |e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        error: e,
    };
    match kind {
        "csv" => {
            let mut reader = csv::Reader::from_path(path)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?
                .iter()
                .map(|h| h.trim_start_matches('\u{feff}').to_string())
                .collect();
            reader
                .records()
                .enumerate()
                .map(|(i, rec)| {
                    let rec = rec.map_err(|e| {
                        Error::Invalid(format!("{} row {}: {e}", path.display(), i + 1))
                    })?;
                    let doc: Map<String, Value> = header
                        .iter()
                        .zip(rec.iter())
                        .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
                        .collect();
                    Ok(Value::Object(doc))
                })
                .collect()
        }
        "json" => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let trimmed = text.trim_start();
            if trimmed.starts_with('[') {
                serde_json::from_str(trimmed)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
            } else {
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| {
                        serde_json::from_str(l).map_err(|e| {
                            Error::Invalid(format!("{} line {}: {e}", path.display(), i + 1))
                        })
                    })
                    .collect()
            }
        }
        other => Err(Error::Invalid(format!(
            "dataset_path `{other}`: this runner reads `csv` and `json` (lists or JSON lines) files"
        ))),
    }
}
