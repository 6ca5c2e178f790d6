//! The training loop: micro-batches from the blended datasets, loss averaged over gradient
//! accumulation, clipping, AdamW under the schedule, and checkpoints written atomically
//! (a crash never damages the last complete one) that resume the exact loss curve.

use super::data::split_documents;
use super::{blending_indices, AdamW, GptDataset, LrSchedule};
use crate::model::{Llama, LlamaConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub seq_len: usize,
    pub micro_batch: usize,
    pub grad_accum: usize,
    pub schedule: LrSchedule,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 turns clipping off).
    pub clip_grad: f64,
    pub seed: u64,
    /// Indexed dataset prefixes and their blend weights.
    pub data: Vec<(PathBuf, f64)>,
    /// Checkpoints kept (older ones are deleted after a new one is complete).
    pub keep_last: usize,
    #[serde(default)]
    pub precision: Precision,
    /// Megatron's train / validation / test split of each dataset's documents, by weight.
    #[serde(default = "all_train")]
    pub split: [f64; 3],
}

fn all_train() -> [f64; 3] {
    [1.0, 0.0, 0.0]
}

/// How the forward and backward passes compute; weights and optimizer state stay f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    /// Mixed precision with `torch.autocast`'s rules: matrix products and attention in
    /// bfloat16, norms, the residual stream, softmax and the loss in f32.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fp32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(format!(
                "`{other}` is not a training precision here (fp32 or bf16; fp16 needs loss scaling, which this trainer does not do)"
            )),
        }
    }
}

/// A step queued on the device; its loss and gradient norm are read back on `wait`.
#[derive(Debug)]
pub struct QueuedStep {
    step: usize,
    loss: Tensor,
    grad_norm: Tensor,
    lr: f64,
    tokens: usize,
    host_secs: f64,
}

impl QueuedStep {
    /// The step number this will report.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Waits for the step to finish on the device and reads its numbers.
    pub fn wait(self) -> StepStats {
        StepStats {
            step: self.step,
            loss: self.loss.double_value(&[]),
            grad_norm: self.grad_norm.double_value(&[]),
            lr: self.lr,
            tokens: self.tokens,
            host_secs: self.host_secs,
        }
    }
}

/// Log-probabilities in f32 of (N, vocab) logits. On CUDA, bf16 or f16 logits go straight
/// into libtorch's softmax kernel that reads half and writes f32, saving the separate upcast
/// of the largest activation (and its backward); elsewhere, or where that kernel refuses the
/// type, the logits are upcast first, as `torch.autocast` code does.
fn log_softmax_f32(logits: &Tensor) -> Tensor {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FUSED_REFUSED: AtomicBool = AtomicBool::new(false);
    let half = matches!(logits.kind(), Kind::BFloat16 | Kind::Half);
    if half && logits.device().is_cuda() && !FUSED_REFUSED.load(Ordering::Relaxed) {
        match logits.f_internal_log_softmax(-1, true) {
            Ok(lp) => return lp,
            Err(_) => FUSED_REFUSED.store(true, Ordering::Relaxed),
        }
    }
    logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float)
}

/// The held-out loss at one point of training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub loss: f64,
    pub perplexity: f64,
    pub batches: usize,
}

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub step: usize,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub tokens: usize,
    /// Seconds the host spent queueing the step: its duration when the host, not the
    /// device, is the bottleneck.
    #[serde(default)]
    pub host_secs: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    consumed_samples: usize,
    config: TrainConfig,
}

#[derive(Debug)]
pub struct Trainer {
    pub model: Llama,
    pub config: TrainConfig,
    opt: AdamW,
    datasets: Vec<GptDataset>,
    valid: Vec<Option<GptDataset>>,
    blend: Vec<(usize, usize)>,
    pub step: usize,
    pub consumed_samples: usize,
}

