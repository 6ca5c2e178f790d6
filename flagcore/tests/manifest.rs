//! Provenance manifests: stable hashes of configs and inputs, and the record written beside
//! an artifact.

use flagcore::manifest::{canonical_json, config_sha256, git_info, manifest_path, Manifest};
use serde_json::json;

#[test]
fn config_hash_ignores_key_order_but_not_values() {
    let a = json!({"train": {"lr": 3e-4, "steps": 10}, "seed": 1});
    let b: serde_json::Value =
        serde_json::from_str(r#"{"seed": 1, "train": {"steps": 10, "lr": 0.0003}}"#).unwrap();
    assert_eq!(config_sha256(&a).unwrap(), config_sha256(&b).unwrap());
    assert_eq!(
        canonical_json(&b),
        r#"{"seed":1,"train":{"lr":0.0003,"steps":10}}"#
    );
    let c = json!({"train": {"lr": 3e-4, "steps": 11}, "seed": 1});
    assert_ne!(config_sha256(&a).unwrap(), config_sha256(&c).unwrap());
}

#[test]
fn input_hash_changes_with_one_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shard.bin");
    let mut bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &bytes).unwrap();

    let hash = |m: &mut Manifest| {
        m.inputs.clear();
        m.add_input(&input).unwrap();
        m.inputs[0].sha256.clone()
    };
    let mut m = Manifest::begin("test", "0");
    let first = hash(&mut m);
    assert_eq!(first, hash(&mut m), "same bytes, same hash");
    assert_eq!(m.inputs[0].bytes, bytes.len() as u64);
    bytes[2_500_000] ^= 1;
    std::fs::write(&input, &bytes).unwrap();
    assert_ne!(first, hash(&mut m), "one byte changed, hash changed");
}

#[test]
fn manifest_is_written_beside_the_artifact_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("model.safetensors");
    std::fs::write(&artifact, b"weights").unwrap();
    let mut m = Manifest::begin("flagcore-test", env!("CARGO_PKG_VERSION"))
        .with_config(&json!({"lr": 1e-3}))
        .unwrap()
        .with_seed(42);
    m.add_output(&artifact).unwrap();
    m.finish();
    let written = m.write_beside(&artifact).unwrap();
    assert_eq!(written, dir.path().join("model.safetensors.manifest.json"));
    assert_eq!(manifest_path(dir.path()), dir.path().join("manifest.json"));
    let back = Manifest::read(&written).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.seed, Some(42));
    assert!(back.host.cpu_cores >= 1);
    assert!(back.finished_at.is_some());
    assert_eq!(
        back.config_sha256.unwrap(),
        config_sha256(&json!({"lr": 1e-3})).unwrap()
    );
}

#[test]
fn git_info_reports_commit_and_dirty_flag() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "git {args:?} failed");
    };
    assert_eq!(git_info(dir.path()), None, "not a repository yet");
    git(&["init", "-q"]);
    std::fs::write(dir.path().join("a.txt"), "1").unwrap();
    git(&["add", "a.txt"]);
    git(&["commit", "-q", "-m", "first"]);
    let clean = git_info(dir.path()).unwrap();
    assert_eq!(clean.commit.len(), 40);
    assert!(!clean.dirty);
    std::fs::write(dir.path().join("untracked.txt"), "x").unwrap();
    assert!(
        !git_info(dir.path()).unwrap().dirty,
        "untracked files do not count"
    );
    std::fs::write(dir.path().join("a.txt"), "2").unwrap();
    let dirty = git_info(dir.path()).unwrap();
    assert!(dirty.dirty);
    assert_eq!(dirty.commit, clean.commit);
}
