//! A local model (flagscale checkpoint folder or GGUF) answering as lm-eval's `hf` backend
//! does: trailing spaces of the context move to the continuation, the continuation's tokens
//! are those of context + continuation after the context's, an empty context starts from the
//! end-of-text token, inputs are cut from the left to the context window, rolling
//! log-likelihoods go in lm-eval's disjoint windows, and generation is greedy unless a
//! temperature is given. Scoring shares work between requests (`score.rs`).

mod score;

use super::{cut_at_stops, GenRequest, Model, Request};
use crate::{Error, Result};
use flagscale::generate::{BatchRequest, SamplingParams};
use flagscale::model::Llama;
use score::Row;
use std::path::Path;

#[derive(Debug)]
pub struct Local {
    model: Llama,
    tokenizer: tokenizers::Tokenizer,
    name: String,
    /// The weights' path, size and modification time.
    fingerprint: String,
    /// Padded tokens per forward pass.
    pub batch_tokens: usize,
    /// Prompts decoded together.
    pub generation_batch: usize,
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
            generation_batch: 16,
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

    fn eot(&self) -> Result<i64> {
        flagscale::generate::eos_ids(&self.tokenizer)
            .first()
            .map(|&t| t as i64)
            .ok_or_else(|| Error::Invalid("the tokenizer has no end-of-text token".into()))
    }

    fn window(&self) -> usize {
        self.model.config.max_position_embeddings
    }

    /// (context tokens, continuation tokens) as lm-eval's `_encode_pair` makes them.
    /// `contexts` keeps each context's tokens: the options of one question share it, and
    /// tokenising it once per option would be work done four times over.
    fn encode_pair(
        &self,
        r: &Request,
        contexts: &mut std::collections::HashMap<String, Vec<i64>>,
    ) -> Result<(Vec<i64>, Vec<i64>)> {
        if r.context.is_empty() {
            return Ok((vec![self.eot()?], self.encode(&r.continuation)?));
        }
        let kept = r.context.trim_end().len();
        if kept == 0 {
            // Only whitespace: it moves to the continuation, which starts from end-of-text.
            return Ok((
                vec![self.eot()?],
                self.encode(&format!("{}{}", r.context, r.continuation))?,
            ));
        }
        let (ctx, moved) = r.context.split_at(kept);
        let cont = format!("{moved}{}", r.continuation);
        let whole = self.encode(&format!("{ctx}{cont}"))?;
        let ctx_ids = match contexts.get(ctx) {
            Some(ids) => ids.clone(),
            None => {
                let ids = self.encode(ctx)?;
                contexts.insert(ctx.to_string(), ids.clone());
                ids
            }
        };
        let cont_ids = whole[ctx_ids.len().min(whole.len())..].to_vec();
        Ok((ctx_ids, cont_ids))
    }

    /// A row cut from the left to the window + 1 tokens, as lm-eval cuts its inputs.
    fn row(&self, ctx: Vec<i64>, cont: Vec<i64>) -> Result<Row> {
        let limit = self.window() + 1;
        if cont.len() >= limit {
            return Err(Error::Invalid(format!(
                "a continuation of {} tokens does not fit the context window of {}",
                cont.len(),
                self.window()
            )));
        }
        if ctx.is_empty() {
            return Err(Error::Invalid("a context with no tokens".into()));
        }
        let over = (ctx.len() + cont.len()).saturating_sub(limit);
        Ok(Row {
            ctx: ctx[over..].to_vec(),
            cont,
        })
    }
}

/// lm-eval's rolling windows with one token of context, made disjoint: each window predicts
/// the tokens after the previous one's, seeing as many earlier tokens as the window holds.
pub fn rolling_windows(tokens: &[i64], eot: i64, window: usize) -> Vec<(Vec<i64>, Vec<i64>)> {
    let mut out = Vec::new();
    if tokens.is_empty() {
        return out;
    }
    let first = window.min(tokens.len());
    out.push((vec![eot], tokens[..first].to_vec()));
    let mut done = first;
    while done < tokens.len() {
        let n = (tokens.len() - done).min(window);
        let end = done + n;
        out.push((
            tokens[end - window - 1..end - n].to_vec(),
            tokens[end - n..end].to_vec(),
        ));
        done = end;
    }
    out
}

