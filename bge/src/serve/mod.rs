//! `bge serve`: a text-embeddings-inference-compatible HTTP API — `/embed`,
//! `/v1/embeddings` (OpenAI's layout), `/tokenize`, `/info`, `/health`, Prometheus
//! `/metrics` — split as TEI is: this router validates and tokenises, the backend thread
//! (`backend.rs`) batches requests by a token budget and runs the model. Errors are JSON
//! (`{"error", "error_type"}`): 413 for too many or too long inputs (unless truncation is
//! asked for), 422 for malformed bodies, 401 without the API key when one is set.

mod backend;

use crate::Encoder;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Options {
    pub model_id: String,
    /// Tokens per forward pass across requests (TEI's `--max-batch-tokens`).
    pub max_batch_tokens: usize,
    /// Inputs per request (TEI's `--max-client-batch-size`).
    pub max_client_batch_size: usize,
    /// Request body bytes (TEI's `--payload-limit`).
    pub payload_limit: usize,
    /// Cut over-long inputs instead of refusing them.
    pub auto_truncate: bool,
    /// Bearer token required on every route but `/health` when set.
    pub api_key: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model_id: "bge".into(),
            max_batch_tokens: 16384,
            max_client_batch_size: 32,
            payload_limit: 2_000_000,
            auto_truncate: false,
            api_key: None,
        }
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    inputs: AtomicU64,
    tokens: AtomicU64,
    errors: AtomicU64,
}

struct AppState {
    opts: Options,
    tokenizer: tokenizers::Tokenizer,
    max_length: usize,
    pooling: &'static str,
    dim: i64,
    queue: std::sync::mpsc::Sender<backend::Job>,
    counters: Counters,
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": message.into(), "error_type": kind})),
    )
        .into_response()
}

/// A refused request: its status and the JSON error it gets.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

type Reply = Result<Response, ApiError>;

impl AppState {
    fn fail(&self, status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        ApiError(status, kind, message.into())
    }

    fn authorise(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(key) = &self.opts.api_key else {
            return Ok(());
        };
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given == Some(key.as_str()) {
            Ok(())
        } else {
            Err(self.fail(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "a valid bearer token is required",
            ))
        }
    }

    fn parse(&self, body: &Bytes) -> Result<Value, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            self.fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation",
                format!("malformed JSON: {e}"),
            )
        })
    }

    /// The inputs of `key`: one string or a list of strings, 1 to max_client_batch_size.
    fn inputs(&self, v: &Value, key: &str) -> Result<Vec<String>, ApiError> {
        let bad = |m: String| self.fail(StatusCode::UNPROCESSABLE_ENTITY, "Validation", m);
        let list = match &v[key] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("`{key}` must be a string or a list of strings")))?,
            _ => {
                return Err(bad(format!(
                    "`{key}` must be a string or a list of strings"
                )))
            }
        };
        if list.is_empty() {
            return Err(bad(format!("`{key}` is empty")));
        }
        if list.len() > self.opts.max_client_batch_size {
            return Err(self.fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Validation",
                format!(
                    "{} inputs; at most {} per request",
                    list.len(),
                    self.opts.max_client_batch_size
                ),
            ));
        }
        Ok(list)
    }

    fn tokenize(&self, texts: &[String], truncate: bool) -> Result<Vec<Vec<u32>>, ApiError> {
        let mut out = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let (ids, cut) = crate::encoder::tokenize_checked(&self.tokenizer, t).map_err(|e| {
                self.fail(StatusCode::UNPROCESSABLE_ENTITY, "Tokenizer", e.to_string())
            })?;
            if cut && !(truncate || self.opts.auto_truncate) {
                return Err(self.fail(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Validation",
                    format!(
                        "input {i} is longer than {} tokens (send `truncate: true` or start the server with --auto-truncate)",
                        self.max_length
                    ),
                ));
            }
            out.push(ids);
        }
        Ok(out)
    }

    async fn embed_ids(
        &self,
        ids: Vec<Vec<u32>>,
        normalize: bool,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let n = ids.len() as u64;
        self.queue
            .send(backend::Job {
                ids,
                normalize,
                reply: tx,
            })
            .map_err(|_| {
                self.fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Backend",
                    "the model thread is gone",
                )
            })?;
        let out = rx
            .await
            .map_err(|_| {
                self.fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Backend",
                    "the model thread is gone",
                )
            })?
            .map_err(|e| self.fail(StatusCode::INTERNAL_SERVER_ERROR, "Backend", e))?;
        self.counters.inputs.fetch_add(n, Ordering::Relaxed);
        self.counters
            .tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
        Ok(out)
    }
}

