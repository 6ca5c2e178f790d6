//! A local model (flagscale checkpoint folder or GGUF) scored the way lm-eval's `hf` backend
//! scores: trailing spaces of the context move to the continuation, the continuation's tokens
//! are those of context + continuation after the context's, an empty context starts from the
//! end-of-text token, requests that feed the model the same tokens share one forward pass, and
//! the rest run longest first in right-padded batches.

use super::{Model, Request};
use crate::{Error, Result};
use flagscale::model::Llama;
use std::path::Path;
use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct Local {
    model: Llama,
    tokenizer: tokenizers::Tokenizer,
    name: String,
    /// The weights' path, size and modification time.
    fingerprint: String,
    /// Padded tokens per forward pass.
    pub batch_tokens: usize,
}

impl Local {
    /// Loads a Hugging Face / flagscale folder (with `tokenizer.json`) or a GGUF file.
    pub fn load(path: &Path, device: tch::Device) -> Result<Self> {
        let gguf = flagscale::source::is_gguf(path);
        let model = flagscale::source::load_model(path, flagcore::DType::F32, device)?;
        let tokenizer = flagscale::source::load_tokenizer(path)?;
        let name = path
            .file_stem()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let weights = if gguf {
            path.to_path_buf()
        } else {
            path.join("model.safetensors")
        };
        let stamp = std::fs::metadata(&weights)
            .ok()
            .map(|m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{}:{t}", m.len())
            })
            .unwrap_or_default();
        let fingerprint = format!(
            "local:{}:{stamp}",
            path.canonicalize().unwrap_or(path.to_path_buf()).display()
        );
        Ok(Local {
            model,
            tokenizer,
            name,
            fingerprint,
            batch_tokens: 8192,
        })
    }

    fn encode(&self, text: &str) -> Result<Vec<i64>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Invalid(format!("tokenizing: {e}")))?
            .get_ids()
            .iter()
            .map(|&t| t as i64)
            .collect())
    }

    /// (context tokens, continuation tokens) as lm-eval's `_encode_pair` makes them.
    fn encode_pair(&self, r: &Request) -> Result<(Vec<i64>, Vec<i64>)> {
        if r.context.is_empty() {
            let eot = flagscale::generate::eos_ids(&self.tokenizer)
                .first()
                .copied()
                .ok_or_else(|| {
                    Error::Invalid("an empty context needs an end-of-text token".into())
                })?;
            return Ok((vec![eot as i64], self.encode(&r.continuation)?));
        }
        let kept = r.context.trim_end().len();
        let (ctx, moved) = r.context.split_at(kept);
        let cont = format!("{moved}{}", r.continuation);
        let whole = self.encode(&format!("{ctx}{cont}"))?;
        let ctx_ids = self.encode(ctx)?;
        let cont_ids = whole[ctx_ids.len().min(whole.len())..].to_vec();
        Ok((ctx_ids, cont_ids))
    }
}

impl Model for Local {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        let context = self.model.config.max_position_embeddings;
        // Input: all but the last token, cut from the left to the context (as lm-eval does).
        let mut rows = Vec::with_capacity(requests.len());
        for r in requests {
            let (c, k) = self.encode_pair(r)?;
            if k.is_empty() {
                return Err(Error::Invalid(format!(
                    "continuation {:?} has no tokens of its own",
                    r.continuation
                )));
            }
            let mut all = c;
            all.extend(&k);
            let keep = all.len().min(context + 1);
            let all = all[all.len() - keep..].to_vec();
            rows.push((all, k.len()));
        }
        // Requests whose inputs are the same tokens (choices of one token after a shared
        // context) need one forward pass between them, as lm-eval's `hf` backend shares it.
        let mut unique: Vec<usize> = Vec::new();
        let mut first_of: std::collections::HashMap<&[i64], usize> = Default::default();
        let mut source = vec![0usize; rows.len()];
        for (i, (all, _)) in rows.iter().enumerate() {
            let input = &all[..all.len() - 1];
            source[i] = *first_of.entry(input).or_insert_with(|| {
                unique.push(i);
                i
            });
        }
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
        for (i, &s) in source.iter().enumerate() {
            users[s].push(i);
        }
        unique.sort_by_key(|&i| std::cmp::Reverse(rows[i].0.len()));
        let mut out = vec![(0.0, false); rows.len()];
        let mut start = 0;
        while start < unique.len() {
            // Longest first: the first row of a batch sets its padded length.
            let width = rows[unique[start]].0.len() - 1;
            let n = (self.batch_tokens / width.max(1)).max(1);
            let batch = &unique[start..(start + n).min(unique.len())];
            let mut ids = Vec::with_capacity(batch.len() * width);
            for &i in batch {
                let inp = &rows[i].0[..rows[i].0.len() - 1];
                ids.extend_from_slice(inp);
                ids.resize(ids.len() + width - inp.len(), 0);
            }
            let input = Tensor::from_slice(&ids)
                .view([batch.len() as i64, width as i64])
                .to_device(self.model.device());
            let hidden = tch::no_grad(|| self.model.hidden(&input))?;
            // Logits only where a continuation is scored: the output head over every position
            // would be a fifth of a small model's work for nothing.
            let mut spans = Vec::new();
            let mut picks = Vec::new();
            for (b, &u) in batch.iter().enumerate() {
                let inp_len = rows[u].0.len() - 1;
                let k = users[u].iter().map(|&i| rows[i].1).max().unwrap_or(1);
                picks.push(
                    hidden
                        .get(b as i64)
                        .narrow(0, (inp_len - k) as i64, k as i64),
                );
                spans.push((u, k));
            }
            let lp = tch::no_grad(|| {
                self.model
                    .head(&Tensor::cat(&picks, 0))
                    .to_kind(Kind::Float)
                    .log_softmax(-1, Kind::Float)
            });
            let mut offset = 0i64;
            for (u, k) in spans {
                let block = lp.narrow(0, offset, k as i64);
                offset += k as i64;
                for &i in &users[u] {
                    let (all, n) = (&rows[i].0, rows[i].1);
                    let rows_lp = block.narrow(0, (k - n) as i64, n as i64);
                    let target = Tensor::from_slice(&all[all.len() - n..]).to_device(lp.device());
                    let picked = rows_lp
                        .gather(1, &target.unsqueeze(1), false)
                        .sum(Kind::Double);
                    let greedy = rows_lp.argmax(-1, false).eq_tensor(&target).all();
                    out[i] = (picked.double_value(&[]), greedy.int64_value(&[]) != 0);
                }
            }
            start += batch.len();
        }
        Ok(out)
    }
}
