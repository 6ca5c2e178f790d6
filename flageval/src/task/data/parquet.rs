//! Parquet rows as JSON documents: strings, numbers, booleans, lists and structs keep their
//! shape (a template indexes a list column as it would a JSON list); other types become text.

use crate::{Error, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, GenericListArray,
    OffsetSizeTrait, StructArray,
};
use arrow::datatypes::{DataType, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type};
use arrow::datatypes::{UInt32Type, UInt64Type, UInt8Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Map, Value};
use std::path::Path;

pub fn read(path: &Path) -> Result<Vec<Value>> {
    let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.to_string()))?;
    let mut docs = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let mut doc = Map::new();
            for (f, col) in schema.fields().iter().zip(batch.columns()) {
                doc.insert(f.name().clone(), cell(col, i).map_err(&bad)?);
            }
            docs.push(Value::Object(doc));
        }
    }
    Ok(docs)
}

fn list<O: OffsetSizeTrait>(
    a: &GenericListArray<O>,
    i: usize,
) -> std::result::Result<Value, String> {
    let inner = a.value(i);
    (0..inner.len())
        .map(|j| cell(&inner, j))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn cell(a: &ArrayRef, i: usize) -> std::result::Result<Value, String> {
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match a.data_type() {
        DataType::Utf8 => json!(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => json!(a.as_string::<i64>().value(i)),
        DataType::Boolean => json!(a
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map(|b| b.value(i))),
        DataType::Int8 => json!(a.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => json!(a.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => json!(a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => json!(a.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => json!(a.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => json!(a.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => json!(a.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => json!(a
            .as_any()
            .downcast_ref::<Float32Array>()
            .map(|f| f.value(i))),
        DataType::Float64 => json!(a
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|f| f.value(i))),
        DataType::List(_) => list(a.as_list::<i32>(), i)?,
        DataType::LargeList(_) => list(a.as_list::<i64>(), i)?,
        DataType::Struct(fields) => {
            let s: &StructArray = a.as_struct();
            let mut m = Map::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                m.insert(f.name().clone(), cell(col, i)?);
            }
            Value::Object(m)
        }
        _ => {
            let text = arrow::compute::cast(&a.slice(i, 1), &DataType::Utf8)
                .map_err(|e| format!("column of type {}: {e}", a.data_type()))?;
            json!(text.as_string::<i32>().value(0))
        }
    })
}
