//! An OpenAI-compatible server over a loaded model: `/v1/completions` (with `echo` and
//! `logprobs`, which evaluation harnesses such as lm-eval's `local-completions` score
//! multiple-choice questions with), `/v1/chat/completions` (the model's chat template),
//! server-sent-event streaming, `/tokenize` and `/health`. Bearer-token auth when a key is
//! set; request bodies are size-limited; requests time out; requests that arrive together
//! are scored, and generate, as padded batches.

mod chat;
mod chat_template;
mod completions;
mod generation;
mod score;
mod stream;

use crate::model::Llama;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use chat::ChatRequest;
pub use chat_template::ChatTemplate;
pub use completions::{complete, CompletionRequest};

/// What handlers share: the model (one forward at a time) and its tokenizer.
pub struct AppState {
    pub model: Mutex<Llama>,
    pub tokenizer: tokenizers::Tokenizer,
    pub model_name: String,
    pub api_key: Option<String>,
    pub chat_template: Option<ChatTemplate>,
    /// The longest a request may take, waiting for the model included.
    pub timeout: Duration,
    /// The model's context (prompt + completion tokens).
    pub context: usize,
    pub vocab_size: usize,
    score_queue: Mutex<Vec<score::ScoreJob>>,
    gen_queue: Mutex<Vec<generation::GenJob>>,
    pub metrics: Metrics,
}

/// Counters served at `/metrics` in Prometheus' text format.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub generation_batches: AtomicU64,
    pub generation_rows: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub scoring_batches: AtomicU64,
    pub scoring_rows: AtomicU64,
    pub scored_tokens: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn render(&self) -> String {
        let rows = [
            (
                "flagscale_requests_total",
                "Requests answered.",
                &self.requests,
            ),
            (
                "flagscale_request_errors_total",
                "Requests answered with an error.",
                &self.errors,
            ),
            (
                "flagscale_generation_batches_total",
                "Batches decoded.",
                &self.generation_batches,
            ),
            (
                "flagscale_generation_rows_total",
                "Sequences decoded (rows of all batches).",
                &self.generation_rows,
            ),
            (
                "flagscale_generated_tokens_total",
                "Tokens generated.",
                &self.generated_tokens,
            ),
            (
                "flagscale_scoring_batches_total",
                "Scoring forward passes.",
                &self.scoring_batches,
            ),
            (
                "flagscale_scoring_rows_total",
                "Texts scored (rows of all passes).",
                &self.scoring_rows,
            ),
            (
                "flagscale_scored_tokens_total",
                "Tokens scored.",
                &self.scored_tokens,
            ),
        ];
        rows.iter()
            .map(|(name, help, c)| {
                format!(
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                    c.load(Ordering::Relaxed)
                )
            })
            .collect()
    }
}

impl AppState {
    /// A state without auth, chat template or timeout beyond ten minutes; set the public
    /// fields to change that.
    pub fn new(model: Llama, tokenizer: tokenizers::Tokenizer, model_name: &str) -> Self {
        AppState {
            context: model.config.max_position_embeddings,
            vocab_size: model.config.vocab_size,
            model: Mutex::new(model),
            tokenizer,
            model_name: model_name.into(),
            api_key: None,
            chat_template: None,
            timeout: Duration::from_secs(600),
            score_queue: Mutex::new(Vec::new()),
            gen_queue: Mutex::new(Vec::new()),
            metrics: Metrics::default(),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("model_name", &self.model_name)
            .finish()
    }
}

/// An OpenAI-style error body with a status.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body =
        serde_json::json!({"error": {"message": message.into(), "type": "invalid_request_error"}});
    (status, Json(body)).into_response()
}

async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(req).await
}

async fn health() -> &'static str {
    "ok"
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts requests and error answers.
async fn count(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    Metrics::add(&state.metrics.requests, 1);
    if resp.status().is_client_error() || resp.status().is_server_error() {
        Metrics::add(&state.metrics.errors, 1);
    }
    resp
}

async fn tokenize(
    State(state): State<Arc<AppState>>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let Some(text) = body
        .get("prompt")
        .or_else(|| body.get("text"))
        .and_then(|v| v.as_str())
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected {\"prompt\": text}",
        );
    };
    match state.tokenizer.encode(text, false) {
        Ok(enc) => {
            Json(serde_json::json!({"tokens": enc.get_ids(), "count": enc.len()})).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// Runs `work` on a blocking thread, answering 504 if it outlives the request timeout.
async fn blocking<F>(state: &Arc<AppState>, work: F) -> Response
where
    F: FnOnce(&AppState, Instant) -> Result<serde_json::Value, completions::Failure>
        + Send
        + 'static,
{
    let deadline = Instant::now() + state.timeout;
    let s = state.clone();
    let task = tokio::task::spawn_blocking(move || work(&s, deadline));
    // A little grace: the work itself stops at the deadline and says so.
    match tokio::time::timeout(state.timeout + Duration::from_secs(1), task).await {
        Ok(Ok(Ok(body))) => Json(body).into_response(),
        Ok(Ok(Err((status, message)))) => error(status, message),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::GATEWAY_TIMEOUT, "the request timed out"),
    }
}

/// Answers a streamed request: `prepared` holds its ids and settings (or the error to send),
/// `chunk(model, created, piece, finish)` shapes each event.
fn stream_answer(
    state: Arc<AppState>,
    prepared: Result<(Vec<u32>, crate::generate::SamplingParams), completions::Failure>,
    model: Option<String>,
    chunk: fn(&str, u64, &str, Option<&str>) -> serde_json::Value,
) -> Response {
    let (ids, params) = match prepared {
        Ok(p) => p,
        Err((status, m)) => return error(status, m),
    };
    let model = model.unwrap_or_else(|| state.model_name.clone());
    let created = chat::now();
    let deadline = Instant::now() + state.timeout;
    stream::respond(state, ids, params, deadline, move |piece, finish| {
        chunk(&model, created, piece, finish)
    })
}

async fn completions(
    State(state): State<Arc<AppState>>,
    Json(req): Json<CompletionRequest>,
) -> Response {
    if req.stream {
        let prepared = completions::prepare_stream(&state, &req);
        return stream_answer(state, prepared, req.model.clone(), completions::chunk);
    }
    blocking(&state, move |s, deadline| complete(s, &req, deadline)).await
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ChatRequest>,
) -> Response {
    if req.stream {
        let prepared = chat::prepare(&state, &req);
        return stream_answer(state, prepared, req.model.clone(), chat::chunk);
    }
    blocking(&state, move |s, deadline| chat::chat(s, &req, deadline)).await
}

/// The router; `max_body` bounds request bodies (413 above it).
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/tokenize", post(tokenize))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
