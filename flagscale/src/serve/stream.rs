//! Server-sent events for `stream: true`: generation runs on a blocking thread and sends each
//! settled piece of text as an OpenAI chunk; `data: [DONE]` ends the stream. A client that
//! goes away closes the channel, which cancels the generation.

use super::completions::{run_generation, Failure};
use super::AppState;
use crate::generate::SamplingParams;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// Streams the generation after `ids`; `chunk(piece, finish_reason)` shapes each event's
/// JSON (finish_reason is `Some` on the last one, whose piece is empty).
pub fn respond(
    state: Arc<AppState>,
    ids: Vec<u32>,
    params: SamplingParams,
    deadline: Instant,
    chunk: impl Fn(&str, Option<&str>) -> Value + Send + Sync + 'static,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::task::spawn_blocking(move || {
        let chunk = std::sync::Arc::new(chunk);
        let (sink_tx, sink_chunk) = (tx.clone(), chunk.clone());
        // A closed channel (the client left) cancels the generation.
        let sink = Box::new(move |piece: &str| {
            let v = sink_chunk(piece, None);
            sink_tx
                .blocking_send(Ok(Event::default().data(v.to_string())))
                .is_ok()
        });
        let send = |v: Value| {
            tx.blocking_send(Ok(Event::default().data(v.to_string())))
                .is_ok()
        };
        let result: Result<_, Failure> = run_generation(&state, &ids, &params, deadline, sink);
        match result {
            Ok(g) => {
                send(chunk("", Some(g.finish_reason.as_openai())));
            }
            Err((_, message)) => {
                send(serde_json::json!({"error": {"message": message}}));
            }
        }
        let _ = tx.blocking_send(Ok(Event::default().data("[DONE]")));
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}
