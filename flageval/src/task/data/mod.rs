//! Documents of a task split from local files: CSV (a header row; every value a string, as
//! Hugging Face's csv loader gives for text columns), JSON (a list, JSON lines, or an object
//! whose `field` holds the list, as `datasets`' json loader reads) and Parquet.
//!
//! Plain text (`text`, as `datasets`' text loader: one document per line, paragraph or file,
//! `{"text": …}`; blank samples are skipped).
//!
//! A data path is relative to the task YAML, absolute, or `asset:NAME/REST` — a file inside
//! an asset that `cargo xtask assets` fetched into the cache by pinned version and hash.

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

mod parquet;

/// The file of `split`: `data_files` is one path (for every split) or split → path.
pub fn split_file(data_files: Option<&Value>, split: &str, base: &Path) -> Option<Result<PathBuf>> {
    let rel = match data_files? {
        Value::String(s) => s.clone(),
        Value::Object(m) => m.get(split)?.as_str()?.to_string(),
        _ => return None,
    };
    Some(resolve(&rel, base))
}

fn resolve(rel: &str, base: &Path) -> Result<PathBuf> {
    if let Some(rest) = rel.strip_prefix("asset:") {
        let (name, inner) = rest.split_once('/').unwrap_or((rest, ""));
        let dir = flagcore::cache::asset_dir(name).ok_or_else(|| {
            Error::Invalid(format!(
                "data file `{rel}`: asset `{name}` is not in the cache (run `cargo xtask assets`)"
            ))
        })?;
        return Ok(dir.join(inner));
    }
    let p = PathBuf::from(rel);
    Ok(if p.is_absolute() { p } else { base.join(p) })
}

/// Reads every document of `path` with the loader `kind` (`csv`, `json`, `parquet` or
/// `text`); `field` names the key of a JSON object that holds the documents, `sample_by` the
/// text loader's unit (`line`, `paragraph` or `document`).
pub fn read_docs(
    kind: &str,
    path: &Path,
    field: Option<&str>,
    sample_by: Option<&str>,
) -> Result<Vec<Value>> {
    let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
    match kind {
        "csv" => read_csv(path),
        "json" => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                path: path.to_path_buf(),
                error: e,
            })?;
            let trimmed = text.trim_start();
            if let Some(field) = field {
                let mut whole: Value =
                    serde_json::from_str(trimmed).map_err(|e| bad(e.to_string()))?;
                return match whole.get_mut(field).map(Value::take) {
                    Some(Value::Array(docs)) => Ok(docs),
                    Some(_) => Err(bad(format!("field `{field}` is not a list"))),
                    None => Err(bad(format!("no field `{field}`"))),
                };
            }
            if trimmed.starts_with('[') {
                serde_json::from_str(trimmed).map_err(|e| bad(e.to_string()))
            } else {
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| {
                        serde_json::from_str(l).map_err(|e| bad(format!("line {}: {e}", i + 1)))
                    })
                    .collect()
            }
        }
        "parquet" => parquet::read(path),
        "text" => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                path: path.to_path_buf(),
                error: e,
            })?;
            let samples: Vec<&str> = match sample_by.unwrap_or("line") {
                "line" => text.lines().collect(),
                "paragraph" => text.split("\n\n").collect(),
                "document" => vec![text.as_str()],
                other => {
                    return Err(bad(format!(
                        "sample_by `{other}`: expected line, paragraph or document"
                    )))
                }
            };
            Ok(samples
                .into_iter()
                .map(|s| s.trim_end_matches(['\r', '\n']))
                .filter(|s| !s.trim().is_empty())
                .map(|s| serde_json::json!({ "text": s }))
                .collect())
        }
        other => Err(Error::Invalid(format!(
            "dataset_path `{other}`: this runner reads `csv`, `json` (lists, JSON lines or a \
             `field` of an object), `parquet` and `text` files"
        ))),
    }
}

fn read_csv(path: &Path) -> Result<Vec<Value>> {
    let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    reader
        .records()
        .enumerate()
        .map(|(i, rec)| {
            let rec = rec.map_err(|e| bad(format!("row {}: {e}", i + 1)))?;
            let doc: Map<String, Value> = header
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
                .collect();
            Ok(Value::Object(doc))
        })
        .collect()
}
