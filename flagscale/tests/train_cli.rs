//! `flagscale train` end to end: a FlagScale-layout config trains, logs JSON-lines metrics,
//! checkpoints, and a rerun with more steps resumes where it stopped; killed at any moment
//! and restarted, it ends exactly where an uninterrupted run ends.

use flagdata::indexed::{IndexedWriter, TokenDType};
use std::process::Command;

#[test]
fn train_logs_checkpoints_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("data/toy");
    let mut w = IndexedWriter::create(&prefix, TokenDType::U16).unwrap();
    for d in 0..40u32 {
        w.add_document(&(0..50).map(|i| (d + i) % 32).collect::<Vec<_>>())
            .unwrap();
    }
    w.finish().unwrap();
    let config = dir.path().join("exp.yaml");
    std::fs::write(
        &config,
        format!(
            "experiment: {{exp_name: toy, exp_dir: {exp}, seed: 7}}
system: {{device: cpu, save_interval: 3, keep_last: 2}}
model:
  architecture: {{hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4,
                 vocab_size: 32, max_position_embeddings: 64}}
  optimizer: {{lr: 0.003}}
  warmup_steps: 2
  train_steps: 6
  seq_length: 16
  micro_batch_size: 2
data: {{data_path: [1.0, {prefix}]}}
",
            exp = dir.path().join("exp").display(),
            prefix = prefix.display()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flagscale"))
            .arg("train")
            .arg(&config)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    run(&[]);
    let metrics = std::fs::read_to_string(dir.path().join("exp/logs/metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    assert!(rows
        .iter()
        .all(|r| r["loss"].as_f64().unwrap() > 0.0 && r["tokens_per_s"].as_f64().unwrap() > 0.0));
    assert_eq!(rows[0]["flops_formula"], "6N+6LdT");
    assert!(dir
        .path()
        .join("exp/checkpoints/step-00000006/model.safetensors")
        .is_file());
    assert!(dir.path().join("exp/manifest.json").is_file());

    let log = run(&["--", "model.train_steps=8"]);
    assert!(log.contains("resuming at step 6"), "{log}");
    let rows = std::fs::read_to_string(dir.path().join("exp/logs/metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows, 8);
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("exp/checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");

    // A changed model is refused rather than mixed with the old checkpoints.
    let out = Command::new(env!("CARGO_BIN_EXE_flagscale"))
        .arg("train")
        .arg(&config)
        .args(["--", "model.optimizer.lr=0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different training config"));
    // A bad shape is one clear line.
    let out = Command::new(env!("CARGO_BIN_EXE_flagscale"))
        .arg("train")
        .arg(&config)
        .args(["--", "model.architecture.num_attention_heads=5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.lines().count() == 1 && err.contains("num_attention_heads"),
        "{err}"
    );
}

fn toy_experiment(dir: &std::path::Path, steps: usize) -> std::path::PathBuf {
    let prefix = dir.join("data/toy");
    let mut w = IndexedWriter::create(&prefix, TokenDType::U16).unwrap();
    for d in 0..60u32 {
        w.add_document(&(0..80).map(|i| (d * 7 + i) % 64).collect::<Vec<_>>())
            .unwrap();
    }
    w.finish().unwrap();
    let config = dir.join("exp.yaml");
    std::fs::write(
        &config,
        format!(
            "experiment: {{exp_name: kill, exp_dir: {exp}, seed: 3}}
system: {{device: cpu, save_interval: 2, keep_last: 2, eval_interval: 4, eval_iters: 2}}
model:
  architecture: {{hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
                 num_key_value_heads: 2, vocab_size: 64, max_position_embeddings: 64}}
  optimizer: {{lr: 0.003}}
  warmup_steps: 2
  train_steps: {steps}
  seq_length: 32
  micro_batch_size: 4
  grad_accum: 2
data: {{data_path: [1.0, {prefix}], split: '90,10,0'}}
",
            exp = dir.join("exp").display(),
            prefix = prefix.display()
        ),
    )
    .unwrap();
    config
}

fn final_weights(dir: &std::path::Path, steps: usize) -> String {
    let f = dir.join(format!("exp/checkpoints/step-{steps:08}/model.safetensors"));
    flagcore::fsutil::sha256_file(&f).unwrap().0
}

fn losses(dir: &std::path::Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(dir.join("exp/logs/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["loss"].is_number())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].to_string()))
        .collect()
}

#[test]
fn killed_at_any_moment_training_ends_where_an_uninterrupted_run_ends() {
    let steps = 40;
    let whole = tempfile::tempdir().unwrap();
    let config = toy_experiment(whole.path(), steps);
    let ok = Command::new(env!("CARGO_BIN_EXE_flagscale"))
        .args(["train"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let want = final_weights(whole.path(), steps);
    let want_losses = losses(whole.path());
    assert_eq!(want_losses.len(), steps);

    let cut = tempfile::tempdir().unwrap();
    let config = toy_experiment(cut.path(), steps);
    // SIGKILL at points of progress (not times: shared machines vary): at start-up, after the
    // k-th logged step, and while a checkpoint is being written; each restart resumes from
    // the last complete checkpoint.
    let metrics = cut.path().join("exp/logs/metrics.jsonl");
    let ckpts = cut.path().join("exp/checkpoints");
    let rows = || {
        std::fs::read_to_string(&metrics)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let saving = || {
        std::fs::read_dir(&ckpts).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".partial"))
        })
    };
    let mut finished = false;
    let mut kills = 0;
    for point in [
        "start", "rows 3", "saving", "rows 13", "saving", "rows 25", "saving", "rows 40",
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flagscale"))
            .args(["train"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let reached = |p: &str| match p.split_once(' ') {
            Some((_, n)) => rows() >= n.parse().unwrap(),
            None => p == "start" || saving(),
        };
        while !reached(point) && std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        eprintln!("killed at {point}: {} metrics rows", rows());
    }
    assert!(kills >= 5, "the run outpaced the kills ({kills})");
    if !finished {
        let out = Command::new(env!("CARGO_BIN_EXE_flagscale"))
            .args(["train"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        final_weights(cut.path(), steps),
        want,
        "final weights differ"
    );
    assert_eq!(losses(cut.path()), want_losses, "loss curve differs");
    let strays: Vec<_> = std::fs::read_dir(cut.path().join("exp/checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with("step-") && !n.starts_with('.'))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}

#[test]
fn init_from_a_checkpoint_starts_from_its_weights() {
    let first = tempfile::tempdir().unwrap();
    let config = toy_experiment(first.path(), 4);
    let out = Command::new(env!("CARGO_BIN_EXE_flagscale"))
        .arg("train")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = first.path().join("exp/checkpoints/step-00000004");

    // The same experiment elsewhere, its architecture read from the checkpoint; with a zero
    // learning rate (and so no decay) one step leaves the weights as they came.
    let second = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &first.path().join("exp").display().to_string(),
        &second.path().join("exp").display().to_string(),
    );
    let arch = text.find("  architecture:").unwrap();
    let arch_end = arch + text[arch..].find("\n  optimizer").unwrap();
    let text = format!(
        "{}  init_from: {}{}",
        &text[..arch],
        start.display(),
        &text[arch_end..]
    );
    let config2 = second.path().join("exp.yaml");
    std::fs::write(&config2, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flagscale"))
        .arg("train")
        .arg(&config2)
        .args(["--", "model.train_steps=1", "model.optimizer.lr=0"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("starting from"), "{log}");
    let load = |d: &std::path::Path| {
        flagscale::model::Llama::load(d, flagcore::DType::F32, tch::Device::Cpu).unwrap()
    };
    let (a, b) = (
        load(&start),
        load(&second.path().join("exp/checkpoints/step-00000001")),
    );
    for ((na, ta), (nb, tb)) in a.named_tensors().into_iter().zip(b.named_tensors()) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} changed");
    }
    // An architecture that contradicts the checkpoint is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_flagscale"))
        .arg("train")
        .arg(&config)
        .args([
            "--",
            &format!("+model.init_from={}", start.display()),
            "model.train_steps=8",
            "model.architecture.intermediate_size=96",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("init_from"), "{err}");
}
