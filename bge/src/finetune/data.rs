//! Fine-tuning data in FlagEmbedding's layout: JSON lines of `{"query": str, "pos": [str],
//! "neg": [str]}` (other fields are ignored, as FlagEmbedding ignores them).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Example {
    pub query: String,
    pub pos: Vec<String>,
    #[serde(default)]
    pub neg: Vec<String>,
}

/// Reads a JSONL file; an error names the file and line. Every example needs a positive.
pub fn read_jsonl(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let fail = |line: usize, message: String| Error::File {
        path: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line).map_err(|e| fail(i + 1, e.to_string()))?;
        if ex.pos.is_empty() {
            return Err(fail(i + 1, "`pos` is empty".into()));
        }
        out.push(ex);
    }
    if out.is_empty() {
        return Err(Error::File {
            path: path.to_path_buf(),
            message: "no examples".into(),
        });
    }
    Ok(out)
}

/// Writes examples as JSON lines, atomically.
pub fn write_jsonl(path: &Path, examples: &[Example]) -> Result<()> {
    let mut text = String::new();
    for ex in examples {
        text.push_str(&serde_json::to_string(ex).map_err(|e| Error::Invalid(e.to_string()))?);
        text.push('\n');
    }
    flagcore::fsutil::write_atomic(path, text.as_bytes()).map_err(|e| Error::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rejects_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, "{\"query\":\"q\",\"pos\":[\"a\"],\"prompt\":\"x\"}\n\n").unwrap();
        let ex = read_jsonl(&p).unwrap();
        assert_eq!(ex[0].neg.len(), 0);
        std::fs::write(
            &p,
            "{\"query\":\"q\",\"pos\":[\"a\"]}\n{\"query\":\"q\",\"pos\":[]}\n",
        )
        .unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("pos"), "{e}");
        std::fs::write(&p, "{\"query\":1}\n").unwrap();
        assert!(read_jsonl(&p).unwrap_err().to_string().contains("line 1"));
    }
}