impl Model for Local {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        let mut rows = Vec::with_capacity(requests.len());
        let mut contexts = std::collections::HashMap::new();
        for r in requests {
            let (c, k) = self.encode_pair(r, &mut contexts)?;
            if k.is_empty() {
                return Err(Error::Invalid(format!(
                    "continuation {:?} has no tokens of its own",
                    r.continuation
                )));
            }
            rows.push(self.row(c, k)?);
        }
        score::score(&self.model, &rows, self.batch_tokens)
    }

    fn loglikelihood_rolling(&mut self, texts: &[String]) -> Result<Vec<f64>> {
        let eot = self.eot()?;
        let mut rows = Vec::new();
        let mut owner = Vec::new();
        for (t, text) in texts.iter().enumerate() {
            for (ctx, cont) in rolling_windows(&self.encode(text)?, eot, self.window()) {
                rows.push(Row { ctx, cont });
                owner.push(t);
            }
        }
        let scored = score::score(&self.model, &rows, self.batch_tokens)?;
        let mut out = vec![0.0; texts.len()];
        for (t, (ll, _)) in owner.into_iter().zip(scored) {
            out[t] += ll;
        }
        Ok(out)
    }

    fn generate_until(&mut self, requests: &[GenRequest]) -> Result<Vec<String>> {
        let eos = flagscale::generate::eos_ids(&self.tokenizer);
        let mut prompts = Vec::with_capacity(requests.len());
        for r in requests {
            let ids = self
                .tokenizer
                .encode(r.context.as_str(), false)
                .map_err(|e| Error::Invalid(format!("tokenizing: {e}")))?
                .get_ids()
                .to_vec();
            // Room for the answer: the prompt is cut from the left, as lm-eval cuts it.
            let keep = self.window().saturating_sub(r.max_gen_toks).max(1);
            prompts.push(ids[ids.len().saturating_sub(keep)..].to_vec());
        }
        let params: Vec<SamplingParams> = requests
            .iter()
            .map(|r| SamplingParams {
                max_new_tokens: r.max_gen_toks,
                temperature: r.temperature,
                seed: r.seed,
                stop: r.until.clone(),
                eos: eos.clone(),
                ..Default::default()
            })
            .collect();
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
        let mut out = vec![String::new(); requests.len()];
        for chunk in order.chunks(self.generation_batch.max(1)) {
            let mut sinks: Vec<fn(&str) -> bool> = vec![|_| true; chunk.len()];
            let mut batch: Vec<BatchRequest<'_>> = chunk
                .iter()
                .zip(sinks.iter_mut())
                .map(|(&i, sink)| BatchRequest {
                    prompt: &prompts[i],
                    params: &params[i],
                    on_text: sink,
                })
                .collect();
            let done = tch::no_grad(|| {
                flagscale::generate::generate_batch(&self.model, &self.tokenizer, &mut batch)
            })?;
            for (&i, g) in chunk.iter().zip(done) {
                out[i] = cut_at_stops(&g.text, &requests[i].until);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::rolling_windows;

    #[test]
    fn rolling_windows_are_lm_evals() {
        // lm-eval: get_rolling_token_windows(list(range(10)), prefix_token=-1, max_seq_len=4,
        // context_len=1) made disjoint.
        let tokens: Vec<i64> = (0..10).collect();
        let w = rolling_windows(&tokens, -1, 4);
        assert_eq!(
            w,
            vec![
                (vec![-1], vec![0, 1, 2, 3]),
                (vec![3], vec![4, 5, 6, 7]),
                (vec![5, 6, 7], vec![8, 9]),
            ]
        );
    }
}
