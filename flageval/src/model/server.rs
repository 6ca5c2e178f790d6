//! Any OpenAI-compatible server (`flagscale serve`, vLLM, ...) scored through `/v1/completions`
//! with `echo` and `logprobs`: the prompt is context + continuation, and the continuation's
//! tokens are found by the echoed `text_offset`s, so no local tokenizer is needed. A response
//! without log-probabilities is refused loudly (a harness that shrugs scores at chance).
//! Requests go out in lists of `batch` prompts from `concurrency` threads, retried with
//! exponential backoff.

use super::{cut_at_stops, GenRequest, Model, Request};
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
    /// Generate through `/v1/chat/completions` (instruction-tuned models behind a chat
    /// template) instead of `/v1/completions`.
    pub chat: bool,
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
            chat: false,
        }
    }

    fn post(&self, url: &str, body: &Value) -> Result<Value> {
        let mut wait = Duration::from_millis(250);
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            let mut req = ureq::post(url).timeout(self.timeout);
            if let Some(k) = &self.api_key {
                req = req.set("Authorization", &format!("Bearer {k}"));
            }
            match req.send_json(body) {
                Ok(resp) => {
                    return resp
                        .into_json()
                        .map_err(|e| Error::Invalid(format!("{url}: unreadable answer: {e}")))
                }
                // A client error will not get better by asking again.
                Err(ureq::Error::Status(code, resp)) if (400..500).contains(&code) => {
                    let text = resp.into_string().unwrap_or_default();
                    return Err(Error::Invalid(format!("{url}: HTTP {code}: {text}")));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Invalid(format!(
            "{url}: no answer after {} attempts: {last}",
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
        let answer = self.post(&self.url, &body)?;
        let refuse = |m: &str| self.refuse(m);
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
            let at = |t: usize| offsets.get(t).and_then(Value::as_u64).map(|o| o as usize);
            for t in 0..offsets.len() {
                let off = at(t).unwrap_or(0);
                // A token belongs to the continuation when any of its characters does (one
                // straddling the boundary counts, as lm-eval's token split counts it).
                let tok_end = at(t + 1).unwrap_or(usize::MAX);
                if off >= end || tok_end <= start {
                    continue;
                }
                let v = lps
                    .get(t)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| refuse("a continuation token without a log-probability"))?;
                sum += v;
                any = true;
                // Greedy: the token is its position's most likely one.
                // Without the top alternatives greediness is unknown: never claimed.
                match tops.and_then(|all| all.get(t)).and_then(Value::as_object) {
                    Some(top) => {
                        let best = top
                            .values()
                            .filter_map(Value::as_f64)
                            .fold(f64::MIN, f64::max);
                        greedy &= v >= best - 1e-9;
                    }
                    None => greedy = false,
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

impl Server {
    /// Sums the echoed log-probabilities of each whole text (the first token has none: a
    /// server is given no end-of-text token to start from).
    fn rolling(&self, texts: &[String]) -> Result<Vec<f64>> {
        let body = json!({"model": self.model, "prompt": texts, "max_tokens": 1,
            "echo": true, "logprobs": 1, "temperature": 0});
        let answer = self.post(&self.url, &body)?;
        let choices = answer["choices"]
            .as_array()
            .ok_or_else(|| self.refuse("no `choices`"))?;
        let mut out = vec![None; texts.len()];
        for (n, c) in choices.iter().enumerate() {
            let i = c["index"].as_u64().map_or(n, |i| i as usize);
            let text = texts
                .get(i)
                .ok_or_else(|| self.refuse("a choice index out of range"))?;
            let lp = &c["logprobs"];
            let (Some(offsets), Some(lps)) = (
                lp["text_offset"].as_array(),
                lp["token_logprobs"].as_array(),
            ) else {
                return Err(self.refuse("an answer without `logprobs`"));
            };
            let end = text.chars().count();
            let sum: f64 = offsets
                .iter()
                .zip(lps)
                .filter(|(off, _)| off.as_u64().is_some_and(|o| (o as usize) < end))
                .filter_map(|(_, l)| l.as_f64())
                .sum();
            out[i] = Some(sum);
        }
        out.into_iter()
            .map(|a| a.ok_or_else(|| self.refuse("an answer missing for a prompt")))
            .collect()
    }

    /// One generation, through `/v1/completions` or, with `chat`, `/v1/chat/completions`
    /// (the context as one user message).
    fn generate_one(&self, r: &GenRequest) -> Result<String> {
        let mut body = json!({"model": self.model, "max_tokens": r.max_gen_toks,
            "temperature": r.temperature, "seed": r.seed});
        let stops: Vec<&String> = r.until.iter().filter(|s| !s.is_empty()).take(4).collect();
        if !stops.is_empty() {
            body["stop"] = json!(stops);
        }
        let text = if self.chat {
            body["messages"] = json!([{"role": "user", "content": r.context}]);
            let url = self.chat_url();
            let answer = self.post(&url, &body)?;
            answer["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string)
        } else {
            body["prompt"] = json!(r.context);
            let answer = self.post(&self.url, &body)?;
            answer["choices"][0]["text"].as_str().map(str::to_string)
        };
        let text = text.ok_or_else(|| {
            Error::Invalid(format!("{}: an answer without generated text", self.url))
        })?;
        Ok(cut_at_stops(&text, &r.until))
    }

    fn chat_url(&self) -> String {
        match self.url.strip_suffix("/completions") {
            Some(base) if !base.ends_with("/chat") => format!("{base}/chat/completions"),
            _ => self.url.clone(),
        }
    }

    fn refuse(&self, m: &str) -> Error {
        Error::Invalid(format!(
            "{}: {m} — scoring needs echo + logprobs; refusing to score at chance",
            self.url
        ))
    }

    /// Runs `f` over chunks of `size` requests from `concurrency` threads; answers in order.
    /// A failed chunk stops the threads and is the error returned.
    fn parallel<Q: Sync, A: Send>(
        &self,
        requests: &[Q],
        size: usize,
        f: impl Fn(&[Q]) -> Result<Vec<A>> + Sync,
    ) -> Result<Vec<A>> {
        let chunks: Vec<&[Q]> = requests.chunks(size.max(1)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let results: Vec<std::sync::Mutex<Option<Result<Vec<A>>>>> =
            chunks.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.concurrency.max(1).min(chunks.len().max(1)) {
                s.spawn(|| loop {
                    if failed.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(k) else { break };
                    let r = f(chunk);
                    if r.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Ok(mut slot) = results[k].lock() {
                        *slot = Some(r);
                    }
                });
            }
        });
        let mut out = Vec::with_capacity(requests.len());
        let mut first_error = None;
        for slot in results {
            match slot.into_inner().ok().flatten() {
                Some(Ok(r)) if first_error.is_none() => out.extend(r),
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                _ => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if out.len() == requests.len() => Ok(out),
            None => Err(Error::Invalid(format!(
                "{}: answers went missing",
                self.url
            ))),
        }
    }
}

impl Model for Server {
    fn name(&self) -> String {
        self.model.clone()
    }

    fn fingerprint(&self) -> String {
        format!("server:{}:{}:chat={}", self.url, self.model, self.chat)
    }

    fn loglikelihood(&mut self, requests: &[Request]) -> Result<Vec<(f64, bool)>> {
        self.parallel(requests, self.batch, |c| self.score(c))
    }

    fn loglikelihood_rolling(&mut self, texts: &[String]) -> Result<Vec<f64>> {
        self.parallel(texts, self.batch, |c| self.rolling(c))
    }

    fn generate_until(&mut self, requests: &[GenRequest]) -> Result<Vec<String>> {
        self.parallel(requests, 1, |c| {
            c.iter().map(|r| self.generate_one(r)).collect()
        })
    }
}