impl Trainer {
    pub fn new(model: Llama, config: TrainConfig) -> Result<Self> {
        if config.data.is_empty() || config.micro_batch == 0 || config.grad_accum == 0 {
            return Err(Error::Invalid(
                "training needs data, micro_batch ≥ 1 and grad_accum ≥ 1".into(),
            ));
        }
        if config.seq_len > model.config.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "seq_len {} exceeds the model's context {}",
                config.seq_len, model.config.max_position_embeddings
            )));
        }
        let mut datasets = Vec::new();
        let mut valid = Vec::new();
        for (prefix, _) in &config.data {
            let [train, held, _test] =
                split_documents(GptDataset::documents_in(prefix)?, &config.split)?;
            datasets.push(GptDataset::open(
                prefix,
                train,
                config.seq_len,
                config.seed,
            )?);
            // A validation range too short for one sample just has no validation.
            valid.push(if held.is_empty() {
                None
            } else {
                GptDataset::open(prefix, held, config.seq_len, config.seed).ok()
            });
        }
        let weights: Vec<f64> = config.data.iter().map(|(_, w)| *w).collect();
        if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(Error::Invalid("blend weights must be positive".into()));
        }
        let total = config.schedule.total_steps * config.micro_batch * config.grad_accum;
        let blend = blending_indices(&weights, total);
        let mut model = model;
        model.set_autocast(match config.precision {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
        });
        let params = model.trainable_parameters();
        let opt = AdamW::new(
            params,
            config.beta1,
            config.beta2,
            config.eps,
            config.weight_decay,
        )?;
        Ok(Trainer {
            model,
            config,
            opt,
            datasets,
            valid,
            blend,
            step: 0,
            consumed_samples: 0,
        })
    }

    fn batch(&mut self, first: usize) -> Result<Tensor> {
        let end = first + self.config.micro_batch;
        if end > self.blend.len() {
            // The blend of a longer run starts with the blend of a shorter one, so it can grow
            // (a resumed run with more steps) without changing the samples already seen.
            let weights: Vec<f64> = self.config.data.iter().map(|(_, w)| *w).collect();
            self.blend = blending_indices(&weights, end.max(2 * self.blend.len()));
        }
        let mut rows = Vec::with_capacity(self.config.micro_batch);
        for &(d, i) in &self.blend[first..end] {
            rows.push(self.datasets[d].sample(i)?);
        }
        self.to_device(rows)
    }

    /// Stacks samples into a (B, T+1) tensor on the model's device, checking the ids here on
    /// the host, so that the device never waits on a check.
    fn to_device(&self, rows: Vec<Vec<i64>>) -> Result<Tensor> {
        let vocab = self.model.config.vocab_size as i64;
        if let Some(bad) = rows.iter().flatten().find(|&&t| t < 0 || t >= vocab) {
            return Err(Error::Invalid(format!(
                "the data holds token id {bad}, outside the model's vocabulary of {vocab} (a dataset tokenized for another model?)"
            )));
        }
        let flat: Vec<i64> = rows.concat();
        let host = Tensor::from_slice(&flat).view([rows.len() as i64, -1]);
        let device = self.model.device();
        if device.is_cuda() {
            // From pinned memory the copy is asynchronous: the host queues the next step
            // while the device still runs this one.
            return Ok(host
                .pin_memory(device)
                .to_device_(device, Kind::Int64, true, false));
        }
        Ok(host)
    }

    fn loss(&self, tokens: &Tensor) -> Tensor {
        let t = tokens.size()[1] - 1;
        let (input, target) = (tokens.narrow(1, 0, t), tokens.narrow(1, 1, t));
        let logits = self
            .model
            .forward_unchecked(&input, None)
            .view([-1, self.model.config.vocab_size as i64]);
        log_softmax_f32(&logits).g_nll_loss(
            &target.reshape([-1]),
            None::<Tensor>,
            tch::Reduction::Mean,
            -100,
        )
    }

    /// One optimizer step over `grad_accum` micro-batches.
    pub fn train_step(&mut self) -> Result<StepStats> {
        Ok(self.queue_step()?.wait())
    }

    /// Queues one optimizer step on the device without waiting for it; its numbers come from
    /// [`QueuedStep::wait`]. Queueing step n + 1 before waiting on step n keeps the device busy.
    pub fn queue_step(&mut self) -> Result<QueuedStep> {
        let start = std::time::Instant::now();
        let (b, t) = (self.config.micro_batch, self.config.seq_len as i64);
        let mut loss_sum = Tensor::zeros([], (Kind::Float, self.model.device()));
        for _ in 0..self.config.grad_accum {
            let tokens = self.batch(self.consumed_samples)?;
            self.consumed_samples += b;
            let loss = self.loss(&tokens) / self.config.grad_accum as f64;
            loss_sum += loss.detach();
            loss.backward();
        }
        let lr = self.config.schedule.at(self.step);
        let grad_norm = self.opt.step(lr, self.config.clip_grad);
        self.step += 1;
        Ok(QueuedStep {
            step: self.step,
            loss: loss_sum,
            grad_norm,
            lr,
            tokens: b * self.config.grad_accum * t as usize,
            host_secs: start.elapsed().as_secs_f64(),
        })
    }

    /// Mean loss over up to `max_batches` micro-batches of every dataset's held-out samples
    /// (the same ones each time), and its perplexity; `None` without a validation split.
    pub fn validate(&mut self, max_batches: usize) -> Result<Option<Validation>> {
        let b = self.config.micro_batch;
        let mut batches = Vec::new();
        for ds in self.valid.iter_mut().flatten() {
            let n = ds.samples_per_epoch();
            for first in (0..n.saturating_sub(b - 1)).step_by(b).take(max_batches) {
                let rows = (first..first + b)
                    .map(|k| ds.sample(k))
                    .collect::<Result<Vec<_>>>()?;
                batches.push(rows);
            }
        }
        if batches.is_empty() {
            return Ok(None);
        }
        let mut total = Tensor::zeros([], (Kind::Float, self.model.device()));
        let count = batches.len();
        for rows in batches {
            let tokens = self.to_device(rows)?;
            total += tch::no_grad(|| self.loss(&tokens));
        }
        let loss = total.double_value(&[]) / count as f64;
        Ok(Some(Validation {
            loss,
            perplexity: loss.exp(),
            batches: count,
        }))
    }

    /// Writes `<dir>/step-<N>/` (model as a Hugging Face folder, optimizer moments, trainer
    /// state) into a scratch folder renamed into place, then keeps the last `keep_last`.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<PathBuf> {
        let final_dir = dir.join(format!("step-{:08}", self.step));
        let scratch = dir.join(format!(".partial-step-{:08}", self.step));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| Error::Io {
            path: scratch.clone(),
            error: e,
        })?;
        self.model.save(&scratch, flagcore::DType::F32)?;
        let state = self.opt.state();
        let refs: Vec<(&str, &Tensor)> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
        flagcore::torch::save_safetensors(
            &scratch.join("optimizer.safetensors"),
            &refs,
            None,
            None,
        )?;
        let ts = TrainerState {
            step: self.step,
            consumed_samples: self.consumed_samples,
            config: self.config.clone(),
        };
        flagcore::fsutil::write_atomic(
            &scratch.join("trainer_state.json"),
            &serde_json::to_vec_pretty(&ts).map_err(|e| Error::Invalid(e.to_string()))?,
        )?;
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&scratch, &final_dir).map_err(|e| Error::Io {
            path: final_dir.clone(),
            error: e,
        })?;
        let mut all = checkpoints(dir)?;
        while all.len() > self.config.keep_last.max(1) {
            let old = all.remove(0);
            // Renamed first, so a kill mid-delete never leaves a `step-N` with files missing.
            let doomed = dir.join(format!(
                ".deleting-{}",
                old.file_name().unwrap_or_default().to_string_lossy()
            ));
            if std::fs::rename(&old, &doomed).is_ok() {
                let _ = std::fs::remove_dir_all(doomed);
            }
        }
        Ok(final_dir)
    }

    /// Continues from the newest complete checkpoint under `dir`.
    pub fn resume(dir: &Path, device: tch::Device) -> Result<Self> {
        let last = checkpoints(dir)?.pop().ok_or_else(|| {
            Error::Invalid(format!("no complete checkpoint under {}", dir.display()))
        })?;
        let state_path = last.join("trainer_state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::Io {
            path: state_path.clone(),
            error: e,
        })?;
        let state: TrainerState = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", state_path.display())))?;
        let model = Llama::load(&last, flagcore::DType::F32, device)?;
        let mut trainer = Trainer::new(model, state.config)?;
        let saved: HashMap<String, Tensor> =
            flagcore::torch::load_safetensors(&last.join("optimizer.safetensors"), None, device)?
                .into_iter()
                .collect();
        trainer.opt.load_state(saved, state.step)?;
        trainer.step = state.step;
        trainer.consumed_samples = state.consumed_samples;
        Ok(trainer)
    }
}

/// Complete checkpoints (`step-N` folders with a trainer state), oldest first.
fn checkpoints(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
                    && p.join("trainer_state.json").is_file()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                error: e,
            })
        }
    };
    out.sort();
    Ok(out)
}

/// A freshly initialised model: normal(0, 0.02) matrices and unit norms. The values come from
/// a SplitMix64 stream seeded by `seed` (Box-Muller for normals), not libtorch's global
/// generator, so they are the same whatever else the process draws and on every device.
pub fn init_model(config: LlamaConfig, seed: u64, device: tch::Device) -> Result<Llama> {
    let state = std::cell::Cell::new(seed);
    let uniform = || {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = (s ^ (s >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let normal = |shape: &[i64]| {
        let n: i64 = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let (u1, u2) = (uniform(), uniform());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * 0.02) as f32
            })
            .collect();
        Tensor::from_slice(&values).view(shape).to_device(device)
    };
    let mut t = HashMap::new();
    for (name, shape) in config.tensor_shapes() {
        let value = if name.ends_with("norm.weight") {
            Tensor::ones(shape.as_slice(), (Kind::Float, device))
        } else {
            normal(&shape)
        };
        t.insert(name, value);
    }
    Llama::from_tensors(config, t, Path::new("initialisation"))
}
