//! JSON Lines, plain or compressed (`.gz`, `.zst`), one record per line.

use super::{BadRecord, FieldMap, Record, Sink};
use crate::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Opens a file, decompressing by extension.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let name = path.to_string_lossy().to_lowercase();
    let inner: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| Error::io(path, e))?)
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, inner)))
}

pub fn read(path: &Path, fields: &FieldMap, source: &str, sink: &mut Sink<'_>) -> Result<()> {
    let mut reader = open(path)?;
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut line = Vec::new();
    let mut number = 0usize;
    let mut records = 0usize;
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                // A truncated compressed stream surfaces here: report it and stop this file.
                return sink(Record::Bad(BadRecord {
                    path: path.to_path_buf(),
                    position: format!("line {}", number + 1),
                    kind: "truncated".into(),
                    message: e.to_string(),
                }));
            }
        };
        if n == 0 {
            if records == 0 {
                return sink(Record::Bad(BadRecord {
                    path: path.to_path_buf(),
                    position: format!("line {}", number + 1),
                    kind: "empty_file".into(),
                    message: "no records in the file".into(),
                }));
            }
            return Ok(());
        }
        number += 1;
        let body = line.trim_ascii();
        if body.is_empty() {
            continue;
        }
        records += 1;
        let bad = |kind: &str, message: String| {
            Record::Bad(BadRecord {
                path: path.to_path_buf(),
                position: format!("line {number}"),
                kind: kind.into(),
                message,
            })
        };
        let record = match serde_json::from_slice::<serde_json::Value>(body) {
            Err(e) => {
                let kind = if std::str::from_utf8(body).is_err() {
                    "invalid_utf8"
                } else {
                    "malformed_json"
                };
                bad(kind, e.to_string())
            }
            Ok(value) => match fields.to_document(value, format!("{stem}:{number}"), source) {
                Ok((doc, unknown)) => {
                    if !unknown.is_empty() {
                        sink(bad("unknown_field", format!("fields {unknown:?}")))?;
                    }
                    Record::Doc(doc)
                }
                Err((kind, message)) => bad(&kind, message),
            },
        };
        sink(record)?;
    }
}
