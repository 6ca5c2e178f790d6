//! Parquet files (through arrow), read a record batch at a time: memory follows the batch, not
//! the file. String-like columns of any width are taken as text; other id types as their text.

use super::{BadRecord, FieldMap, Record, Sink};
use crate::{Document, Error, Result};
use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;

fn column_text(
    batch: &arrow::record_batch::RecordBatch,
    name: &str,
) -> Option<std::result::Result<StringArray, String>> {
    let col = batch.column_by_name(name)?;
    Some(match arrow::compute::cast(col, &DataType::Utf8) {
        Ok(a) => a
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| format!("column `{name}` did not convert to text")),
        Err(e) => Err(format!("column `{name}`: {e}")),
    })
}

pub fn read(path: &Path, fields: &FieldMap, source: &str, sink: &mut Sink<'_>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |row: usize, kind: &str, message: String| {
        Record::Bad(BadRecord {
            path: path.to_path_buf(),
            position: format!("row {row}"),
            kind: kind.into(),
            message,
        })
    };
    let reader = match ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(1024).build())
    {
        Ok(r) => r,
        Err(e) => return sink(bad(0, "malformed_parquet", e.to_string())),
    };
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut row = 0usize;
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return sink(bad(row, "malformed_parquet", e.to_string())),
        };
        let mut texts = Vec::new();
        for f in &fields.text_fields {
            match column_text(&batch, f) {
                Some(Ok(a)) => texts.push(a),
                Some(Err(m)) => return sink(bad(row, "bad_text", m)),
                None => {}
            }
        }
        if texts.is_empty() {
            return sink(bad(
                row,
                "no_text",
                format!("none of the text columns {:?} exists", fields.text_fields),
            ));
        }
        let ids = column_text(&batch, &fields.id_field).and_then(|r| r.ok());
        let meta_cols: Vec<(String, StringArray)> = match &fields.metadata_fields {
            Some(names) => names
                .iter()
                .filter_map(|n| {
                    column_text(&batch, n)
                        .and_then(|r| r.ok())
                        .map(|a| (n.clone(), a))
                })
                .collect(),
            None => Vec::new(),
        };
        for i in 0..batch.num_rows() {
            row += 1;
            let parts: Vec<&str> = texts
                .iter()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i))
                .filter(|t| !t.is_empty())
                .collect();
            if parts.is_empty() {
                sink(bad(
                    row,
                    "no_text",
                    format!("row has no text in {:?}", fields.text_fields),
                ))?;
                continue;
            }
            let id = ids
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map_or_else(|| format!("{stem}:{row}"), |a| a.value(i).to_string());
            let mut doc = Document::new(id, parts.join(&fields.text_joiner));
            for (name, col) in &meta_cols {
                if col.is_valid(i) {
                    doc.metadata.insert(name.clone(), col.value(i).into());
                }
            }
            doc.metadata.insert("source".into(), source.into());
            sink(Record::Doc(doc))?;
        }
    }
    Ok(())
}
