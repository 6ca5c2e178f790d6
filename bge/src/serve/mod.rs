//! `bge serve`: a text-embeddings-inference-compatible HTTP API — `/embed`, `/embed_all`,
//! `/embed_sparse` and `/embed_colbert` (bge-m3's heads), `/rerank` (cross-encoders),
//! `/v1/embeddings` (OpenAI's layout), `/tokenize`, `/info`, `/health`, Prometheus
//! `/metrics` — split as TEI is: the router (`api.rs`) validates and tokenises, the backend
//! thread (`backend.rs`) batches requests by a token budget and runs the model. Errors are
//! JSON (`{"error", "error_type"}`): 413 for too many or too long inputs (unless truncation
//! is asked for), 422 for malformed bodies, 401 without the API key when one is set.

mod api;
pub mod backend;
mod metrics;

pub use backend::Model;

use crate::{Encoder, Error};
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The server's limits and switches: `bge serve`'s flags (TEI's names, `BGE_` variables), so
/// the library's defaults and the command's are one list.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// The name `/info` reports (the command puts the model folder there).
    #[arg(skip = String::from("bge"))]
    pub model_id: String,
    /// Tokens per forward pass across requests (TEI's `--max-batch-tokens`).
    #[arg(long, env = "BGE_MAX_BATCH_TOKENS", default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Inputs per request (TEI's `--max-client-batch-size`).
    #[arg(long, env = "BGE_MAX_CLIENT_BATCH_SIZE", default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Request body bytes (TEI's `--payload-limit`).
    #[arg(long, env = "BGE_PAYLOAD_LIMIT", default_value_t = 2_000_000)]
    pub payload_limit: usize,
    /// Cut over-long inputs instead of answering 413.
    #[arg(long, env = "BGE_AUTO_TRUNCATE")]
    pub auto_truncate: bool,
    /// Bearer token required on every route but `/health` when set
    /// (`Authorization: Bearer KEY`).
    #[arg(long, env = "BGE_API_KEY")]
    pub api_key: Option<String>,
}

impl Default for Options {
    /// The flags' defaults (environment variables not read).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            opts: Options,
        }
        let cmd = <Flags as clap::CommandFactory>::command();
        // No argument and no `env` lookups: each flag's default_value.
        let cmd = cmd.mut_args(|a| a.env(None::<&str>));
        let m = cmd
            .try_get_matches_from(["bge"])
            .expect("every flag has a default");
        <Flags as clap::FromArgMatches>::from_arg_matches(&m)
            .expect("the defaults parse")
            .opts
    }
}

/// What the router knows of the model it fronts.
#[derive(Debug)]
enum Kind {
    Embedding {
        pooling: &'static str,
        dim: i64,
        m3: bool,
    },
    Reranker,
}

struct AppState {
    opts: Options,
    tokenizer: tokenizers::Tokenizer,
    max_length: usize,
    kind: Kind,
    queue: std::sync::mpsc::Sender<backend::Job>,
    metrics: Arc<metrics::Metrics>,
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
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
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

    /// Sends tokenised inputs to the backend and waits for the output.
    async fn run(
        &self,
        task: backend::Task,
        ids: Vec<Vec<u32>>,
        types: Vec<Vec<u32>>,
    ) -> Result<backend::Output, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let n = ids.len() as u64;
        let gone = || {
            self.fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Backend",
                "the model thread is gone",
            )
        };
        self.queue
            .send(backend::Job {
                task,
                ids,
                types,
                reply: tx,
            })
            .map_err(|_| gone())?;
        let out = rx
            .await
            .map_err(|_| gone())?
            .map_err(|e| self.fail(StatusCode::INTERNAL_SERVER_ERROR, "Backend", e))?;
        self.metrics.inputs.fetch_add(n, Ordering::Relaxed);
        self.metrics
            .tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Refuses a route the model does not serve (404, as TEI answers).
    fn require(&self, ok: bool, what: &str) -> Result<(), ApiError> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("this model does not serve {what}"),
            ))
        }
    }
}

