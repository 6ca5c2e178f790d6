//! An OpenAI-compatible server over a loaded model: `/v1/completions` (with `echo` and
//! `logprobs`, which evaluation harnesses such as lm-eval's `local-completions` score
//! multiple-choice questions with), `/tokenize` and `/health`. Bearer-token auth when a key is
//! set; request bodies are size-limited; the model runs one request at a time.

mod completions;

use crate::model::Llama;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::{Arc, Mutex};

pub use completions::{complete, CompletionRequest};

/// What handlers share: the model (one forward at a time) and its tokenizer.
pub struct AppState {
    pub model: Mutex<Llama>,
    pub tokenizer: tokenizers::Tokenizer,
    pub model_name: String,
    pub api_key: Option<String>,
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

async fn completions(
    State(state): State<Arc<AppState>>,
    Json(req): Json<CompletionRequest>,
) -> Response {
    let state2 = state.clone();
    match tokio::task::spawn_blocking(move || complete(&state2, &req)).await {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The router; `max_body` bounds request bodies (413 above it).
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/tokenize", post(tokenize))
        .route("/v1/completions", post(completions))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
