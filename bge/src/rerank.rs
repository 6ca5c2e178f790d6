//! Cross-encoder rerankers: a (query, passage) pair in one sequence through the encoder, a
//! classification head on the first token, one logit per pair (sigmoid optional, as
//! FlagEmbedding's `normalize`). The heads of transformers' `XLMRobertaForSequenceClassification`
//! (bge-reranker-base/-large/-v2-m3: dense → tanh → out_proj) and
//! `BertForSequenceClassification` (pooler dense → tanh → classifier) are read by name.

use crate::bert::{batch_width, load_tensors, pad_rows_to, Bert, CpuPlan, PlanCache};
use crate::config::BertConfig;
use crate::error::read_json;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Token ids and types of a (query, passage) pair as `tok` cuts it (longest first), and
/// whether the cut removed anything.
pub fn tokenize_pair(
    tok: &tokenizers::Tokenizer,
    query: &str,
    passage: &str,
) -> Result<(Vec<u32>, Vec<u32>, bool)> {
    let e = tok
        .encode((query, passage), true)
        .map_err(|e| Error::Invalid(format!("tokenizing a pair: {e}")))?;
    Ok((
        e.get_ids().to_vec(),
        e.get_type_ids().to_vec(),
        !e.get_overflowing().is_empty(),
    ))
}

#[derive(Debug)]
struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    fn take(t: &mut HashMap<String, Tensor>, name: &str) -> Option<Dense> {
        let w = t.remove(&format!("{name}.weight"))?;
        let b = t.remove(&format!("{name}.bias"))?;
        Some(Dense { w, b })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w, Some(&self.b))
    }

    fn share(&self) -> Dense {
        Dense {
            w: self.w.shallow_clone(),
            b: self.b.shallow_clone(),
        }
    }
}

/// One logit per row of a batch (ids, token types and mask (B, T)) through `bert` and its
/// CPU plan when given, then the classification head (`dense` → tanh → `out`).
fn classify(
    (bert, dense, out): (&Bert, &Dense, &Dense),
    plan: Option<&CpuPlan>,
    ids: &Tensor,
    types: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    tch::no_grad(|| {
        let h = bert.last_hidden(plan, ids, Some(types), mask)?;
        let first = h.select(1, 0);
        Ok(out
            .forward(&dense.forward(&first).tanh())
            .select(1, 0)
            .to_kind(Kind::Float))
    })
}

#[derive(Debug)]
pub struct Reranker {
    pub bert: Bert,
    /// First-token state → hidden (tanh after it).
    dense: Dense,
    /// Hidden → logits; the first logit is the score.
    out: Dense,
    pub tokenizer: tokenizers::Tokenizer,
    /// Tokens per pair, special tokens included (longest-first truncation).
    pub max_length: usize,
    pub batch_size: usize,
    /// The CPU plan of `bert` (see [`Bert::cpu_plan`]).
    plan: PlanCache,
}

impl Reranker {
    /// Loads a transformers sequence-classification folder (config.json, model.safetensors,
    /// tokenizer.json); pairs are cut to `max_length` tokens (FlagEmbedding's default 512).
    pub fn load(dir: &Path, max_length: usize, kind: Kind, device: tch::Device) -> Result<Self> {
        let config: BertConfig = read_json(&dir.join("config.json"))?;
        let weights = dir.join("model.safetensors");
        let (bert, dense, out) = Self::from_tensors(load_tensors(&weights, kind, device)?, config)
            .map_err(|e| Error::File {
                path: weights,
                message: e.to_string(),
            })?;
        let max_length = max_length.min(bert.max_tokens());
        let tok_path = dir.join("tokenizer.json");
        let fail = |m: String| Error::File {
            path: tok_path.clone(),
            message: m,
        };
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| fail(e.to_string()))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| fail(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(Reranker {
            bert,
            dense,
            out,
            tokenizer,
            max_length,
            batch_size: 32,
            plan: PlanCache::default(),
        })
    }

