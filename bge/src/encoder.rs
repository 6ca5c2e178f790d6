//! Texts to embeddings: tokenise (special tokens, truncation to the model's length), batch by
//! length (longest first, so padding is small), run BERT, pool, normalise. Query instructions
//! are prefixes, as FlagEmbedding adds them.

use crate::bert::{Bert, CpuPlan, PlanCache};
use crate::config::BertConfig;
use crate::error::read_json;
use crate::pooling::Head;
use crate::{Error, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// BGE's English query instruction (bge-*-en-v1.5).
pub const QUERY_INSTRUCTION_EN: &str = "Represent this sentence for searching relevant passages: ";
/// BGE's Chinese query instruction (bge-*-zh-v1.5).
pub const QUERY_INSTRUCTION_ZH: &str = "为这个句子生成表示以用于检索相关文章：";

/// Token ids (special tokens included, truncated as the tokenizer is set) and whether the
/// truncation cut the text.
pub fn tokenize_checked(tok: &tokenizers::Tokenizer, text: &str) -> Result<(Vec<u32>, bool)> {
    let e = tok
        .encode(text, true)
        .map_err(|e| Error::Invalid(format!("tokenizing: {e}")))?;
    Ok((e.get_ids().to_vec(), !e.get_overflowing().is_empty()))
}

/// Token ids of each text (special tokens included, truncated as `tok` is set); many texts are
/// split over as many threads as libtorch uses (the encoder's workers wait for them).
pub fn token_ids<S: AsRef<str> + Sync>(
    tok: &tokenizers::Tokenizer,
    texts: &[S],
) -> Result<Vec<Vec<u32>>> {
    let run = |part: &[S]| -> Result<Vec<Vec<u32>>> {
        part.iter()
            .map(|t| tokenize_checked(tok, t.as_ref()).map(|(ids, _)| ids))
            .collect()
    };
    let threads = tch::get_num_threads().max(1) as usize;
    if threads < 2 || texts.len() < 256 {
        return run(texts);
    }
    let parts: Vec<Result<Vec<Vec<u32>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(texts.len().div_ceil(threads))
            .map(|part| s.spawn(move || run(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut ids = Vec::with_capacity(texts.len());
    for part in parts {
        ids.extend(part?);
    }
    Ok(ids)
}

#[derive(Debug)]
pub struct Encoder {
    pub bert: Bert,
    pub tokenizer: tokenizers::Tokenizer,
    pub head: Head,
    /// Tokens per text, special tokens included.
    pub max_length: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// The CPU plan of `bert` (see [`Bert::cpu_plan`]).
    plan: PlanCache,
}

impl Encoder {
    /// Loads a sentence-transformers or transformers folder in `kind` (f32, bf16, f16).
    pub fn load(dir: &Path, kind: Kind, device: tch::Device) -> Result<Self> {
        let config: BertConfig = read_json(&dir.join("config.json"))?;
        let head = Head::read(dir)?;
        let bert = Bert::load(dir, config, kind, device)?;
        let max_length = head
            .max_seq_length
            .unwrap_or(bert.max_tokens())
            .min(bert.max_tokens());
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| Error::File {
                path: tok_path.clone(),
                message: e.to_string(),
            })?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| Error::File {
                path: tok_path,
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        Ok(Encoder {
            bert,
            tokenizer,
            head,
            max_length,
            batch_size: 32,
            plan: Default::default(),
        })
    }

    /// Token ids of each text, with special tokens, truncated to `max_length`.
    pub fn tokenize<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        token_ids(&self.tokenizer, texts)
    }

    /// One embedding per text (normalised when the folder says so).
    pub fn encode<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let ids = self.tokenize(texts)?;
        self.encode_ids(&ids, self.head.normalize)
    }

    /// One embedding per tokenised text (special tokens included), L2-normalised or not.
    pub fn encode_ids(&self, ids: &[Vec<u32>], normalize: bool) -> Result<Vec<Vec<f32>>> {
        if ids
            .iter()
            .any(|t| t.is_empty() || t.len() > self.max_length)
        {
            return Err(Error::Invalid(format!(
                "every input needs 1 to {} tokens",
                self.max_length
            )));
        }
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let chunks: Vec<&[usize]> = order.chunks(self.batch_size.max(1)).collect();
        let plan = self.plan.get(&self.bert);
        let run = Run {
            head: &self.head,
            max_length: self.max_length,
            ids,
            normalize,
            plan: plan.as_deref(),
        };
        let cpu = self.bert.device() == tch::Device::Cpu;
        let flats =
            crate::workers::each_batch(cpu, || self.bert.share(), &chunks, |b, c| run.embed(b, c));
        let mut out = vec![Vec::new(); ids.len()];
        for (flat, chunk) in flats.into_iter().zip(&chunks) {
            let flat = flat?;
            let dim = flat.len() / chunk.len();
            for (row, &i) in flat.chunks(dim.max(1)).zip(chunk.iter()) {
                out[i] = row.to_vec();
            }
        }
        Ok(out)
    }

    /// Last hidden states (B, T, hidden) of a batch from [`Encoder::batch`] for inference,
    /// through the model's CPU plan where it has one; padding positions may hold anything.
    pub fn last_hidden(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let plan = self.plan.get(&self.bert);
        tch::no_grad(|| self.bert.last_hidden(plan.as_deref(), ids, None, mask))
    }

    /// Token ids (B, T) padded to the longest row (on CUDA, to a multiple of 16 within
    /// `max_length`) and the attention mask (B, T), on the model's device.
    pub fn batch(&self, rows: &[&[u32]]) -> (Tensor, Tensor) {
        batch(&self.bert, self.max_length, rows)
    }

    /// Pooled f32 embeddings (B, hidden) of a batch from [`Encoder::batch`]; with `train`,
    /// dropout is on and the result carries gradients (fine-tuning).
    pub fn embed(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        normalize: bool,
        train: bool,
    ) -> Result<Tensor> {
        pooled(&self.bert, None, &self.head, ids, mask, normalize, train)
    }

    /// Embeddings of queries with an instruction prefixed (BGE's retrieval convention).
    pub fn encode_queries<S: AsRef<str> + Sync>(
        &self,
        queries: &[S],
        instruction: &str,
    ) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<String> = queries
            .iter()
            .map(|q| format!("{instruction}{}", q.as_ref()))
            .collect();
        self.encode(&texts)
    }
}

/// [`Encoder::batch`] for `bert`.
fn batch(bert: &Bert, max_length: usize, rows: &[&[u32]]) -> (Tensor, Tensor) {
    let pad = bert.config.pad_token_id.unwrap_or(0);
    let device = bert.device();
    let width = crate::bert::batch_width(rows, device, max_length);
    crate::bert::pad_rows_to(rows, pad, device, width)
}

/// [`Encoder::embed`] through `bert` (by `plan` when given: inference on the CPU) and `head`.
fn pooled(
    bert: &Bert,
    plan: Option<&CpuPlan>,
    head: &Head,
    ids: &Tensor,
    mask: &Tensor,
    normalize: bool,
    train: bool,
) -> Result<Tensor> {
    let h = match train {
        true => bert.forward_t(ids, None, mask, true)?,
        false => bert.last_hidden(plan, ids, None, mask)?,
    };
    Ok(head.pool(&h, mask, normalize))
}

/// What every batch of one [`Encoder::encode_ids`] run shares.
struct Run<'a> {
    head: &'a Head,
    max_length: usize,
    ids: &'a [Vec<u32>],
    normalize: bool,
    plan: Option<&'a CpuPlan>,
}

impl Run<'_> {
    /// Pooled embeddings of the texts `chunk` picks from `ids`, one batch through `bert` (an
    /// encoder's model or a [`Bert::share`] of it), flattened.
    fn embed(&self, bert: &Bert, chunk: &[usize]) -> Result<Vec<f32>> {
        let rows: Vec<&[u32]> = chunk.iter().map(|&i| self.ids[i].as_slice()).collect();
        let (ids, mask) = batch(bert, self.max_length, &rows);
        let out = tch::no_grad(|| {
            pooled(
                bert,
                self.plan,
                self.head,
                &ids,
                &mask,
                self.normalize,
                false,
            )
        })?
        .to_device(tch::Device::Cpu);
        Vec::<f32>::try_from(out.flatten(0, -1))
            .map_err(|e| Error::Invalid(format!("reading embeddings: {e}")))
    }
}
