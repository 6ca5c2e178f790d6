//! Plain text: each file is one document, its id the file name.

use super::{BadRecord, Record, Sink};
use crate::{Document, Error, Result};
use std::path::Path;

pub fn read(path: &Path, source: &str, sink: &mut Sink<'_>) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let id = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match String::from_utf8(bytes) {
        Ok(text) => {
            let mut doc = Document::new(id, text);
            doc.metadata.insert("source".into(), source.into());
            sink(Record::Doc(doc))
        }
        Err(e) => sink(Record::Bad(BadRecord {
            path: path.to_path_buf(),
            position: format!("byte {}", e.utf8_error().valid_up_to()),
            kind: "invalid_utf8".into(),
            message: e.utf8_error().to_string(),
        })),
    }
}
