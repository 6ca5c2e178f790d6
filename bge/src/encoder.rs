//! Texts to embeddings: tokenise (special tokens, truncation to the model's length), batch by
//! length (longest first, so padding is small), run BERT, pool, normalise. Query instructions
//! are prefixes, as FlagEmbedding adds them.

use crate::bert::{Bert, PlanCache};
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
        let head = &self.head;
        self.map_hidden(
            ids,
            || (),
            |_, h, _, mask| {
                let v = head.pool(h, mask, normalize).to_device(tch::Device::Cpu);
                let dim = v.size()[1].max(1) as usize;
                let flat = Vec::<f32>::try_from(v.flatten(0, -1))
                    .map_err(|e| Error::Invalid(format!("reading embeddings: {e}")))?;
                Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect())
            },
        )
    }

    /// `f(extra, last hidden states, ids, mask)` of each batch of tokenised texts (special
    /// tokens included), one result per text, in `ids`' order: the batches longest first, for
    /// inference (no gradients), on the CPU through the model's plan on workers
    /// (`workers.rs`), each with its own `extra()` (what `f` reads besides, shared as tensors
    /// must be: a shallow copy per thread). Hidden states at padding positions may hold
    /// anything.
    pub fn map_hidden<E: Send, T: Send>(
        &self,
        ids: &[Vec<u32>],
        extra: impl Fn() -> E,
        f: impl Fn(&E, &Tensor, &Tensor, &Tensor) -> Result<Vec<T>> + Sync,
    ) -> Result<Vec<T>> {
        if ids
            .iter()
            .any(|t| t.is_empty() || t.len() > self.max_length)
        {
            return Err(Error::Invalid(format!(
                "every input needs 1 to {} tokens",
                self.max_length
            )));
        }
        let plan = self.plan.get(&self.bert);
        let (plan, max_length) = (plan.as_deref(), self.max_length);
        let run = |(bert, extra): &(Bert, E), chunk: &[usize]| -> Result<Vec<T>> {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let (i, m) = batch(bert, max_length, &rows);
            tch::no_grad(|| f(extra, &bert.last_hidden(plan, &i, None, &m)?, &i, &m))
        };
        let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
        let cpu = self.bert.device() == tch::Device::Cpu;
        let share = || (self.bert.share(), extra());
        crate::workers::by_length(&lens, self.batch_size, cpu, share, run)
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
        let h = self.bert.forward_t(ids, None, mask, train)?;
        Ok(self.head.pool(&h, mask, normalize))
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
