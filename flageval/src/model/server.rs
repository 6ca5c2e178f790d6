//! Any OpenAI-compatible server (`flagscale serve`, vLLM, ...) scored through `/v1/completions`
//! with `echo` and `logprobs`: the prompt is context + continuation, and the continuation's
//! tokens are found by the echoed `text_offset`s, so no local tokenizer is needed. A response
//! without log-probabilities is refused loudly (a harness that shrugs scores at chance).
//! Requests go out in lists of `batch` prompts from `concurrency` threads, retried with
//! exponential backoff.

use super::{Model, Request};
use crate::{Error, Result};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Server {
    /// The completions endpoint, e.g. `http://127.0.0.1:8000/v1/completions`.
    pub url: String,
    /// The `model` field sent.
    pub model: String,
    pub api_key: Option<String>,
    /// Prompts per request.
    pub batch: usize,
    /// Requests in flight.
    pub concurrency: usize,
    pub retries: usize,
    pub timeout: Duration,
}

impl Server {
    pub fn new(url: &str, model: &str) -> Self {
        Server {
            url: url.to_string(),
            model: model.to_string(),
            api_key: None,
            batch: 8,
            concurrency: 2,
            retries: 3,
            timeout: Duration::from_secs(600),
        }
    }

    fn post(&self, body: &Value) -> Result<Value> {
        let mut wait = Duration::from_millis(250);
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            let mut req = ureq::post(&self.url).timeout(self.timeout);
            if let Some(k) = &self.api_key {
                req = req.set("Authorization", &format!("Bearer {k}"));
            }
            match req.send_json(body) {
                Ok(resp) => {
                    return resp.into_json().map_err(|e| {
                        Error::Invalid(format!("{}: unreadable answer: {e}", self.url))
                    })
                }
                // A client error will not get better by asking again.
                Err(ureq::Error::Status(code, resp)) if (400..500).contains(&code) => {
                    let text = resp.into_string().unwrap_or_default();
                    return Err(Error::Invalid(format!("{}: HTTP {code}: {text}", self.url)));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Invalid(format!(
            "{}: no answer after {} attempts: {last}",
            self.url,
            self.retries + 1
        )))
    }

    /// Scores one list of requests with one HTTP request.
    fn score(&self, reqs: &[Request]) -> Result<Vec<(f64, bool)>> {
        let prompts: Vec<String> = reqs
            .iter()
            .map(|r| format!("{}{}", r.context, r.continuation))
            .collect();
        // One generated token, as lm-eval asks: some servers refuse `max_tokens: 0`; the
        // generated token lies past the continuation and is left out below.
        let body = json!({"model": self.model, "prompt": prompts, "max_tokens": 1,
            "echo": true, "logprobs": 1, "temperature": 0});
        let answer = self.post(&body)?;
        let refuse = |m: &str| {
            Error::Invalid(format!(
                "{}: {m} — scoring needs echo + logprobs; refusing to score at chance",
                self.url
            ))
        };
        let choices = answer["choices"]
            .as_array()
            .ok_or_else(|| refuse("no `choices`"))?;
        let mut out = vec![None; reqs.len()];
        for (n, c) in choices.iter().enumerate() {
            let i = c["index"].as_u64().map_or(n, |i| i as usize);
            let r = reqs
                .get(i)
                .ok_or_else(|| refuse("a choice index out of range"))?;
            let lp = &c["logprobs"];
            let (Some(offsets), Some(lps), Some(_)) = (
                lp["text_offset"].as_array(),
                lp["token_logprobs"].as_array(),
                lp["tokens"].as_array(),
            ) else {
                return Err(refuse("an answer without `logprobs`"));
            };
            let tops = lp["top_logprobs"].as_array();
            // Offsets count characters, as OpenAI's clients index text.
            let start = r.context.chars().count();
            let end = start + r.continuation.chars().count();
            let (mut sum, mut greedy, mut any) = (0.0, true, false);
            for (t, off) in offsets.iter().enumerate() {
                let off = off.as_u64().unwrap_or(0) as usize;
                if off < start || off >= end {
                    continue;
                }
                let v = lps[t]
                    .as_f64()
                    .ok_or_else(|| refuse("a continuation token without a log-probability"))?;
                sum += v;
                any = true;
                // Greedy: the token is its position's most likely one.
                if let Some(top) = tops.and_then(|all| all.get(t)).and_then(Value::as_object) {
                    let best = top
                        .values()
                        .filter_map(Value::as_f64)
                        .fold(f64::MIN, f64::max);
                    greedy &= v >= best - 1e-9;
                }
            }
            if !any {
                return Err(refuse("no token of the continuation was echoed"));
            }
            out[i] = Some((sum, greedy));
        }
        out.into_iter()
            .map(|a| a.ok_or_else(|| refuse("an answer missing for a prompt")))
            .collect()
    }
}

/// One chunk's answers, filled by whichever thread scored it.
type Slot = std::sync::Mutex<Option<Result<Vec<(f64, bool)>>>>;

impl Model for Server {
    fn name(&self) -> String {
        self.model.clone()
    }

    fn fingerprint(&self) -> String {
        format!("server:{}:{}", self.url, self.model)
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        let chunks: Vec<&[Request]> = requests.chunks(self.batch.max(1)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Slot> = chunks.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.concurrency.max(1).min(chunks.len().max(1)) {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(k) else { break };
                    let r = self.score(chunk);
                    let failed = r.is_err();
                    if let Ok(mut slot) = results[k].lock() {
                        *slot = Some(r);
                    }
                    if failed {
                        break;
                    }
                });
            }
        });
        let mut out = Vec::with_capacity(requests.len());
        for slot in results {
            match slot.into_inner().ok().flatten() {
                Some(r) => out.extend(r?),
                None => {
                    return Err(Error::Invalid(format!(
                        "{}: scoring stopped after an earlier failure",
                        self.url
                    )))
                }
            }
        }
        Ok(out)
    }
}
