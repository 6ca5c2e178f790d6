//! Pipelines end to end on small fixtures: steps, drop reasons, bad records, deduplication,
//! resumption, strict mode, and a bad YAML failing before any work.

use flagdata::pipeline::output::read_docs;
use flagdata::pipeline::Pipeline;
use std::path::Path;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const ZH: &str = "今天的天气很好，我们在公园里散步，看见了很多人在跑步和跳舞。这是一个美好的周末，大家都很开心，孩子们在草地上玩耍。";

fn fixture(dir: &Path) -> std::path::PathBuf {
    let rec = |id: usize, title: &str, content: &str| {
        serde_json::json!({"id": id, "uniqueKey": "k", "titleUkey": "t", "dataType": "news", "title": title, "content": content}).to_string()
    };
    let part1 = format!(
        "[{},\n{},\n{},\n{{\"id\": 99, \"title\": \"坏\" \"content\": \"x\"}},\n{}]",
        rec(1, "新闻一", &format!("{ZH}联系我们：news@example.com，电话13812345678。")),
        rec(2, "短", "太短了"),
        rec(3, "新闻一", &format!("{ZH}联系我们：news@example.com，电话13812345678。")),
        rec(4, "英文", "This English paragraph is long enough to pass the length filter easily, but it is not Chinese at all.")
    );
    write(&dir.join("raw/part-1.json"), &part1);
    let near = ZH.replace("跳舞", "唱歌");
    write(
        &dir.join("raw/part-2.json"),
        &format!(
            "[{}]",
            rec(
                5,
                "新闻一",
                &format!("{near}联系我们：news@example.com，电话13812345678。")
            )
        ),
    );
    let yaml = format!(
        "name: test-zh
inputs:
  - {{name: zh, format: wudao, paths: [{raw}]}}
output: {{dir: {out}, keep_dropped: true, parquet: true}}
workers: 2
steps:
  - nfkc
  - remove_pii: {{replacement: \"\"}}
  - normalize_whitespace
  - length: {{min_chars: 20}}
  - language: {{languages: [zh], min_confidence: 0.5}}
dedup:
  exact: true
  minhash: {{n_grams: 5, bands: 20, rows: 3}}
",
        raw = dir.join("raw").display(),
        out = dir.join("out").display()
    );
    let path = dir.join("pipeline.yaml");
    write(&path, &yaml);
    path
}

fn texts(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.zst"))
        .collect();
    files.sort();
    for f in files {
        read_docs(&f, |d| {
            out.push((d.id, d.text));
            Ok(())
        })
        .unwrap();
    }
    out
}

#[test]
fn runs_steps_dedups_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = fixture(dir.path());
    let p = Pipeline::load(&yaml, &[]).unwrap();
    assert_eq!(p.shards.len(), 2);
    let summary = p.run(false).unwrap();
    let st = &summary.stats;
    assert_eq!(
        (st.records_read, st.documents_in, st.documents_out),
        (6, 5, 3)
    );
    assert_eq!(st.bad_records.get("malformed_json"), Some(&1));
    assert!(
        st.bad_examples[0].position.ends_with("(record 4)"),
        "{:?}",
        st.bad_examples[0]
    );
    let length = st.steps.iter().find(|s| s.name == "length").unwrap();
    assert_eq!(length.dropped.get("too_short"), Some(&1));
    let lang = st.steps.iter().find(|s| s.name == "language").unwrap();
    assert_eq!(lang.dropped.get("language_en"), Some(&1));
    assert_eq!(st.languages.get("zh"), Some(&3));

    let d = summary.dedup.as_ref().unwrap();
    assert_eq!(
        (
            d.documents_in,
            d.exact_duplicates,
            d.near_duplicates,
            d.documents_out
        ),
        (3, 1, 1, 1)
    );
    let kept = texts(&summary.final_dir);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, "1");
    assert!(
        !kept[0].1.contains("example.com") && !kept[0].1.contains("138"),
        "PII left: {}",
        kept[0].1
    );
    assert!(kept[0].1.starts_with("新闻一\n今天"));
    let clusters = std::fs::read_to_string(dir.path().join("out/dedup/clusters.jsonl")).unwrap();
    assert_eq!(clusters.lines().count(), 1);
    assert!(clusters.contains("\"size\":3"), "{clusters}");
    let dropped = texts(&dir.path().join("out/dropped"));
    assert_eq!(dropped.len(), 2);
    assert!(dir.path().join("out/dedup/zh-00000.parquet").is_file());
    for f in ["stats.json", "report.md", "manifest.json"] {
        assert!(dir.path().join("out").join(f).is_file(), "{f} missing");
    }
    let report = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(
        report.contains("language: language_en") && report.contains("near duplicates | 1"),
        "{report}"
    );

    // A rerun finds every shard done and reproduces the same outputs.
    let again = Pipeline::load(&yaml, &[]).unwrap().run(false).unwrap();
    assert_eq!(again.shards_done_before, 2);
    assert_eq!(again.stats, summary.stats);
    assert_eq!(texts(&again.final_dir), kept);

    // A changed config refuses the old folder instead of mixing outputs.
    let err = Pipeline::load(&yaml, &["steps.3.length.min_chars=5".into()])
        .unwrap()
        .run(false)
        .unwrap_err();
    assert!(
        err.to_string().contains("different pipeline config"),
        "{err}"
    );
}

