//! Parquet output of documents: columns `id`, `text` and `metadata` (JSON text), zstd-compressed,
//! written to a temporary file and renamed into place when complete.

use crate::{Document, Error, Result};
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

const BATCH: usize = 4096;

/// Writes every document `docs` yields into one Parquet file.
pub fn write_parquet(path: &Path, docs: impl IntoIterator<Item = Result<Document>>) -> Result<u64> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("metadata", DataType::Utf8, false),
    ]));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = flagcore::fsutil::temp_file_in(dir)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| Error::Invalid(e.to_string()))?,
        ))
        .build();
    let file = tmp.reopen().map_err(|e| Error::io(path, e))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let mut rows: Vec<Document> = Vec::with_capacity(BATCH);
    let mut total = 0u64;
    let flush = |rows: &mut Vec<Document>, writer: &mut ArrowWriter<std::fs::File>| -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            rows.iter().map(|d| d.id.as_str()),
        ));
        let texts: ArrayRef = Arc::new(StringArray::from_iter_values(
            rows.iter().map(|d| d.text.as_str()),
        ));
        let metas: ArrayRef =
            Arc::new(StringArray::from_iter_values(rows.iter().map(|d| {
                serde_json::Value::Object(d.metadata.clone()).to_string()
            })));
        let batch = RecordBatch::try_new(schema.clone(), vec![ids, texts, metas])
            .map_err(|e| Error::Invalid(e.to_string()))?;
        writer
            .write(&batch)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        rows.clear();
        Ok(())
    };
    for doc in docs {
        rows.push(doc?);
        total += 1;
        if rows.len() == BATCH {
            flush(&mut rows, &mut writer)?;
        }
    }
    flush(&mut rows, &mut writer)?;
    writer
        .close()
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(total)
}
