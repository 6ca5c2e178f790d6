//! Contrastive fine-tuning as FlagEmbedding trains BGE: each query with a group of passages
//! (1 positive + `group_size − 1` negatives), InfoNCE over normalised embeddings at a
//! temperature (0.02), every other query's passages as in-batch negatives, AdamW with
//! linear warmup and gradient clipping (`adamw.rs`), dropout on. Negatives come from the
//! data or from [`mine::mine`]. [`save`] writes a folder sentence-transformers loads.

pub mod adamw;
pub mod data;
pub mod mine;

use crate::{Encoder, Error, Result};
use data::Example;
use flagcore::rng::Rng;
use std::path::Path;
use tch::{Kind, Tensor};

#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainOptions {
    pub learning_rate: f64,
    pub epochs: usize,
    /// Queries per step.
    pub batch_size: usize,
    pub group_size: usize,
    pub temperature: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub query_max_len: usize,
    pub passage_max_len: usize,
    pub query_instruction: String,
    pub seed: u64,
    /// Stop after this many steps (the schedule still spans them only).
    pub max_steps: Option<usize>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            learning_rate: 1e-5,
            epochs: 1,
            batch_size: 8,
            group_size: 8,
            temperature: 0.02,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            query_max_len: 32,
            passage_max_len: 128,
            query_instruction: String::new(),
            seed: 42,
            max_steps: None,
        }
    }
}

/// What one step reports.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub step: usize,
    pub total: usize,
    pub loss: f64,
    pub learning_rate: f64,
}

fn truncating(tok: &tokenizers::Tokenizer, max_length: usize) -> Result<tokenizers::Tokenizer> {
    let mut t = tok.clone();
    t.with_truncation(Some(tokenizers::TruncationParams {
        max_length,
        ..Default::default()
    }))
    .map_err(|e| Error::Invalid(format!("truncation to {max_length}: {e}")))?;
    Ok(t)
}

/// The passages of one query's group: a random positive, then `group_size − 1` negatives
/// sampled without replacement (with repetition only when there are too few).
fn group(ex: &Example, group_size: usize, rng: &mut Rng) -> Vec<String> {
    let mut g = vec![ex.pos[rng.below(ex.pos.len())].clone()];
    let want = group_size - 1;
    let all: Vec<usize> = (0..ex.neg.len()).collect();
    while g.len() <= want {
        let take = rng.sample(&all, want + 1 - g.len());
        g.extend(take.into_iter().map(|i| ex.neg[i].clone()));
    }
    g
}

/// InfoNCE of normalised query (Q, H) and passage (Q·G, H) embeddings: query i's positive
/// is passage i·G, all other passages of the batch are its negatives.
pub fn info_nce(q: &Tensor, p: &Tensor, group_size: usize, temperature: f64) -> Tensor {
    let n = q.size()[0];
    let scores = q.matmul(&p.transpose(0, 1)) / temperature;
    let target = Tensor::arange(n, (Kind::Int64, q.device())) * group_size as i64;
    scores.cross_entropy_for_logits(&target)
}

