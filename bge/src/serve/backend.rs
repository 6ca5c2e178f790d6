//! The backend: one thread owns the model; requests queue on a channel and are batched
//! dynamically — the first waiting request, then as many more as fit the token budget — so
//! concurrent clients share forward passes (text-embeddings-inference's design).

use crate::Encoder;
use std::sync::mpsc;

pub struct Job {
    pub ids: Vec<Vec<u32>>,
    pub normalize: bool,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
}

impl Job {
    fn tokens(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }
}

/// Starts the model thread; returns the queue. The thread ends when every sender is gone.
pub fn spawn(encoder: Encoder, max_batch_tokens: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::spawn(move || {
        let mut held: Option<Job> = None;
        while let Some(first) = held.take().or_else(|| rx.recv().ok()) {
            let mut jobs = vec![first];
            let mut tokens = jobs[0].tokens();
            while let Ok(j) = rx.try_recv() {
                if tokens + j.tokens() > max_batch_tokens || j.normalize != jobs[0].normalize {
                    held = Some(j);
                    break;
                }
                tokens += j.tokens();
                jobs.push(j);
            }
            let all: Vec<Vec<u32>> = jobs.iter().flat_map(|j| j.ids.iter().cloned()).collect();
            let result = encoder.encode_ids(&all, jobs[0].normalize);
            let mut at = 0;
            for j in jobs {
                let n = j.ids.len();
                let part = match &result {
                    Ok(v) => Ok(v[at..at + n].to_vec()),
                    Err(e) => Err(e.to_string()),
                };
                at += n;
                // A client that left has no one to read its answer.
                let _ = j.reply.send(part);
            }
        }
    });
    tx
}
