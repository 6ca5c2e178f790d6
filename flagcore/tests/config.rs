//! Config loading end to end: files in three formats, merging, overrides, interpolation, and
//! the one-line errors a user sees for typos, missing files and malformed values.

use flagcore::config::{ConfigLoader, Origin};
use flagcore::{DType, Device, Error};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize, PartialEq)]
struct Exp {
    experiment: Experiment,
    train: Train,
    #[serde(default)]
    model: Model,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Experiment {
    exp_name: String,
    exp_dir: PathBuf,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Train {
    lr: f64,
    steps: u32,
    #[serde(default)]
    betas: Vec<f64>,
    precision: DType,
    device: Device,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
struct Model {
    #[serde(default)]
    layers: u32,
    #[serde(default)]
    tie_word_embeddings: bool,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const YAML: &str = "\
experiment:
  exp_name: aquila-tiny
  exp_dir: ./outputs/${experiment.exp_name}
train:
  lr: 1.0e-3
  steps: 100
  betas: [0.9, 0.95]
  precision: bf16
  device: cuda:1
";

#[test]
fn yaml_with_overrides_and_interpolation() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "exp.yaml", YAML);
    let cfg: Exp = ConfigLoader::new()
        .file(&file)
        .overrides([
            "train.lr=3e-4",
            "model.layers=4",
            "train.device=cpu",
            "+model.tie_word_embeddings=true",
        ])
        .resolve()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cfg.train.lr, 3e-4);
    assert_eq!(cfg.train.steps, 100);
    assert_eq!(cfg.train.betas, vec![0.9, 0.95]);
    assert_eq!(cfg.train.precision, DType::BF16);
    assert_eq!(cfg.train.device, Device::Cpu);
    assert_eq!(
        cfg.model,
        Model {
            layers: 4,
            tie_word_embeddings: true
        }
    );
    assert_eq!(
        cfg.experiment.exp_dir,
        PathBuf::from("./outputs/aquila-tiny")
    );
}

#[test]
fn json_and_toml_merge_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "base.json",
        r#"{"experiment": {"exp_name": "a", "exp_dir": "/x"},
            "train": {"lr": 0.1, "steps": 5, "precision": "f32", "device": "auto"}}"#,
    );
    let top = write(
        dir.path(),
        "top.toml",
        "[train]\nsteps = 7\n[model]\nlayers = 2\n",
    );
    let resolved = ConfigLoader::new()
        .file(&base)
        .file(&top)
        .resolve()
        .unwrap();
    let cfg: Exp = resolved.parse().unwrap();
    assert_eq!(
        (cfg.train.lr, cfg.train.steps, cfg.model.layers),
        (0.1, 7, 2)
    );
    assert_eq!(
        resolved.origin("train.steps"),
        Some(&Origin::File(top.clone()))
    );
    assert_eq!(resolved.origin("train.lr"), Some(&Origin::File(base)));
}

#[test]
fn numbers_are_taken_as_text_where_a_string_is_wanted() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "exp.yaml", YAML);
    let cfg: Exp = ConfigLoader::new()
        .file(&file)
        .overrides(["experiment.exp_name=2024"])
        .resolve()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cfg.experiment.exp_name, "2024");
    assert_eq!(cfg.experiment.exp_dir, PathBuf::from("./outputs/2024"));
}

fn one_line_error(loader: ConfigLoader) -> String {
    let err = loader.resolve().and_then(|r| r.parse::<Exp>()).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "error spans lines: {msg}");
    msg
}

#[test]
fn typo_in_a_file_names_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "exp.yaml",
        &YAML.replace("steps: 100", "steps: 100\n  lrr: 1"),
    );
    let msg = one_line_error(ConfigLoader::new().file(&file));
    assert_eq!(msg, format!("{}: `train.lrr`: unknown key", file.display()));
}

#[test]
fn typo_in_an_override_names_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "exp.yaml", YAML);
    let msg = one_line_error(ConfigLoader::new().file(&file).overrides(["trian.lr=1"]));
    assert_eq!(msg, "override `trian.lr=1`: `trian`: unknown key");
}

#[test]
fn malformed_values_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "exp.yaml",
        &YAML.replace("steps: 100", "steps: many"),
    );
    let msg = one_line_error(ConfigLoader::new().file(&file));
    assert!(
        msg.starts_with(&format!("{}: `train.steps`: invalid type", file.display())),
        "{msg}"
    );

    let file = write(dir.path(), "dtype.yaml", &YAML.replace("bf16", "bf17"));
    let msg = one_line_error(ConfigLoader::new().file(&file));
    assert!(
        msg.contains("`train.precision`: unknown dtype `bf17`"),
        "{msg}"
    );

    let msg = one_line_error(
        ConfigLoader::new()
            .file(dir.path().join("exp.yaml"))
            .overrides(["train.steps=-3"]),
    );
    assert!(
        msg.starts_with("override `train.steps=-3`: `train.steps`: invalid value"),
        "{msg}"
    );

    let missing = write(
        dir.path(),
        "missing.yaml",
        &YAML.replace("  steps: 100\n", ""),
    );
    let msg = one_line_error(ConfigLoader::new().file(&missing));
    assert_eq!(
        msg,
        format!("{}: `train`: missing field `steps`", missing.display())
    );
}

#[test]
fn syntax_errors_and_missing_files_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = write(dir.path(), "bad.yaml", "train:\n  lr: [1, 2\n");
    let msg = one_line_error(ConfigLoader::new().file(&bad_yaml));
    assert!(
        msg.starts_with(&format!("{}: not valid YAML", bad_yaml.display())) && msg.contains("line"),
        "{msg}"
    );

    let bad_toml = write(dir.path(), "bad.toml", "[train]\nlr = = 1\n");
    let msg = one_line_error(ConfigLoader::new().file(&bad_toml));
    assert!(
        msg.contains("not valid TOML") && msg.contains("line 2"),
        "{msg}"
    );

    let bad_json = write(dir.path(), "bad.json", "{\"train\": }");
    assert!(one_line_error(ConfigLoader::new().file(&bad_json)).contains("not valid JSON"));

    let list = write(dir.path(), "list.yaml", "- 1\n- 2\n");
    assert!(one_line_error(ConfigLoader::new().file(&list)).contains("must be a mapping"));

    let nowhere = dir.path().join("nowhere.yaml");
    let err = ConfigLoader::new().file(&nowhere).resolve().unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().starts_with(&nowhere.display().to_string()));

    let ini = write(dir.path(), "exp.ini", "a=1");
    assert!(one_line_error(ConfigLoader::new().file(&ini)).contains("unknown config format"));
}

#[test]
fn unset_environment_variable_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "exp.yaml",
        &YAML.replace(
            "exp_dir: ./outputs/${experiment.exp_name}",
            "exp_dir: ${env:FLAGCORE_IT_NEVER_SET}",
        ),
    );
    let msg = one_line_error(ConfigLoader::new().file(&file));
    assert!(
        msg.starts_with(&format!(
            "{}: `experiment.exp_dir`: environment variable FLAGCORE_IT_NEVER_SET is not set",
            file.display()
        )),
        "{msg}"
    );
}

#[test]
fn the_cli_reports_a_typo_in_one_line_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "exp.yaml", "train:\n  lr: [1, 2\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flagcore"))
        .args(["config", file.to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("exp.yaml: not valid YAML"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));

    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_flagcore"))
        .args([
            "config",
            "--hash",
            file.with_file_name("good.yaml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(1), "a missing file fails");
}