/// Fine-tunes `encoder` in place on `examples` (which need negatives); `report` sees every
/// step. Returns the losses.
pub fn train(
    encoder: &mut Encoder,
    examples: &[Example],
    opts: &TrainOptions,
    mut report: impl FnMut(Step),
) -> Result<Vec<f64>> {
    if opts.group_size < 2 || opts.batch_size == 0 || opts.temperature <= 0.0 {
        return Err(Error::Invalid(
            "group size ≥ 2, batch size ≥ 1 and a positive temperature are needed".into(),
        ));
    }
    if let Some(i) = examples
        .iter()
        .position(|e| e.neg.is_empty() || e.pos.is_empty())
    {
        return Err(Error::Invalid(format!(
            "example {} (`{}`) lacks positives or negatives (mine negatives first: bge mine-negatives)",
            i + 1,
            short(&examples[i].query)
        )));
    }
    if let Some((n, p)) = encoder
        .bert
        .parameters()
        .iter()
        .find(|(_, p)| p.kind() != Kind::Float)
    {
        return Err(Error::Invalid(format!(
            "`{n}` is {:?}: fine-tuning keeps f32 weights (load the model in f32)",
            p.kind()
        )));
    }
    let qtok = truncating(
        &encoder.tokenizer,
        opts.query_max_len.min(encoder.max_length),
    )?;
    let ptok = truncating(
        &encoder.tokenizer,
        opts.passage_max_len.min(encoder.max_length),
    )?;
    let per_epoch = examples.len().div_ceil(opts.batch_size);
    let mut total = per_epoch * opts.epochs.max(1);
    if let Some(m) = opts.max_steps {
        total = total.min(m);
    }
    let warmup = (opts.warmup_ratio * total as f64).ceil() as usize;
    let params: Vec<(String, Tensor)> = encoder
        .bert
        .parameters()
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    for (_, p) in &params {
        let _ = p.shallow_clone().set_requires_grad(true);
    }
    let mut opt = adamw::AdamW::new(&params, opts.weight_decay);
    let mut rng = Rng::new(opts.seed);
    let mut losses = Vec::with_capacity(total);
    let mut step = 0;
    'epochs: for _ in 0..opts.epochs.max(1) {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for batch in order.chunks(opts.batch_size) {
            if step == total {
                break 'epochs;
            }
            let queries: Vec<String> = batch
                .iter()
                .map(|&i| format!("{}{}", opts.query_instruction, examples[i].query))
                .collect();
            let passages: Vec<String> = batch
                .iter()
                .flat_map(|&i| group(&examples[i], opts.group_size, &mut rng))
                .collect();
            let embed = |tok: &tokenizers::Tokenizer, texts: &[String]| -> Result<Tensor> {
                let rows = crate::encoder::token_ids(tok, texts)?;
                let rows: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
                let (i, m) = encoder.batch(&rows);
                encoder.embed(&i, &m, true, true)
            };
            let loss = info_nce(
                &embed(&qtok, &queries)?,
                &embed(&ptok, &passages)?,
                opts.group_size,
                opts.temperature,
            );
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(Error::Invalid(format!(
                    "step {}: the loss is {value}",
                    step + 1
                )));
            }
            loss.backward();
            opt.clip_grad_norm(opts.max_grad_norm);
            let lr = opts.learning_rate * adamw::linear_warmup(step, warmup, total);
            opt.step(lr);
            step += 1;
            losses.push(value);
            report(Step {
                step,
                total,
                loss: value,
                learning_rate: lr,
            });
        }
    }
    for (_, p) in &params {
        let _ = p.shallow_clone().set_requires_grad(false);
    }
    Ok(losses)
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Writes `encoder`'s weights (f32, the checkpoint's tensor names) with every other file of
/// the folder it came from (`source`: config, tokenizer, sentence-transformers modules) into
/// `out`, which sentence-transformers and `Encoder::load` then read. Written into a
/// temporary folder renamed at the end: nothing half-written is left under `out`.
pub fn save(encoder: &Encoder, source: &Path, out: &Path) -> Result<()> {
    crate::error::write_dir(out, |dir| {
        copy_tree(source, dir)?;
        let named: Vec<(&str, &Tensor)> = encoder
            .bert
            .named_tensors()
            .map(|(n, t)| (n.as_str(), t))
            .collect();
        let weights = dir.join("model.safetensors");
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        flagcore::torch::save_safetensors(&weights, &named, Some(flagcore::DType::F32), Some(meta))
            .map_err(|e| Error::File {
                path: weights.clone(),
                message: e.to_string(),
            })?;
        Ok(())
    })
}

/// Copies a model folder except its weight files.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let io = |path: &Path, error: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let name = entry.file_name();
        let lossy = name.to_string_lossy();
        if lossy == "model.safetensors" || lossy == "pytorch_model.bin" || lossy.starts_with('.') {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().map_err(|e| io(&src, e))?.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| io(&dst, e))?;
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| io(&src, e))?;
        }
    }
    Ok(())
}