#[test]
fn interrupted_shard_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = fixture(dir.path());
    let p = Pipeline::load(&yaml, &[]).unwrap();
    p.run(false).unwrap();
    // Simulate a crash in shard 2: its marker never got written.
    std::fs::remove_file(dir.path().join("out/clean/zh-00001.stats.json")).unwrap();
    std::fs::remove_file(dir.path().join("out/dedup/stats.json")).unwrap();
    let again = p.run(false).unwrap();
    assert_eq!(again.shards_done_before, 1);
    assert_eq!(again.dedup.unwrap().documents_out, 1);
}

#[test]
fn strict_mode_stops_at_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = fixture(dir.path());
    let err = Pipeline::load(&yaml, &["strict=true".into()])
        .unwrap()
        .run(false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("part-1.json") && err.contains("record 4") && err.contains("malformed_json"),
        "{err}"
    );
}

#[test]
fn bad_pipeline_yaml_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = fixture(dir.path());
    let cases: [(&str, &str); 4] = [
        ("steps.1=gopher_qualty", "steps.1"),
        ("steps.3.length.min_charz=3", "unknown field `min_charz`"),
        ("inputs.0.paths=[/nonexistent/dir]", "inputs.0.paths"),
        ("dedup.minhash.rows=0", "at least 1"),
    ];
    for (arg, want) in cases {
        let err = Pipeline::load(&yaml, &[arg.to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{arg}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&yaml)
            .unwrap()
            .replace("workers: 2", "wrokers: 2"),
    )
    .unwrap();
    let err = Pipeline::load(&typo, &[]).unwrap_err().to_string();
    assert!(
        err.contains("typo.yaml: `wrokers`: unknown field `wrokers`, expected one of"),
        "{err}"
    );
    assert!(
        !dir.path().join("out").exists(),
        "nothing may be written before validation passes"
    );
}

#[test]
fn new_input_files_and_more_workers_resume_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = fixture(dir.path());
    let first = Pipeline::load(&yaml, &[]).unwrap().run(false).unwrap();
    // A new file that sorts first shifts every shard number: shards whose file changed rerun,
    // and deduplication reruns over the new set. More workers do not invalidate the folder.
    let extra = format!(
        "[{}]",
        serde_json::json!({"id": 7, "title": "新增", "content": format!("{ZH}{ZH}另外一篇完全不同的文章，讲述了春节期间的交通情况和人们回家的故事。")})
    );
    write(&dir.path().join("raw/part-0.json"), &extra);
    let again = Pipeline::load(&yaml, &["workers=1".into()])
        .unwrap()
        .run(false)
        .unwrap();
    assert_eq!(again.stats.shards, 3);
    assert_eq!(again.stats.documents_in, first.stats.documents_in + 1);
    let d = again.dedup.unwrap();
    assert_eq!(d.documents_in, first.dedup.unwrap().documents_in + 1);
    let kept: Vec<String> = texts(&again.final_dir)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(kept.len() as u64, d.documents_out);
    assert!(kept.contains(&"7".to_string()), "{kept:?}");
    assert!(
        dir.path().join("out/dedup/zh-00002.parquet").is_file(),
        "the new shard's Parquet output"
    );
}
