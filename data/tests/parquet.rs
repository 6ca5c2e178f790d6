//! Parquet in and out: documents written by the pipeline's Parquet output read back through
//! the Parquet reader unchanged; missing columns and damaged files are counted, not fatal.

use flagdata::pipeline::parquet_out::write_parquet;
use flagdata::read::{Format, Record, SourceSpec};
use flagdata::Document;

fn spec(path: &std::path::Path, text_fields: Option<Vec<String>>) -> SourceSpec {
    SourceSpec {
        name: "pq".into(),
        format: Format::Parquet,
        paths: vec![path.to_path_buf()],
        text_fields,
        id_field: None,
        metadata_fields: Some(vec!["metadata".into()]),
        known_fields: None,
    }
}

#[test]
fn round_trip_through_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.parquet");
    let docs: Vec<Document> = (0..10_000)
        .map(|i| {
            let mut d = Document::new(
                format!("d{i}"),
                format!("第{i}篇文档。Document number {i}."),
            );
            d.metadata.insert("lang".into(), "zh".into());
            d
        })
        .collect();
    assert_eq!(
        write_parquet(&path, docs.iter().cloned().map(Ok)).unwrap(),
        10_000
    );
    let mut back = Vec::new();
    spec(&path, None)
        .read(&path, &mut |r| {
            match r {
                Record::Doc(d) => back.push(d),
                Record::Bad(b) => panic!("{b:?}"),
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(back.len(), docs.len());
    for (a, b) in docs.iter().zip(&back) {
        assert_eq!((&a.id, &a.text), (&b.id, &b.text));
        assert_eq!(b.metadata["metadata"], r#"{"lang":"zh"}"#);
    }
}

#[test]
fn missing_columns_and_damaged_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.parquet");
    write_parquet(&path, [Ok(Document::new("a", "text"))]).unwrap();
    let mut bad = Vec::new();
    spec(&path, Some(vec!["content".into()]))
        .read(&path, &mut |r| {
            if let Record::Bad(b) = r {
                bad.push(b.kind);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(bad, ["no_text"]);
    let broken = dir.path().join("broken.parquet");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let mut kinds = Vec::new();
    spec(&broken, None)
        .read(&broken, &mut |r| {
            if let Record::Bad(b) = r {
                kinds.push(b.kind);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(kinds, ["malformed_parquet"]);
}
