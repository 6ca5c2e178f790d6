//! `flageval serve`: the leaderboard of a results folder and a read-only JSON API. The folder
//! is scanned on each request (new results appear without a restart); a results file is
//! reachable only by the id the scan gave it, so no path from a request ever touches the
//! filesystem.
//!
//! Routes: `GET /` (the page), `GET /api/board` (columns, capabilities, rows),
//! `GET /api/results` (ids), `GET /api/results/{*id}` (one results file), `GET /health`.

use crate::leaderboard;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug)]
struct Folder {
    root: PathBuf,
    title: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Scans the folder off the async threads (it reads files).
async fn board(f: &Arc<Folder>) -> Result<leaderboard::Board, Box<Response>> {
    let f = Arc::clone(f);
    let fail = |m: String| Box::new(error(StatusCode::INTERNAL_SERVER_ERROR, m));
    tokio::task::spawn_blocking(move || {
        leaderboard::build(std::slice::from_ref(&f.root), Some(&f.root))
    })
    .await
    .map_err(|e| fail(e.to_string()))?
    .map_err(|e| fail(e.to_string()))
}

async fn page(State(f): State<Arc<Folder>>) -> Response {
    match board(&f).await {
        Ok(b) => Html(leaderboard::render(&b, &f.title)).into_response(),
        Err(r) => *r,
    }
}

async fn api_board(State(f): State<Arc<Folder>>) -> Response {
    match board(&f).await {
        Ok(b) => Json(b).into_response(),
        Err(r) => *r,
    }
}

async fn api_results(State(f): State<Arc<Folder>>) -> Response {
    match board(&f).await {
        Ok(b) => Json(
            b.entries
                .iter()
                .map(|e| json!({"id": e.id, "model": e.model, "board": e.board}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => *r,
    }
}

async fn api_result(State(f): State<Arc<Folder>>, UrlPath(id): UrlPath<String>) -> Response {
    let b = match board(&f).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(e) = b.entries.iter().find(|e| e.id == id) else {
        return error(StatusCode::NOT_FOUND, format!("no results with id `{id}`"));
    };
    match std::fs::read_to_string(&e.path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("results `{id}` became unreadable"),
        ),
    }
}

/// The router for a results folder.
pub fn router(root: PathBuf, title: &str) -> axum::Router {
    let state = Arc::new(Folder {
        root,
        title: title.to_string(),
    });
    axum::Router::new()
        .route("/", get(page))
        .route("/api/board", get(api_board))
        .route("/api/results", get(api_results))
        .route("/api/results/{*id}", get(api_result))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route".into()) })
        .with_state(state)
}
