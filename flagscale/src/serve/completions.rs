//! `/v1/completions` in OpenAI's layout. With `echo`, the prompt's tokens come back with their
//! log-probabilities (null for the first), then the completion's; `logprobs: n` adds the n most
//! likely tokens at each position.

use super::AppState;
use crate::generate::{generate, SamplingParams};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tch::{Kind, Tensor};

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: Value,
    #[serde(default = "sixteen")]
    pub max_tokens: usize,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<Value>,
    #[serde(default)]
    pub echo: bool,
    #[serde(default)]
    pub logprobs: Option<usize>,
}

fn sixteen() -> usize {
    16
}

type Failure = (StatusCode, String);

fn bad(m: impl Into<String>) -> Failure {
    (StatusCode::UNPROCESSABLE_ENTITY, m.into())
}

/// A position's own log-probability (None for the first) and its most likely tokens.
type Scored = (Option<f64>, Vec<(u32, f64)>);

/// Per position of `ids`: the token's log-probability given what precedes (None for the first)
/// and the `top` most likely tokens there.
fn scored(model: &crate::model::Llama, ids: &[u32], top: usize) -> Result<Vec<Scored>, Failure> {
    let t: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    let logits = model
        .forward(
            &Tensor::from_slice(&t)
                .view([1, -1])
                .to_device(model.device()),
        )
        .map_err(|e| bad(e.to_string()))?;
    let lp = logits
        .select(0, 0)
        .to_kind(Kind::Double)
        .log_softmax(-1, Kind::Double)
        .to_device(tch::Device::Cpu);
    let mut out = vec![(None, Vec::new())];
    for (i, &id) in ids.iter().enumerate().skip(1) {
        let row = lp.select(0, i as i64 - 1);
        let own = row.double_value(&[id as i64]);
        let tops = if top > 0 {
            let (vals, idx) = row.topk(top as i64, -1, true, true);
            let vals = Vec::<f64>::try_from(&vals).unwrap_or_default();
            let idx = Vec::<i64>::try_from(&idx).unwrap_or_default();
            idx.into_iter()
                .zip(vals)
                .map(|(i, v)| (i as u32, v))
                .collect()
        } else {
            Vec::new()
        };
        out.push((Some(own), tops));
    }
    Ok(out)
}

fn token_text(tok: &tokenizers::Tokenizer, id: u32) -> String {
    tok.decode(&[id], false).unwrap_or_default()
}

/// Runs one completion request.
pub fn complete(state: &AppState, req: &CompletionRequest) -> Result<Value, Failure> {
    let prompts: Vec<String> = match &req.prompt {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.iter().all(Value::is_string) && !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => {
            return Err(bad(
                "`prompt` must be a string or a non-empty list of strings",
            ))
        }
    };
    let stop: Vec<String> = match &req.stop {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(_) => return Err(bad("`stop` must be a string or a list of strings")),
    };
    let top = req.logprobs.unwrap_or(0).min(20);
    let model = state.model.lock().map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "model lock poisoned".to_string(),
        )
    })?;
    let tok = &state.tokenizer;
    let context = model.config.max_position_embeddings;
    let mut choices = Vec::new();
    let (mut prompt_tokens, mut completion_tokens) = (0usize, 0usize);
    for (index, prompt) in prompts.iter().enumerate() {
        let ids = tok
            .encode(prompt.as_str(), false)
            .map_err(|e| bad(e.to_string()))?
            .get_ids()
            .to_vec();
        if ids.is_empty() {
            return Err(bad(format!("prompt {index} has no tokens")));
        }
        if ids.len() + req.max_tokens > context {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "prompt {index}: {} tokens + max_tokens {} exceed the context of {context}",
                    ids.len(),
                    req.max_tokens
                ),
            ));
        }
        let params = SamplingParams {
            max_new_tokens: req.max_tokens,
            temperature: req.temperature.unwrap_or(1.0),
            top_k: req.top_k,
            top_p: req.top_p,
            seed: req.seed.unwrap_or(0),
            stop: stop.clone(),
            eos: crate::generate::eos_ids(tok),
        };
        let gen = if req.max_tokens == 0 {
            None
        } else {
            Some(generate(&model, tok, &ids, &params).map_err(|e| bad(e.to_string()))?)
        };
        let (gen_tokens, gen_text, finish) = match &gen {
            Some(g) => (
                g.tokens.clone(),
                g.text.clone(),
                format!("{:?}", g.finish_reason).to_lowercase(),
            ),
            None => (vec![], String::new(), "length".to_string()),
        };
        prompt_tokens += ids.len();
        completion_tokens += gen_tokens.len();
        let text = if req.echo {
            format!("{prompt}{gen_text}")
        } else {
            gen_text
        };
        let logprobs = if req.logprobs.is_some() {
            let all: Vec<u32> = ids.iter().chain(&gen_tokens).copied().collect();
            let scores = scored(&model, &all, top)?;
            let from = if req.echo { 0 } else { ids.len() };
            let mut offset = if req.echo { 0 } else { prompt.len() };
            let (mut tokens, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
            for (i, (lp, t)) in scores.into_iter().enumerate().skip(from) {
                let s = token_text(tok, all[i]);
                offsets.push(offset);
                offset += s.len();
                tokens.push(s);
                lps.push(lp.map_or(Value::Null, |v| json!(v)));
                tops.push(if i == 0 {
                    Value::Null
                } else {
                    Value::Object(
                        t.into_iter()
                            .map(|(id, v)| (token_text(tok, id), json!(v)))
                            .collect(),
                    )
                });
            }
            json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
        } else {
            Value::Null
        };
        choices.push(
            json!({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}),
        );
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(json!({
        "id": format!("cmpl-{created}"),
        "object": "text_completion",
        "created": created,
        "model": req.model.clone().unwrap_or_else(|| state.model_name.clone()),
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }))
}
