//! Readers on damaged and odd input: every bad record is reported with file and position,
//! good records around it still arrive.

use flagdata::read::{Format, Record, SourceSpec};
use std::io::Write;
use std::path::{Path, PathBuf};

fn spec(format: Format, path: &Path) -> SourceSpec {
    SourceSpec {
        name: "src".into(),
        format,
        paths: vec![path.to_path_buf()],
        text_fields: None,
        id_field: None,
        metadata_fields: None,
        known_fields: None,
    }
}

fn read_all(spec: &SourceSpec, path: &Path) -> (Vec<flagdata::Document>, Vec<(String, String)>) {
    let (mut docs, mut bad) = (Vec::new(), Vec::new());
    spec.read(path, &mut |r| {
        match r {
            Record::Doc(d) => docs.push(d),
            Record::Bad(b) => bad.push((b.kind, b.position)),
        }
        Ok(())
    })
    .unwrap();
    (docs, bad)
}

fn write(path: &PathBuf, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn wudao_array_is_streamed_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part-1.json");
    let text = r#"[
      {"id": 1, "uniqueKey": "a", "titleUkey": "t", "dataType": "新闻", "title": "标题一", "content": "内容，含有\"引号\"和 ] 括号 {"},
      {"id": 2, "title": "", "content": "只有内容"},
      {"id": 3, "title": "坏记录" "content": "缺逗号"},
      {"id": 4, "dataType": "无正文字段"},
      {"id": 5, "content": "多余字段", "extra": true},
      17
    ]"#;
    write(&path, text.as_bytes());
    let (docs, bad) = read_all(&spec(Format::Wudao, &path), &path);
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "5"]);
    assert_eq!(docs[0].text, "标题一\n内容，含有\"引号\"和 ] 括号 {");
    assert_eq!(docs[0].metadata["dataType"], "新闻");
    assert_eq!(docs[0].metadata["source"], "src");
    assert_eq!(docs[1].text, "只有内容");
    let kinds: Vec<&str> = bad.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "malformed_json",
            "no_text",
            "unknown_field",
            "not_an_object"
        ]
    );
    assert!(bad[0].1.contains("record 3"), "{:?}", bad[0]);
}

#[test]
fn truncated_empty_and_invalid_utf8_wudao_files() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("t.json");
    write(
        &truncated,
        br#"[{"id": 1, "content": "ok"}, {"id": 2, "content": "cut of"#,
    );
    let (docs, bad) = read_all(&spec(Format::Wudao, &truncated), &truncated);
    assert_eq!(docs.len(), 1);
    assert_eq!(bad[0].0, "truncated");

    let empty = dir.path().join("e.json");
    write(&empty, b"  \n");
    let (docs, bad) = read_all(&spec(Format::Wudao, &empty), &empty);
    assert!(docs.is_empty());
    assert_eq!(bad[0].0, "empty_file");

    let invalid = dir.path().join("u.json");
    let mut bytes = br#"[{"id": 1, "content": "bad "#.to_vec();
    bytes.extend([0xFF, 0xFE]);
    bytes.extend(br#""}, {"id": 2, "content": "fine"}]"#);
    write(&invalid, &bytes);
    let (docs, bad) = read_all(&spec(Format::Wudao, &invalid), &invalid);
    assert_eq!(docs.len(), 1);
    assert_eq!(bad[0].0, "invalid_utf8");

    let not_array = dir.path().join("o.json");
    write(&not_array, br#"{"id": 1}"#);
    assert_eq!(
        read_all(&spec(Format::Wudao, &not_array), &not_array).1[0].0,
        "not_an_array"
    );
}

#[test]
fn jsonl_plain_gzip_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "{\"id\": \"a\", \"text\": \"first\", \"url\": \"u\"}\nnot json\n\n{\"text\": \"second\"}\n";
    let plain = dir.path().join("x.jsonl");
    write(&plain, lines.as_bytes());
    let gz = dir.path().join("x.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(lines.as_bytes()).unwrap();
    write(&gz, &enc.finish().unwrap());
    let zst = dir.path().join("x.jsonl.zst");
    write(&zst, &zstd::encode_all(lines.as_bytes(), 3).unwrap());
    for path in [&plain, &gz, &zst] {
        let (docs, bad) = read_all(&spec(Format::Jsonl, path), path);
        assert_eq!(docs.len(), 2, "{}", path.display());
        assert_eq!(docs[0].metadata["url"], "u");
        assert_eq!(
            docs[1].id,
            "x.jsonl:4".replace("x.jsonl", path.file_name().unwrap().to_str().unwrap())
        );
        assert_eq!(
            bad,
            vec![("malformed_json".to_string(), "line 2".to_string())]
        );
    }
    let empty = dir.path().join("empty.jsonl");
    write(&empty, b"\n\n");
    assert_eq!(
        read_all(&spec(Format::Jsonl, &empty), &empty).1,
        vec![("empty_file".to_string(), "line 3".to_string())]
    );
    let cut = dir.path().join("cut.jsonl.zst");
    let full = zstd::encode_all(lines.repeat(50).as_bytes(), 3).unwrap();
    write(&cut, &full[..full.len() / 2]);
    let (_, bad) = read_all(&spec(Format::Jsonl, &cut), &cut);
    assert_eq!(bad.last().unwrap().0, "truncated");
}

#[test]
fn folders_expand_to_sorted_matching_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    write(&dir.path().join("b/2.txt"), "two".as_bytes());
    write(&dir.path().join("1.txt"), "one".as_bytes());
    write(&dir.path().join("skip.md"), b"no");
    let s = spec(Format::Text, dir.path());
    let files = s.files().unwrap();
    assert_eq!(
        files,
        vec![dir.path().join("1.txt"), dir.path().join("b/2.txt")]
    );
    let (docs, _) = read_all(&s, &files[1]);
    assert_eq!(
        (docs[0].id.as_str(), docs[0].text.as_str()),
        ("2.txt", "two")
    );
}
