//! Training configs in FlagScale's layout: `experiment` (name, folder, seed), `system`
//! (device, precision, logging and checkpoint intervals), `model` (architecture, optimizer,
//! schedule, batch) and `data` (Megatron-style `data_path` of weights and prefixes), loaded
//! through `flagcore::config`, so command-line overrides (`model.optimizer.lr=1e-4`) apply.

use super::{LrSchedule, Precision, TrainConfig};
use crate::model::LlamaConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub exp_name: String,
    pub exp_dir: PathBuf,
    #[serde(default = "seed")]
    pub seed: u64,
}

fn seed() -> u64 {
    1234
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    #[serde(default)]
    pub device: flagcore::Device,
    /// `fp32`, or `bf16` mixed precision (f32 weights, bf16 matrix products).
    #[serde(default = "fp32")]
    pub precision: String,
    /// Steps between validation passes (when `data.split` holds documents out).
    #[serde(default = "hundred")]
    pub eval_interval: usize,
    /// Micro-batches per dataset in a validation pass.
    #[serde(default = "ten")]
    pub eval_iters: usize,
    #[serde(default = "one")]
    pub log_interval: usize,
    #[serde(default = "hundred")]
    pub save_interval: usize,
    #[serde(default = "three")]
    pub keep_last: usize,
}

fn fp32() -> String {
    "fp32".into()
}
fn one() -> usize {
    1
}
fn hundred() -> usize {
    100
}
fn ten() -> usize {
    10
}
fn three() -> usize {
    3
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    pub lr: f64,
    #[serde(default)]
    pub min_lr: f64,
    #[serde(default = "wd")]
    pub weight_decay: f64,
    #[serde(default = "b1")]
    pub beta1: f64,
    #[serde(default = "b2")]
    pub beta2: f64,
    #[serde(default = "eps")]
    pub eps: f64,
    #[serde(default = "clip")]
    pub clip_grad: f64,
}

fn wd() -> f64 {
    0.1
}
fn b1() -> f64 {
    0.9
}
fn b2() -> f64 {
    0.95
}
fn eps() -> f64 {
    1e-8
}
fn clip() -> f64 {
    1.0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// The model's Hugging Face config; may be left out with `init_from` (then it is read
    /// from there).
    #[serde(default)]
    pub architecture: Option<LlamaConfig>,
    /// Start from these weights instead of a random initialisation: a Hugging Face or
    /// flagscale checkpoint folder, or a GGUF file (continued pre-training, fine-tuning).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    pub optimizer: Optimizer,
    #[serde(default)]
    pub warmup_steps: usize,
    pub train_steps: usize,
    pub seq_length: usize,
    pub micro_batch_size: usize,
    #[serde(default = "one")]
    pub grad_accum: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Megatron's layout: `[weight, prefix, weight, prefix, ...]`, or prefixes alone (equal weights).
    pub data_path: Vec<serde_json::Value>,
    /// Megatron's `"train,valid,test"` weights over each dataset's documents.
    #[serde(default = "all_train")]
    pub split: String,
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
}

fn all_train() -> String {
    "1,0,0".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub experiment: Experiment,
    pub system: System,
    pub model: Model,
    pub data: Data,
}

impl ExperimentConfig {
    pub fn load(path: &Path, overrides: &[String]) -> Result<(Self, serde_json::Value)> {
        let resolved = flagcore::config::ConfigLoader::new()
            .file(path)
            .overrides(overrides)
            .resolve()?;
        let mut cfg: ExperimentConfig = resolved.parse()?;
        let fail = |field: &str, message: String| Error::Config {
            path: path.to_path_buf(),
            field: field.into(),
            message,
        };
        if let Some(src) = &cfg.model.init_from {
            let mut theirs = crate::source::load_config(src)?;
            // Training starts from the halves rotary layout (`Llama::use_half_rope`).
            theirs.rope_interleaved = false;
            if let Some(ours) = &cfg.model.architecture {
                let (a, b) = (serde_json::to_value(ours), serde_json::to_value(&theirs));
                if a.ok() != b.ok() {
                    return Err(fail(
                        "model.architecture",
                        format!("differs from the config of init_from {}", src.display()),
                    ));
                }
            }
            cfg.model.architecture = Some(theirs);
        }
        let Some(arch) = &cfg.model.architecture else {
            return Err(fail(
                "model",
                "give `architecture` (a Hugging Face config) or `init_from` (a checkpoint)".into(),
            ));
        };
        arch.validate(path)?;
        cfg.precision().map_err(|m| fail("system.precision", m))?;
        cfg.split().map_err(|m| fail("data.split", m))?;
        if cfg.model.train_steps == 0
            || cfg.model.micro_batch_size == 0
            || cfg.model.grad_accum == 0
            || cfg.model.seq_length == 0
        {
            return Err(fail(
                "model",
                "train_steps, seq_length, micro_batch_size and grad_accum must be positive".into(),
            ));
        }
        cfg.data_paths().map_err(|m| fail("data.data_path", m))?;
        Ok((cfg, resolved.value().clone()))
    }