    fn from_tensors(
        mut t: HashMap<String, Tensor>,
        config: BertConfig,
    ) -> Result<(Bert, Dense, Dense)> {
        let roberta =
            Dense::take(&mut t, "classifier.dense").zip(Dense::take(&mut t, "classifier.out_proj"));
        let (dense, out) = match roberta {
            Some(h) => h,
            None => {
                let pooler = Dense::take(&mut t, "bert.pooler.dense")
                    .or_else(|| Dense::take(&mut t, "pooler.dense"));
                pooler
                    .zip(Dense::take(&mut t, "classifier"))
                    .ok_or_else(|| {
                        Error::Weights(
                            "no classification head (classifier.dense + classifier.out_proj, or \
                         pooler.dense + classifier)"
                                .into(),
                        )
                    })?
            }
        };
        let h = config.hidden_size as i64;
        if dense.w.size() != [h, h] || out.w.size().len() != 2 || out.w.size()[1] != h {
            return Err(Error::Weights(format!(
                "classification head shapes {:?} and {:?} do not fit hidden size {h}",
                dense.w.size(),
                out.w.size()
            )));
        }
        Ok((Bert::from_tensors(t, config)?, dense, out))
    }

    /// One logit per row of a batch: ids, token types and mask (B, T); inference only (no
    /// gradients; through the CPU plan on the CPU).
    pub fn logits(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let plan = self.plan.get(&self.bert);
        let model = (&self.bert, &self.dense, &self.out);
        classify(model, plan.as_deref(), ids, types, mask)
    }

    /// The model and its head, shallow copies (for workers: tensors are not `Sync`).
    fn share(&self) -> (Bert, Dense, Dense) {
        (self.bert.share(), self.dense.share(), self.out.share())
    }

    /// Token ids and types of a (query, passage) pair, cut to `max_length` (longest first),
    /// and whether the cut removed anything.
    pub fn tokenize_pair(&self, query: &str, passage: &str) -> Result<(Vec<u32>, Vec<u32>, bool)> {
        tokenize_pair(&self.tokenizer, query, passage)
    }

    /// A score per (query, passage) pair, in the pairs' order; `sigmoid` maps logits to (0, 1).
    pub fn score<Q: AsRef<str>, P: AsRef<str>>(
        &self,
        pairs: &[(Q, P)],
        sigmoid: bool,
    ) -> Result<Vec<f32>> {
        let enc: Vec<(Vec<u32>, Vec<u32>)> = pairs
            .iter()
            .map(|(q, p)| {
                self.tokenize_pair(q.as_ref(), p.as_ref())
                    .map(|(i, t, _)| (i, t))
            })
            .collect::<Result<_>>()?;
        self.score_ids(&enc, sigmoid)
    }

    /// [`Reranker::score`] of tokenised pairs (ids, token types).
    pub fn score_ids(&self, enc: &[(Vec<u32>, Vec<u32>)], sigmoid: bool) -> Result<Vec<f32>> {
        if enc
            .iter()
            .any(|(i, t)| i.is_empty() || i.len() != t.len() || i.len() > self.max_length)
        {
            return Err(Error::Invalid(format!(
                "every pair needs 1 to {} tokens, with a type per token",
                self.max_length
            )));
        }
        let pad = self.bert.config.pad_token_id.unwrap_or(0);
        // Models with one token type (XLM-R) see every token as type 0, as their tokenizers
        // say; a BERT-style tokenizer's second segment must not index past it.
        let typed = self.bert.config.type_vocab_size > 1;
        let plan = self.plan.get(&self.bert);
        let (device, max_length) = (self.bert.device(), self.max_length);
        let run = |(bert, dense, out): &(Bert, Dense, Dense), chunk: &[usize]| {
            let ids: Vec<&[u32]> = chunk.iter().map(|&i| enc[i].0.as_slice()).collect();
            let width = batch_width(&ids, device, max_length);
            let (ids, mask) = pad_rows_to(&ids, pad, device, width);
            let types = if typed {
                let rows: Vec<&[u32]> = chunk.iter().map(|&i| enc[i].1.as_slice()).collect();
                pad_rows_to(&rows, 0, device, width).0
            } else {
                ids.zeros_like()
            };
            let logits = classify((bert, dense, out), plan.as_deref(), &ids, &types, &mask)?;
            let logits = if sigmoid { logits.sigmoid() } else { logits };
            Vec::<f32>::try_from(logits.to_device(tch::Device::Cpu))
                .map_err(|e| Error::Invalid(format!("reading scores: {e}")))
        };
        let lens: Vec<usize> = enc.iter().map(|e| e.0.len()).collect();
        let cpu = device == tch::Device::Cpu;
        crate::workers::by_length(&lens, self.batch_size, cpu, || self.share(), run)
    }
}
