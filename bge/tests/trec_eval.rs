//! Our retrieval metrics equal pytrec_eval's (trec_eval's C code) on a seeded random run:
//! 200 queries, graded and zero judgements, relevant documents retrieved or not, runs of
//! varied length. Runs where `cargo xtask test` set FLAGOPEN_ST (pytrec-eval-terrier is
//! pinned in scripts/st_requirements.txt) and FLAGOPEN_PYCHECK (numpy).

use bge::retrieval::metrics::{evaluate, Qrels};
use flagcore::rng::Rng;
use std::collections::HashMap;

mod common;

#[test]
fn metrics_equal_pytrec_eval() {
    let (Ok(st), Ok(pycheck)) = (
        std::env::var("FLAGOPEN_ST"),
        std::env::var("FLAGOPEN_PYCHECK"),
    ) else {
        eprintln!("skipped: FLAGOPEN_ST / FLAGOPEN_PYCHECK not set (cargo xtask test sets them)");
        return;
    };
    let mut rng = Rng::new(2026);
    let docs: Vec<String> = (0..300).map(|i| format!("d{i}")).collect();
    let all: Vec<usize> = (0..docs.len()).collect();
    let (mut qrels, mut run) = (
        HashMap::<String, Qrels>::new(),
        HashMap::<String, Vec<String>>::new(),
    );
    for q in 0..200 {
        let qid = format!("q{q}");
        let n = 1 + rng.below(6);
        let judged = rng.sample(&all, n);
        // The first judged document is relevant (1 or 2), the others 0, 1 or 2.
        let mut rels = Qrels::new();
        for (j, &d) in judged.iter().enumerate() {
            let r = if j == 0 {
                1 + rng.below(2)
            } else {
                rng.below(3)
            };
            rels.insert(docs[d].clone(), r as i64);
        }
        let n = 5 + rng.below(150);
        let ranked = rng.sample(&all, n);
        run.insert(
            qid.clone(),
            ranked.iter().map(|&d| docs[d].clone()).collect(),
        );
        qrels.insert(qid, rels);
    }
    let ours = evaluate(&run, &qrels);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&serde_json::json!({"qrels": qrels, "run": run})).unwrap(),
    )
    .unwrap();
    let out = tmp.path().join("out.json");
    common::run_script(
        "trec_reference.py",
        &[input.as_os_str(), out.as_os_str()],
        &format!("{st}:{pycheck}"),
        tmp.path(),
    );
    let theirs: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for (name, v) in &ours {
        let t = theirs[name].as_f64().unwrap();
        assert!((v - t).abs() < 1e-9, "{name}: ours {v}, pytrec_eval {t}");
    }
    assert!(
        ours.iter().any(|(n, v)| n == "recall_at_100" && *v > 0.1),
        "{ours:?}"
    );
}