impl From<Encoder> for Model {
    fn from(encoder: Encoder) -> Self {
        Model::Embed { encoder, m3: None }
    }
}

impl From<crate::rerank::Reranker> for Model {
    fn from(r: crate::rerank::Reranker) -> Self {
        Model::Rerank(r)
    }
}

/// Loads what a folder holds: a cross-encoder when config.json names a
/// `…ForSequenceClassification` architecture (pairs cut to `max_length`), else an embedding
/// model, with bge-m3's heads when `sparse_linear` (.safetensors or .pt) is beside it.
pub fn load_model(
    dir: &Path,
    max_length: usize,
    kind: tch::Kind,
    device: tch::Device,
) -> crate::Result<Model> {
    let config: Value = crate::error::read_json(&dir.join("config.json"))?;
    let classifier = config["architectures"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| {
            a.as_str()
                .is_some_and(|a| a.ends_with("ForSequenceClassification"))
        });
    if classifier {
        return Ok(Model::Rerank(crate::rerank::Reranker::load(
            dir, max_length, kind, device,
        )?));
    }
    let encoder = Encoder::load(dir, kind, device)?;
    let m3 = if ["sparse_linear.safetensors", "sparse_linear.pt"]
        .iter()
        .any(|f| dir.join(f).is_file())
    {
        // Special tokens (CLS, EOS, PAD, UNK) never carry lexical weight.
        let special: Vec<u32> = encoder
            .tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect();
        if special.is_empty() {
            return Err(Error::File {
                path: dir.join("tokenizer.json"),
                message: "no special tokens to exclude from lexical weights".into(),
            });
        }
        Some(crate::m3::M3::load(dir, special, kind, device)?)
    } else {
        None
    };
    Ok(Model::Embed { encoder, m3 })
}

/// The router for `model`, which moves to its backend thread.
pub fn router(model: impl Into<Model>, opts: Options) -> axum::Router {
    let model = model.into();
    let (tokenizer, max_length, kind) = match &model {
        Model::Embed { encoder, m3 } => (
            encoder.tokenizer.clone(),
            encoder.max_length,
            Kind::Embedding {
                pooling: match encoder.head.pooling {
                    crate::pooling::Pooling::Cls => "cls",
                    crate::pooling::Pooling::Mean => "mean",
                },
                dim: encoder.bert.config.hidden_size as i64,
                m3: m3.is_some(),
            },
        ),
        Model::Rerank(r) => (r.tokenizer.clone(), r.max_length, Kind::Reranker),
    };
    let limit = opts.payload_limit;
    let metrics = Arc::new(metrics::Metrics::default());
    let seen = metrics.clone();
    let queue = backend::spawn(model, opts.max_batch_tokens, move |n| {
        seen.batch_size.observe(n as f64)
    });
    let state = Arc::new(AppState {
        opts,
        tokenizer,
        max_length,
        kind,
        queue,
        metrics,
    });
    axum::Router::new()
        .route("/embed", post(api::embed))
        .route("/embed_all", post(api::embed_all))
        .route("/embed_sparse", post(api::embed_sparse))
        .route("/embed_colbert", post(api::embed_colbert))
        .route("/rerank", post(api::rerank))
        .route("/v1/embeddings", post(api::openai))
        .route("/tokenize", post(api::tokenize))
        .route("/info", get(api::info))
        .route("/metrics", get(api::metrics))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "NotFound", "no such route") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    /// TEI's defaults: 16,384 tokens a batch, 32 inputs a request.
    #[test]
    fn default_options_are_the_flags_defaults() {
        let o = super::Options::default();
        let got = (
            o.model_id.as_str(),
            o.max_batch_tokens,
            o.max_client_batch_size,
            o.payload_limit,
            o.auto_truncate,
            o.api_key,
        );
        assert_eq!(got, ("bge", 16384, 32, 2_000_000, false, None));
    }
}
