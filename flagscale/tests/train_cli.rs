//! `flagscale train` end to end: a FlagScale-layout config trains, logs JSON-lines metrics,
//! checkpoints, and a rerun with more steps resumes where it stopped.

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
