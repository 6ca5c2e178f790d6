//! `/v1/chat/completions`: the conversation becomes a prompt through the model's own chat
//! template, then generation as for completions, answered as a `chat.completion` (or streamed
//! as `chat.completion.chunk`s).

use super::completions::{bad, prompt_ids, run_generation, sampling, stop_list, Failure};
use super::AppState;
use crate::generate::SamplingParams;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Value>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
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
    pub stream: bool,
    #[serde(default)]
    pub logprobs: bool,
}

/// The prompt's ids and the sampling settings of a chat request.
pub fn prepare(state: &AppState, req: &ChatRequest) -> Result<(Vec<u32>, SamplingParams), Failure> {
    let template = state.chat_template.as_ref().ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            "this model has no chat template (tokenizer_config.json `chat_template` or GGUF `tokenizer.chat_template`); use /v1/completions".to_string(),
        )
    })?;
    if req.logprobs {
        return Err(bad(
            "`logprobs` is not supported for chat; use /v1/completions",
        ));
    }
    if req.messages.is_empty()
        || req
            .messages
            .iter()
            .any(|m| !m["role"].is_string() || !(m["content"].is_string()))
    {
        return Err(bad(
            "`messages` must be a non-empty list of {\"role\": string, \"content\": string}",
        ));
    }
    let prompt = template.render(&req.messages, true).map_err(bad)?;
    let default_max = state.context.saturating_sub(1).min(256);
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(default_max);
    let ids = prompt_ids(state, &prompt, max_tokens, "the conversation")?;
    let params = sampling(
        state,
        max_tokens,
        req.temperature,
        req.top_k,
        req.top_p,
        req.seed,
        stop_list(&req.stop)?,
    );
    Ok((ids, params))
}

/// Seconds since the epoch, OpenAI's `created`.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a chat request (not streamed) before `deadline`.
pub fn chat(state: &AppState, req: &ChatRequest, deadline: Instant) -> Result<Value, Failure> {
    let (ids, params) = prepare(state, req)?;
    let g = run_generation(state, &ids, &params, deadline, Box::new(|_| true))?;
    let created = now();
    Ok(json!({
        "id": format!("chatcmpl-{created}"),
        "object": "chat.completion",
        "created": created,
        "model": req.model.clone().unwrap_or_else(|| state.model_name.clone()),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": g.text},
            "finish_reason": g.finish_reason.as_openai(),
        }],
        "usage": {"prompt_tokens": ids.len(), "completion_tokens": g.tokens.len(), "total_tokens": ids.len() + g.tokens.len()},
    }))
}

/// The JSON of one streamed chunk.
pub fn chunk(model: &str, created: u64, piece: &str, finish: Option<&str>) -> Value {
    let delta = if finish.is_some() {
        json!({})
    } else {
        json!({"role": "assistant", "content": piece})
    };
    json!({
        "id": format!("chatcmpl-{created}"),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}
