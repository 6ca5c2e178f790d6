//! The routes: each validates its JSON body, tokenises in the request's task, hands the ids
//! to the backend and shapes the answer as text-embeddings-inference does.

use super::backend::{Output, Task};
use super::{ApiError, AppState, Kind, Reply};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Runs a model route: counts it, checks the key, parses the body, times the answer.
async fn model_route<F, Fut>(
    s: Arc<AppState>,
    route: &'static str,
    headers: HeaderMap,
    body: Bytes,
    f: F,
) -> Response
where
    F: FnOnce(Arc<AppState>, Value) -> Fut,
    Fut: Future<Output = Reply>,
{
    let start = std::time::Instant::now();
    s.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let r: Reply = async {
        s.authorise(&headers)?;
        let v = s.parse(&body)?;
        f(s.clone(), v).await
    }
    .await;
    s.metrics
        .observe_request(route, start.elapsed().as_secs_f64());
    r.unwrap_or_else(IntoResponse::into_response)
}

fn unexpected(s: &AppState) -> ApiError {
    s.fail(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Backend",
        "the backend answered another kind of output",
    )
}

fn embedding(s: &AppState, m3: bool) -> Result<(), ApiError> {
    let ok = matches!(s.kind, Kind::Embedding { m3: has, .. } if has || !m3);
    s.require(
        ok,
        if m3 {
            "bge-m3 sparse or ColBERT outputs"
        } else {
            "embeddings"
        },
    )
}

/// The `inputs` of an embedding route, tokenised (cut only when asked to).
fn embedding_inputs(s: &AppState, v: &Value, m3: bool) -> Result<Vec<Vec<u32>>, ApiError> {
    embedding(s, m3)?;
    let texts = s.inputs(v, "inputs")?;
    s.tokenize(&texts, v["truncate"].as_bool().unwrap_or(false))
}

pub async fn embed(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    model_route(s, "/embed", headers, body, |s, v| async move {
        let ids = embedding_inputs(&s, &v, false)?;
        let normalize = v["normalize"].as_bool().unwrap_or(true);
        match s.run(Task::Embed { normalize }, ids, Vec::new()).await? {
            Output::Vectors(e) => Ok(Json(e).into_response()),
            _ => Err(unexpected(&s)),
        }
    })
    .await
}

pub async fn embed_all(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    model_route(s, "/embed_all", headers, body, |s, v| async move {
        let ids = embedding_inputs(&s, &v, false)?;
        match s.run(Task::All, ids, Vec::new()).await? {
            Output::Tokens(t) => Ok(Json(t).into_response()),
            _ => Err(unexpected(&s)),
        }
    })
    .await
}

pub async fn embed_sparse(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    model_route(s, "/embed_sparse", headers, body, |s, v| async move {
        let ids = embedding_inputs(&s, &v, true)?;
        match s.run(Task::Sparse, ids, Vec::new()).await? {
            Output::Sparse(rows) => Ok(Json(
                rows.into_iter()
                    .map(|r| {
                        r.into_iter()
                            .map(|(i, w)| json!({"index": i, "value": w}))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>(),
            )
            .into_response()),
            _ => Err(unexpected(&s)),
        }
    })
    .await
}

pub async fn embed_colbert(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    model_route(s, "/embed_colbert", headers, body, |s, v| async move {
        let ids = embedding_inputs(&s, &v, true)?;
        match s.run(Task::Colbert, ids, Vec::new()).await? {
            Output::Tokens(t) => Ok(Json(t).into_response()),
            _ => Err(unexpected(&s)),
        }
    })
    .await
}

/// TEI's `/rerank`: {query, texts, raw_scores?, return_text?, truncate?} → [{index, score,
/// text?}] best first.
pub async fn rerank(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    model_route(s, "/rerank", headers, body, |s, v| async move {
        s.require(matches!(s.kind, Kind::Reranker), "reranking")?;
        let query = v["query"].as_str().ok_or_else(|| {
            s.fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation",
                "`query` must be a string",
            )
        })?;
        let texts = s.inputs(&v, "texts")?;
        let truncate = v["truncate"].as_bool().unwrap_or(false) || s.opts.auto_truncate;
        let (mut ids, mut types) = (Vec::new(), Vec::new());
        for (i, t) in texts.iter().enumerate() {
            let (pair_ids, pair_types, cut) = crate::rerank::tokenize_pair(&s.tokenizer, query, t)
                .map_err(|e| {
                    s.fail(StatusCode::UNPROCESSABLE_ENTITY, "Tokenizer", e.to_string())
                })?;
            if cut && !truncate {
                return Err(s.fail(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Validation",
                    format!(
                        "the query with text {i} is longer than {} tokens (send `truncate: true`)",
                        s.max_length
                    ),
                ));
            }
            ids.push(pair_ids);
            types.push(pair_types);
        }
        let raw = v["raw_scores"].as_bool().unwrap_or(false);
        let Output::Scores(scores) = s.run(Task::Rerank { raw }, ids, types).await? else {
            return Err(unexpected(&s));
        };
        let with_text = v["return_text"].as_bool().unwrap_or(false);
        let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let out: Vec<Value> = ranked
            .into_iter()
            .map(|(i, sc)| {
                let mut o = json!({"index": i, "score": sc});
                if with_text {
                    o["text"] = json!(texts[i]);
                }
                o
            })
            .collect();
        Ok(Json(out).into_response())
    })
    .await
}

pub async fn openai(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    model_route(s, "/v1/embeddings", headers, body, |s, v| async move {
        embedding(&s, false)?;
        let texts = s.inputs(&v, "input")?;
        let ids = s.tokenize(&texts, true)?;
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let Output::Vectors(emb) = s
            .run(Task::Embed { normalize: true }, ids, Vec::new())
            .await?
        else {
            return Err(unexpected(&s));
        };
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
    })
    .await
}

pub async fn tokenize(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
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

pub async fn info(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = s.authorise(&headers) {
        return r.into_response();
    }
    let (model_type, dim) = match &s.kind {
        Kind::Embedding { pooling, dim, .. } => {
            (json!({"embedding": {"pooling": pooling}}), json!(dim))
        }
        Kind::Reranker => (
            json!({"reranker": {"id2label": {"0": "LABEL_0"}}}),
            Value::Null,
        ),
    };
    let m3 = matches!(s.kind, Kind::Embedding { m3: true, .. });
    Json(json!({
        "model_id": s.opts.model_id,
        "model_type": model_type,
        "embedding_dimension": dim,
        "sparse_and_colbert": m3,
        "max_input_length": s.max_length,
        "max_batch_tokens": s.opts.max_batch_tokens,
        "max_client_batch_size": s.opts.max_client_batch_size,
        "auto_truncate": s.opts.auto_truncate,
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

pub async fn metrics(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = s.authorise(&headers) {
        return r.into_response();
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