async fn embed(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let r: Reply = async {
        s.counters.requests.fetch_add(1, Ordering::Relaxed);
        s.authorise(&headers)?;
        let v = s.parse(&body)?;
        let texts = s.inputs(&v, "inputs")?;
        let normalize = v["normalize"].as_bool().unwrap_or(true);
        let truncate = v["truncate"].as_bool().unwrap_or(false);
        let ids = s.tokenize(&texts, truncate)?;
        Ok(Json(s.embed_ids(ids, normalize).await?).into_response())
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn openai(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let r: Reply = async {
        s.counters.requests.fetch_add(1, Ordering::Relaxed);
        s.authorise(&headers)?;
        let v = s.parse(&body)?;
        let texts = s.inputs(&v, "input")?;
        let ids = s.tokenize(&texts, true)?;
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let emb = s.embed_ids(ids, true).await?;
        let data: Vec<Value> = emb
            .into_iter()
            .enumerate()
            .map(|(i, e)| json!({"object": "embedding", "embedding": e, "index": i}))
            .collect();
        Ok(Json(
            json!({"object": "list", "data": data, "model": s.opts.model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
        )
        .into_response())
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn tokenize(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let r: Reply = async {
        s.authorise(&headers)?;
        let v = s.parse(&body)?;
        let texts = s.inputs(&v, "inputs")?;
        let special = v["add_special_tokens"].as_bool().unwrap_or(true);
        let mut out = Vec::new();
        for t in &texts {
            let e = s.tokenizer.encode(t.as_str(), special).map_err(|e| {
                s.fail(StatusCode::UNPROCESSABLE_ENTITY, "Tokenizer", e.to_string())
            })?;
            let toks: Vec<Value> = (0..e.len())
                .map(|i| {
                    let (a, b) = e.get_offsets()[i];
                    json!({"id": e.get_ids()[i], "text": e.get_tokens()[i],
                        "special": e.get_special_tokens_mask()[i] == 1,
                        "start": a, "stop": b})
                })
                .collect();
            out.push(Value::Array(toks));
        }
        Ok(Json(out).into_response())
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn info(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = s.authorise(&headers) {
        return r.into_response();
    }
    Json(json!({
        "model_id": s.opts.model_id,
        "model_type": {"embedding": {"pooling": s.pooling}},
        "embedding_dimension": s.dim,
        "max_input_length": s.max_length,
        "max_batch_tokens": s.opts.max_batch_tokens,
        "max_client_batch_size": s.opts.max_client_batch_size,
        "auto_truncate": s.opts.auto_truncate,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn metrics(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = s.authorise(&headers) {
        return r.into_response();
    }
    let c = &s.counters;
    let mut text = String::new();
    for (name, help, v) in [
        (
            "bge_requests_total",
            "Embedding requests received.",
            &c.requests,
        ),
        ("bge_inputs_total", "Texts embedded.", &c.inputs),
        ("bge_tokens_total", "Tokens embedded.", &c.tokens),
        (
            "bge_errors_total",
            "Requests answered with an error.",
            &c.errors,
        ),
    ] {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(Ordering::Relaxed)
        ));
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// The router for `encoder`; the model moves to its backend thread.
pub fn router(encoder: Encoder, opts: Options) -> axum::Router {
    let tokenizer = encoder.tokenizer.clone();
    let max_length = encoder.max_length;
    let pooling = match encoder.head.pooling {
        crate::pooling::Pooling::Cls => "cls",
        crate::pooling::Pooling::Mean => "mean",
    };
    let dim = encoder.bert.config.hidden_size as i64;
    let limit = opts.payload_limit;
    let queue = backend::spawn(encoder, opts.max_batch_tokens);
    let state = Arc::new(AppState {
        opts,
        tokenizer,
        max_length,
        pooling,
        dim,
        queue,
        counters: Counters::default(),
    });
    axum::Router::new()
        .route("/embed", post(embed))
        .route("/v1/embeddings", post(openai))
        .route("/tokenize", post(tokenize))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "NotFound", "no such route") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
