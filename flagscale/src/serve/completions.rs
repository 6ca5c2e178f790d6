//! `/v1/completions` in OpenAI's layout. With `echo`, the prompt's tokens come back with their
//! log-probabilities (null for the first), then the completion's; `logprobs: n` adds the n most
//! likely tokens at each position. Scoring goes through the batching queue of `score.rs`;
//! generation holds the model for one request at a time and stops at the request deadline.

use super::generation::GenError;
use super::score::{score, Scored};
use super::AppState;
use crate::generate::SamplingParams;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

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
    #[serde(default)]
    pub stream: bool,
}

fn sixteen() -> usize {
    16
}

pub type Failure = (StatusCode, String);

pub fn bad(m: impl Into<String>) -> Failure {
    (StatusCode::UNPROCESSABLE_ENTITY, m.into())
}

fn timed_out(state: &AppState) -> Failure {
    (
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "the request ran past the server's timeout of {} s",
            state.timeout.as_secs_f64()
        ),
    )
}

/// `stop` as OpenAI allows it: absent, a string or a list of strings.
pub fn stop_list(stop: &Option<Value>) -> Result<Vec<String>, Failure> {
    Ok(match stop {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(_) => return Err(bad("`stop` must be a string or a list of strings")),
    })
}

/// Sampling settings from an OpenAI request's fields (temperature 1 unless given, as OpenAI).
pub fn sampling(
    state: &AppState,
    max_tokens: usize,
    temperature: Option<f64>,
    top_k: Option<usize>,
    top_p: Option<f64>,
    seed: Option<u64>,
    stop: Vec<String>,
) -> SamplingParams {
    SamplingParams {
        max_new_tokens: max_tokens,
        temperature: temperature.unwrap_or(1.0),
        top_k,
        top_p,
        seed: seed.unwrap_or(0),
        stop,
        eos: crate::generate::eos_ids(&state.tokenizer),
    }
}

/// The prompt's ids and sampling settings of a streamed completion: one string prompt,
/// without echo or logprobs.
pub fn prepare_stream(
    state: &AppState,
    req: &CompletionRequest,
) -> Result<(Vec<u32>, SamplingParams), Failure> {
    let Value::String(prompt) = &req.prompt else {
        return Err(bad("streaming takes one string prompt"));
    };
    if req.echo || req.logprobs.is_some() {
        return Err(bad("streaming does not return echo or logprobs"));
    }
    let ids = prompt_ids(state, prompt, req.max_tokens, "the prompt")?;
    let params = sampling(
        state,
        req.max_tokens,
        req.temperature,
        req.top_k,
        req.top_p,
        req.seed,
        stop_list(&req.stop)?,
    );
    Ok((ids, params))
}

/// A prompt's text, and its ids when the request gave ids.
type Prompt = (String, Option<Vec<u32>>);

/// The prompts of a request with their token ids when given as ids: OpenAI allows a string,
/// a list of strings, a list of ids, or a list of lists of ids (what lm-eval sends by default).
fn prompts(state: &AppState, prompt: &Value) -> Result<Vec<Prompt>, Failure> {
    let as_ids = |v: &Value| -> Option<Vec<u32>> {
        v.as_array()?
            .iter()
            .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    };
    let texts_of = |lists: Vec<Vec<u32>>| -> Result<Vec<Prompt>, Failure> {
        lists
            .into_iter()
            .map(|ids| {
                let text = state
                    .tokenizer
                    .decode(&ids, false)
                    .map_err(|e| bad(e.to_string()))?;
                Ok((text, Some(ids)))
            })
            .collect()
    };
    match prompt {
        Value::String(s) => Ok(vec![(s.clone(), None)]),
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_string) => Ok(a
            .iter()
            .filter_map(|v| v.as_str().map(|s| (s.to_string(), None)))
            .collect()),
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_number) => {
            texts_of(vec![as_ids(prompt).ok_or_else(|| bad("token ids must be integers"))?])
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_array) => texts_of(
            a.iter()
                .map(|v| as_ids(v).ok_or_else(|| bad("token ids must be integers")))
                .collect::<Result<_, _>>()?,
        ),
        _ => Err(bad(
            "`prompt` must be a string, a list of strings, a list of token ids or a list of such lists",
        )),
    }
}

/// Checks given token ids against the vocabulary and the context.
fn fits(
    state: &AppState,
    ids: Vec<u32>,
    max_tokens: usize,
    which: &str,
) -> Result<Vec<u32>, Failure> {
    let vocab = state.vocab_size;
    if let Some(bad_id) = ids.iter().find(|&&t| t as usize >= vocab) {
        return Err(bad(format!(
            "{which}: token id {bad_id} is outside the vocabulary of {vocab}"
        )));
    }
    if ids.is_empty() {
        return Err(bad(format!("{which} has no tokens")));
    }
    if ids.len() + max_tokens > state.context {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{which}: {} tokens + max_tokens {max_tokens} exceed the context of {}",
                ids.len(),
                state.context
            ),
        ));
    }
    Ok(ids)
}

