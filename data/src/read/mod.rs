//! Readers: turn input files into [`Document`]s, streaming, in constant memory.
//!
//! Each input file is a shard. A reader pushes every record to a callback as either a
//! document or a [`BadRecord`] (malformed JSON, invalid UTF-8, missing text, truncation), so
//! nothing vanishes uncounted; the pipeline decides whether a bad record stops the run.

mod fields;
pub mod jsonl;
mod parquet;
pub mod tagged;
mod text_dir;
mod wudao;

use crate::{Document, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use fields::FieldMap;

/// The file formats we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// WuDaoCorpora: each file is one JSON array of `{id, uniqueKey, titleUkey, dataType, title, content}`.
    Wudao,
    /// One JSON object per line; `.gz` and `.zst` are decompressed on the fly.
    Jsonl,
    /// Each `.txt` file under a folder is one document.
    Text,
    /// Parquet files; text and id from the named columns.
    Parquet,
}

/// One input source of a pipeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Name used in stats, metadata (`source`) and mixing.
    pub name: String,
    pub format: Format,
    /// Files or folders; a folder stands for every matching file below it.
    pub paths: Vec<PathBuf>,
    /// Fields joined into the text (WuDao default: `[title, content]`; else `[text]`).
    #[serde(default)]
    pub text_fields: Option<Vec<String>>,
    #[serde(default)]
    pub id_field: Option<String>,
    /// Fields copied into metadata (default: WuDao's `dataType`; else all other fields).
    #[serde(default)]
    pub metadata_fields: Option<Vec<String>>,
    /// Fields a record may have; others are reported as `unknown_field` (WuDao default: its
    /// six fields; else unchecked).
    #[serde(default)]
    pub known_fields: Option<Vec<String>>,
}

/// A record that could not become a document: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRecord {
    pub path: PathBuf,
    /// Human position: `line 12`, `byte 4096 (record 7)`.
    pub position: String,
    /// A short machine-readable kind: `malformed_json`, `invalid_utf8`, `no_text`, `truncated`,
    /// `not_an_object`, `unknown_field`.
    pub kind: String,
    pub message: String,
}

impl BadRecord {
    pub fn into_error(self) -> Error {
        Error::format(
            self.path,
            self.position,
            format!("{}: {}", self.kind, self.message),
        )
    }
}

/// What a reader hands over for each record.
#[derive(Debug)]
pub enum Record {
    Doc(Document),
    Bad(BadRecord),
}

/// The callback readers push into; returning an error stops the read.
pub type Sink<'a> = dyn FnMut(Record) -> Result<()> + 'a;

impl SourceSpec {
    /// The shard files of this source, sorted for a stable order.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for p in &self.paths {
            let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            if meta.is_dir() {
                collect(p, self.format, &mut out)?;
            } else {
                out.push(p.clone());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The format's default field mapping with this source's settings applied.
    pub fn field_map(&self) -> FieldMap {
        let mut f = match self.format {
            Format::Wudao => FieldMap::wudao(),
            Format::Jsonl | Format::Text | Format::Parquet => FieldMap::default(),
        };
        if let Some(t) = &self.text_fields {
            f.text_fields = t.clone();
        }
        if let Some(i) = &self.id_field {
            f.id_field = i.clone();
        }
        if self.metadata_fields.is_some() {
            f.metadata_fields = self.metadata_fields.clone();
        }
        if self.known_fields.is_some() {
            f.known_fields = self.known_fields.clone();
        }
        f
    }

    /// Streams one shard file into `sink`.
    pub fn read(&self, path: &Path, sink: &mut Sink<'_>) -> Result<()> {
        let fields = self.field_map();
        match self.format {
            Format::Wudao => wudao::read(path, &fields, &self.name, sink),
            Format::Jsonl => jsonl::read(path, &fields, &self.name, sink),
            Format::Text => text_dir::read(path, &self.name, sink),
            Format::Parquet => parquet::read(path, &fields, &self.name, sink),
        }
    }
}

fn matches(path: &Path, format: Format) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match format {
        Format::Wudao => name.ends_with(".json"),
        Format::Jsonl => [".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson"]
            .iter()
            .any(|s| name.ends_with(s)),
        Format::Text => name.ends_with(".txt"),
        Format::Parquet => name.ends_with(".parquet"),
    }
}

fn collect(dir: &Path, format: Format, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            collect(&path, format, out)?;
        } else if matches(&path, format) {
            out.push(path);
        }
    }
    Ok(())
}
