//! Generation batched across concurrent requests: each request queues its prompt, and
//! whoever holds the model next decodes everything queued (up to a batch limit) together
//! (`generate::generate_batch`), so requests that arrive while a batch runs share the next.
//! Each row stops on its own at its request's deadline or when its client goes away.

use super::AppState;
use crate::generate::{generate_batch, BatchRequest, FinishReason, Generation, SamplingParams};
use std::sync::mpsc;
use std::time::Instant;

/// What a row of a batch ends with, when it does not end with text.
#[derive(Debug)]
pub enum GenError {
    Timeout,
    Failed(String),
}

type TextSink = Box<dyn FnMut(&str) -> bool + Send>;
/// A request's sink behind its deadline check, for the length of one batch.
type Sink<'a> = Box<dyn FnMut(&str) -> bool + 'a>;

pub struct GenJob {
    ids: Vec<u32>,
    params: SamplingParams,
    deadline: Instant,
    on_text: TextSink,
    reply: mpsc::Sender<Result<Generation, GenError>>,
}

impl std::fmt::Debug for GenJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenJob")
            .field("ids", &self.ids.len())
            .finish()
    }
}

/// Sequences decoded together at most.
const MAX_BATCH: usize = 16;

/// Generates after `ids`, batched with whatever else is queued; `on_text` sees each settled
/// piece and may cancel by returning false.
pub fn generate(
    state: &AppState,
    ids: Vec<u32>,
    params: SamplingParams,
    deadline: Instant,
    on_text: TextSink,
) -> Result<Generation, GenError> {
    let poisoned = |_| GenError::Failed("generation queue poisoned".into());
    let (reply, rx) = mpsc::channel();
    state.gen_queue.lock().map_err(poisoned)?.push(GenJob {
        ids,
        params,
        deadline,
        on_text,
        reply,
    });
    {
        let model = state
            .model
            .lock()
            .map_err(|_| GenError::Failed("model lock poisoned".into()))?;
        loop {
            let jobs: Vec<GenJob> = {
                let mut q = state.gen_queue.lock().map_err(poisoned)?;
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            if jobs.is_empty() {
                break;
            }
            let m = &state.metrics;
            super::Metrics::add(&m.generation_batches, 1);
            super::Metrics::add(&m.generation_rows, jobs.len() as u64);
            run(&model, state, jobs);
        }
    }
    rx.recv()
        .map_err(|_| GenError::Failed("generation was dropped".into()))?
}

fn run(model: &crate::model::Llama, state: &AppState, jobs: Vec<GenJob>) {
    let tok = &state.tokenizer;
    let now = Instant::now();
    let (live, late): (Vec<GenJob>, Vec<GenJob>) = jobs.into_iter().partition(|j| j.deadline > now);
    for j in late {
        let _ = j.reply.send(Err(GenError::Timeout));
    }
    if live.is_empty() {
        return;
    }
    let mut ids = Vec::new();
    let mut params = Vec::new();
    let mut sinks = Vec::new();
    let mut replies = Vec::new();
    for j in live {
        ids.push(j.ids);
        params.push(j.params);
        sinks.push((j.deadline, j.on_text, false));
        replies.push(j.reply);
    }
    let result = {
        let mut wrapped: Vec<Sink<'_>> = sinks
            .iter_mut()
            .map(|(deadline, sink, late)| {
                Box::new(move |piece: &str| {
                    *late = Instant::now() >= *deadline;
                    !*late && sink(piece)
                }) as Box<dyn FnMut(&str) -> bool>
            })
            .collect();
        let mut requests: Vec<BatchRequest<'_>> = ids
            .iter()
            .zip(&params)
            .zip(wrapped.iter_mut())
            .map(|((i, p), s)| BatchRequest {
                prompt: i,
                params: p,
                on_text: &mut **s,
            })
            .collect();
        generate_batch(model, tok, &mut requests)
    };
    match result {
        Ok(gens) => {
            let n: usize = gens.iter().map(|g| g.tokens.len()).sum();
            super::Metrics::add(&state.metrics.generated_tokens, n as u64);
            for ((g, reply), (_, _, late)) in gens.into_iter().zip(replies).zip(&sinks) {
                let out = if *late && g.finish_reason == FinishReason::Cancelled {
                    Err(GenError::Timeout)
                } else {
                    Ok(g)
                };
                let _ = reply.send(out);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(GenError::Failed(e.to_string())));
            }
        }
    }
}
