//! XLM-RoBERTa (bge-m3's and BGE rerankers' architecture): a random-weight model saved by
//! `transformers` (scripts/xlmr_reference.py) gives our encoder the same last hidden states
//! on a padded batch within 1e-5 — RoBERTa's position ids from the padding index included.
//! Runs where `cargo xtask test` set FLAGOPEN_PYCHECK (transformers and torch).

#[test]
fn random_xlm_roberta_matches_transformers() {
    let Ok(pycheck) = std::env::var("FLAGOPEN_PYCHECK") else {
        eprintln!("skipped: FLAGOPEN_PYCHECK not set (cargo xtask test sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/xlmr_reference.py");
    let run =
        std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(script)
            .arg(tmp.path())
            .env("PYTHONPATH", &pycheck)
            .env("PYTHONNOUSERSITE", "1")
            .env("HF_HOME", tmp.path().join("hf-home"))
            .output()
            .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("reference.json")).unwrap()).unwrap();
    let dir = tmp.path().join("model");
    let config: bge::config::BertConfig = bge::error::read_json(&dir.join("config.json")).unwrap();
    let bert = bge::bert::Bert::load(&dir, config, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let rows = |k: &str| -> Vec<i64> {
        r[k].as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()))
            .collect()
    };
    let (ids, mask) = (rows("ids"), rows("mask"));
    let ids_t = tch::Tensor::from_slice(&ids).view([3, 7]);
    let mask_t = tch::Tensor::from_slice(&mask).view([3, 7]);
    let h = tch::no_grad(|| bert.forward(&ids_t, &mask_t)).unwrap();
    let mut worst = 0f64;
    for b in 0..3 {
        for t in 0..7 {
            if mask[b * 7 + t] == 0 {
                continue;
            }
            let want = r["hidden"][b][t].as_array().unwrap();
            let got = Vec::<f32>::try_from(h.get(b as i64).get(t as i64)).unwrap();
            for (g, w) in got.iter().zip(want) {
                worst = worst.max((*g as f64 - w.as_f64().unwrap()).abs());
            }
        }
    }
    eprintln!("XLM-R vs transformers: worst |difference| {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
}