/// Tokens of `prompt`, checked against the context with room for `max_tokens` more.
pub fn prompt_ids(
    state: &AppState,
    prompt: &str,
    max_tokens: usize,
    which: &str,
) -> Result<Vec<u32>, Failure> {
    let ids = state
        .tokenizer
        .encode(prompt, false)
        .map_err(|e| bad(e.to_string()))?
        .get_ids()
        .to_vec();
    fits(state, ids, max_tokens, which)
}

/// Generates (batched with concurrent requests), stopping at `deadline`; `on_text` sees each
/// settled piece and may cancel by returning false.
pub fn run_generation(
    state: &AppState,
    ids: &[u32],
    params: &SamplingParams,
    deadline: Instant,
    on_text: Box<dyn FnMut(&str) -> bool + Send>,
) -> Result<crate::generate::Generation, Failure> {
    super::generation::generate(state, ids.to_vec(), params.clone(), deadline, on_text).map_err(
        |e| match e {
            GenError::Timeout => timed_out(state),
            GenError::Failed(m) => bad(m),
        },
    )
}

/// Where each of the prompt's `n` tokens starts, in characters, when encoding the prompt gives
/// those tokens back (not for prompts sent as token ids that re-encode differently).
fn prompt_char_offsets(tok: &tokenizers::Tokenizer, prompt: &str, n: usize) -> Option<Vec<usize>> {
    let enc = tok.encode(prompt, false).ok()?;
    if enc.len() != n {
        return None;
    }
    Some(
        enc.get_offsets()
            .iter()
            .map(|&(start, _)| {
                let mut b = start.min(prompt.len());
                while !prompt.is_char_boundary(b) {
                    b -= 1;
                }
                prompt[..b].chars().count()
            })
            .collect(),
    )
}

fn token_text(tok: &tokenizers::Tokenizer, id: u32) -> String {
    tok.decode(&[id], false).unwrap_or_default()
}

/// Runs one completion request (not streamed) before `deadline`.
pub fn complete(
    state: &AppState,
    req: &CompletionRequest,
    deadline: Instant,
) -> Result<Value, Failure> {
    let prompts = prompts(state, &req.prompt)?;
    let stop = stop_list(&req.stop)?;
    let top = req.logprobs.unwrap_or(0).min(20);
    let tok = &state.tokenizer;
    let mut runs = Vec::with_capacity(prompts.len());
    for (index, (prompt, given)) in prompts.iter().enumerate() {
        let which = format!("prompt {index}");
        let ids = match given {
            Some(ids) => fits(state, ids.clone(), req.max_tokens, &which)?,
            None => prompt_ids(state, prompt, req.max_tokens, &which)?,
        };
        let params = sampling(
            state,
            req.max_tokens,
            req.temperature,
            req.top_k,
            req.top_p,
            req.seed,
            stop.clone(),
        );
        let gen = if req.max_tokens == 0 {
            None
        } else {
            Some(run_generation(
                state,
                &ids,
                &params,
                deadline,
                Box::new(|_| true),
            )?)
        };
        runs.push((ids, gen));
    }
    // Every text of the request is scored in one go, so its prompts share batches.
    let scores: Vec<Vec<Scored>> = if req.logprobs.is_some() {
        if Instant::now() >= deadline {
            return Err(timed_out(state));
        }
        let all = runs
            .iter()
            .map(|(ids, g)| {
                let gen: &[u32] = g.as_ref().map_or(&[], |g| &g.tokens);
                ids.iter().chain(gen).copied().collect()
            })
            .collect();
        score(state, all, top).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?
    } else {
        vec![Vec::new(); runs.len()]
    };
    let mut choices = Vec::new();
    let (mut prompt_tokens, mut completion_tokens) = (0usize, 0usize);
    for (index, (((prompt, _), (ids, gen)), scores)) in
        prompts.iter().zip(runs).zip(scores).enumerate()
    {
        let (gen_tokens, gen_text, finish) = match gen {
            Some(g) => (g.tokens, g.text, g.finish_reason.as_openai()),
            None => (vec![], String::new(), "length"),
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
            let from = if req.echo { 0 } else { ids.len() };
            // Character offsets into the returned text, as OpenAI's clients index it: the
            // prompt's from the tokenizer's own spans, the completion's by decoded length.
            let prompt_chars = prompt.chars().count();
            let spans = prompt_char_offsets(tok, prompt, ids.len());
            let mut offset = if req.echo { 0 } else { prompt_chars };
            let (mut tokens, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
            for (i, (lp, t)) in scores.into_iter().enumerate().skip(from) {
                let s = token_text(tok, all[i]);
                if i == ids.len() {
                    offset = prompt_chars;
                }
                offsets.push(match spans.as_ref().filter(|_| i < ids.len()) {
                    Some(sp) => sp[i],
                    None => offset,
                });
                offset += s.chars().count();
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

/// The JSON of one streamed completion chunk.
pub fn chunk(model: &str, created: u64, piece: &str, finish: Option<&str>) -> Value {
    json!({
        "id": format!("cmpl-{created}"), "object": "text_completion", "created": created,
        "model": model,
        "choices": [{"index": 0, "text": piece, "logprobs": null, "finish_reason": finish}],
    })
}
