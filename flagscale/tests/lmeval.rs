//! lm-eval 0.4.13's `local-completions` scores a multiple-choice task through our server with
//! SmolLM2 far above chance (`scripts/lmeval_check.py`): echo and per-token log-probabilities
//! line up with the prompt, as evaluation harnesses need. Runs where `cargo xtask test`
//! installed lm-eval (FLAGOPEN_LMEVAL) and the transformers environment (FLAGOPEN_PYCHECK).

mod common;

use flagscale::serve::AppState;
use std::path::Path;

#[test]
fn lm_eval_scores_above_chance_through_the_server() {
    let (Ok(lmeval), Ok(pycheck)) = (
        std::env::var("FLAGOPEN_LMEVAL"),
        std::env::var("FLAGOPEN_PYCHECK"),
    ) else {
        eprintln!(
            "skipped: FLAGOPEN_LMEVAL / FLAGOPEN_PYCHECK not set (cargo xtask test sets them)"
        );
        return;
    };
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let (model, tokenizer) = common::smollm2_model(&gguf);
    let (addr, _rt) = common::serve(AppState::new(model, tokenizer, "smollm2"), 1 << 20);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lmeval_check.py");
    let home = tempfile::tempdir().unwrap();
    let stdout = flagcore::python::run_ok(
        flagcore::python::test_script(&script)
            .args(["--base-url", &format!("http://{addr}/v1/completions")])
            .arg("--gguf")
            .arg(&gguf)
            // Lists of prompts per request: the server's batched scoring path.
            .args(["--batch-size", "4"])
            .env("PYTHONPATH", format!("{lmeval}:{pycheck}"))
            .env("HF_HOME", home.path()),
    );
    eprintln!("{stdout}");
    let json_end = stdout.rfind('}').unwrap();
    let results: serde_json::Value = serde_json::from_str(&stdout[..=json_end]).unwrap();
    let acc = results["flagscale_easy_mc"]["acc,none"].as_f64().unwrap();
    assert!(acc > 0.8, "acc {acc} on questions SmolLM2 knows");
}
