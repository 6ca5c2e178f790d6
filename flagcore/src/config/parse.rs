//! Reading config files into a tree, and the typed parse with unknown-key detection.

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

fn config_error(path: &Path, message: String) -> Error {
    Error::Config {
        file: path.display().to_string(),
        key: String::new(),
        message,
    }
}

/// Reads a `.yaml`/`.yml`, `.json` or `.toml` file into a mapping.
pub fn read_file(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let value = match ext.as_str() {
        "yaml" | "yml" => from_yaml(&text).map_err(|m| config_error(path, m))?,
        "json" => serde_json::from_str(&text)
            .map_err(|e| config_error(path, format!("not valid JSON: {e}")))?,
        "toml" => from_toml(&text).map_err(|m| config_error(path, m))?,
        _ => {
            return Err(config_error(
                path,
                "unknown config format (expected .yaml, .yml, .json or .toml)".to_string(),
            ))
        }
    };
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Default::default())),
        other => Err(config_error(
            path,
            format!(
                "the top level must be a mapping of keys, not {}",
                super::tree::kind(&other)
            ),
        )),
    }
}

/// YAML with anchors, aliases and `<<` merge keys applied.
pub fn from_yaml(text: &str) -> Result<Value, String> {
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    yaml.apply_merge()
        .map_err(|e| format!("bad YAML merge key: {e}"))?;
    serde_json::to_value(yaml).map_err(|e| format!("unsupported YAML: {e}"))
}

fn from_toml(text: &str) -> Result<Value, String> {
    toml::from_str::<Value>(text).map_err(|e| {
        let at = e.span().map(|s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line} column {col}")
        });
        format!(
            "not valid TOML: {}{}",
            e.message().trim(),
            at.unwrap_or_default()
        )
    })
}

fn dotted_error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let segs: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    segs.join(".")
}

fn dotted_ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => join(dotted_ignored_path(parent), &index.to_string()),
        P::Map { parent, key } => join(dotted_ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            dotted_ignored_path(parent)
        }
    }
}

fn join(prefix: String, seg: &str) -> String {
    if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}.{seg}")
    }
}

/// Deserializes `T`, returning it with the dotted paths of keys it ignored; on failure, the
/// dotted path where it failed and serde's message.
pub fn typed<T: DeserializeOwned>(value: Value) -> Result<(T, Vec<String>), (String, String)> {
    let mut unknown = Vec::new();
    let mut record = |p: serde_ignored::Path<'_>| unknown.push(dotted_ignored_path(&p));
    let de = serde_ignored::Deserializer::new(value, &mut record);
    let parsed: std::result::Result<T, _> = serde_path_to_error::deserialize(de);
    match parsed {
        Ok(v) => Ok((v, unknown)),
        Err(e) => Err((dotted_error_path(e.path()), e.into_inner().to_string())),
    }
}