    /// `(prefix, weight)` pairs from `data_path`.
    pub fn data_paths(&self) -> std::result::Result<Vec<(PathBuf, f64)>, String> {
        let items = &self.data.data_path;
        if items.is_empty() {
            return Err("no datasets listed".into());
        }
        if items.iter().all(|v| v.is_string()) {
            return Ok(items
                .iter()
                .map(|v| (PathBuf::from(v.as_str().unwrap_or_default()), 1.0))
                .collect());
        }
        if items.len() % 2 != 0 {
            return Err("expected weight, prefix pairs".into());
        }
        items
            .chunks(2)
            .map(|p| match (p[0].as_f64(), p[1].as_str()) {
                (Some(w), Some(prefix)) if w > 0.0 => Ok((PathBuf::from(prefix), w)),
                _ => Err(format!(
                    "`{}, {}` is not a positive weight and a prefix",
                    p[0], p[1]
                )),
            })
            .collect()
    }

    /// The model config (filled from `init_from` when not written; [`load`](Self::load)
    /// guarantees one).
    pub fn architecture(&self) -> &LlamaConfig {
        self.model
            .architecture
            .as_ref()
            .expect("ExperimentConfig::load fills the architecture")
    }

    pub fn precision(&self) -> std::result::Result<Precision, String> {
        self.system.precision.parse()
    }

    /// `data.split` as three weights.
    pub fn split(&self) -> std::result::Result<[f64; 3], String> {
        let parts: Vec<&str> = self.data.split.split([',', '/']).map(str::trim).collect();
        let mut out = [0.0; 3];
        if parts.is_empty() || parts.len() > 3 {
            return Err(format!(
                "`{}`: expected up to three weights",
                self.data.split
            ));
        }
        for (slot, p) in out.iter_mut().zip(&parts) {
            *slot = p
                .parse::<f64>()
                .ok()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| format!("`{}`: `{p}` is not a weight", self.data.split))?;
        }
        if out[0] <= 0.0 {
            return Err(format!(
                "`{}`: the training share must be positive",
                self.data.split
            ));
        }
        Ok(out)
    }

    pub fn train_config(&self) -> TrainConfig {
        let m = &self.model;
        TrainConfig {
            seq_len: m.seq_length,
            micro_batch: m.micro_batch_size,
            grad_accum: m.grad_accum,
            schedule: LrSchedule {
                lr: m.optimizer.lr,
                min_lr: m.optimizer.min_lr,
                warmup_steps: m.warmup_steps,
                total_steps: m.train_steps,
            },
            beta1: m.optimizer.beta1,
            beta2: m.optimizer.beta2,
            eps: m.optimizer.eps,
            weight_decay: m.optimizer.weight_decay,
            clip_grad: m.optimizer.clip_grad,
            seed: self.experiment.seed,
            data: self.data_paths().unwrap_or_default(),
            keep_last: self.system.keep_last,
            precision: self.precision().unwrap_or_default(),
            split: self.split().unwrap_or([1.0, 0.0, 0.0]),
        }
    }
}

/// Peak dense bf16 throughput of known accelerators (never the 2:4-sparse figure).
pub fn peak_flops(gpu_name: &str) -> Option<f64> {
    let n = gpu_name.to_ascii_uppercase();
    if n.contains("H100") || n.contains("H200") {
        Some(989.5e12)
    } else if n.contains("A100") {
        Some(312e12)
    } else {
        None
    }
}

/// Training FLOPs per token, llm.c's formula: 6N + 6·L·d·T (N parameters, L layers, d hidden
/// size, T sequence length; attention counted without causal halving).
pub fn flops_per_token(cfg: &LlamaConfig, seq_len: usize) -> f64 {
    6.0 * cfg.parameter_count() as f64
        + 6.0 * cfg.num_hidden_layers as f64 * cfg.hidden_size as f64 * seq_len as f64
}
