//! Scoring (per-token log-probabilities of given texts) batched across concurrent requests:
//! each request queues its texts, then whoever holds the model next runs everything queued as
//! padded batches, so while one forward pass runs the next batch gathers. Right padding is
//! harmless under a causal mask: a position never sees what follows it.

use super::AppState;
use crate::model::Llama;
use std::sync::mpsc;
use tch::{Kind, Tensor};

/// A position's own log-probability (None for the first) and its most likely tokens.
pub type Scored = (Option<f64>, Vec<(u32, f64)>);

#[derive(Debug)]
pub struct ScoreJob {
    ids: Vec<u32>,
    top: usize,
    reply: mpsc::Sender<Result<Vec<Scored>, String>>,
}

/// Padded tokens per forward pass: bounds the logits a batch materialises.
const BATCH_TOKENS: usize = 8192;

/// Scores each of `texts` (token ids, with the `top` most likely tokens per position),
/// batched with whatever other requests have queued.
pub fn score(
    state: &AppState,
    texts: Vec<Vec<u32>>,
    top: usize,
) -> Result<Vec<Vec<Scored>>, String> {
    let poisoned = |_| "score queue poisoned".to_string();
    let mut replies = Vec::with_capacity(texts.len());
    {
        let mut q = state.score_queue.lock().map_err(poisoned)?;
        for ids in texts {
            let (reply, rx) = mpsc::channel();
            q.push(ScoreJob { ids, top, reply });
            replies.push(rx);
        }
    }
    {
        let model = state
            .model
            .lock()
            .map_err(|_| "model lock poisoned".to_string())?;
        loop {
            let batch = take_batch(&mut *state.score_queue.lock().map_err(poisoned)?);
            if batch.is_empty() {
                break;
            }
            let m = &state.metrics;
            super::Metrics::add(&m.scoring_batches, 1);
            super::Metrics::add(&m.scoring_rows, batch.len() as u64);
            let tokens: usize = batch.iter().map(|j| j.ids.len()).sum();
            super::Metrics::add(&m.scored_tokens, tokens as u64);
            run(&model, batch);
        }
    }
    // Ours ran in this loop or in another request's.
    replies
        .into_iter()
        .map(|rx| rx.recv().map_err(|_| "scoring was dropped".to_string())?)
        .collect()
}

/// The longest prefix of the queue whose padded size fits the budget (at least one job).
fn take_batch(queue: &mut Vec<ScoreJob>) -> Vec<ScoreJob> {
    let mut longest = 0;
    let mut n = 0;
    for job in queue.iter() {
        let l = longest.max(job.ids.len());
        if n > 0 && l * (n + 1) > BATCH_TOKENS {
            break;
        }
        longest = l;
        n += 1;
    }
    queue.drain(..n).collect()
}

fn run(model: &Llama, jobs: Vec<ScoreJob>) {
    let longest = jobs.iter().map(|j| j.ids.len()).max().unwrap_or(0);
    let mut flat = Vec::with_capacity(jobs.len() * longest);
    for j in &jobs {
        flat.extend(j.ids.iter().map(|&t| t as i64));
        flat.resize(flat.len() + longest - j.ids.len(), 0);
    }
    let ids = Tensor::from_slice(&flat)
        .view([jobs.len() as i64, longest as i64])
        .to_device(model.device());
    let logits = match model.forward(&ids) {
        Ok(l) => l,
        Err(e) => {
            for j in jobs {
                let _ = j.reply.send(Err(e.to_string()));
            }
            return;
        }
    };
    for (b, job) in jobs.into_iter().enumerate() {
        let _ = job
            .reply
            .send(Ok(scored_row(&logits.get(b as i64), &job.ids, job.top)));
    }
}

/// Log-probabilities (in f32, as `transformers` computes them) of one row's own tokens and
/// its top tokens.
fn scored_row(logits: &Tensor, ids: &[u32], top: usize) -> Vec<Scored> {
    let n = ids.len() as i64;
    let mut out: Vec<Scored> = vec![(None, Vec::new())];
    if n < 2 {
        return out;
    }
    let lp = logits
        .narrow(0, 0, n - 1)
        .to_kind(Kind::Float)
        .log_softmax(-1, Kind::Float);
    let targets: Vec<i64> = ids[1..].iter().map(|&t| t as i64).collect();
    let own = lp
        .gather(
            1,
            &Tensor::from_slice(&targets)
                .to_device(lp.device())
                .unsqueeze(1),
            false,
        )
        .squeeze_dim(1)
        .to_kind(Kind::Double)
        .to_device(tch::Device::Cpu);
    let own = Vec::<f64>::try_from(&own).unwrap_or_default();
    let tops: Vec<Vec<(u32, f64)>> = if top > 0 {
        let (vals, idx) = lp.topk(top as i64, -1, true, true);
        let vals = vals.to_kind(Kind::Double).to_device(tch::Device::Cpu);
        let idx = idx.to_device(tch::Device::Cpu);
        (0..n - 1)
            .map(|i| {
                let v = Vec::<f64>::try_from(&vals.get(i)).unwrap_or_default();
                let t = Vec::<i64>::try_from(&idx.get(i)).unwrap_or_default();
                t.into_iter().map(|t| t as u32).zip(v).collect()
            })
            .collect()
    } else {
        vec![Vec::new(); (n - 1) as usize]
    };
    out.extend(own.into_iter().zip(tops).map(|(o, t)| (Some(o), t)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_within_the_token_budget() {
        let (tx, _rx) = mpsc::channel();
        let job = |n: usize| ScoreJob {
            ids: vec![1; n],
            top: 0,
            reply: tx.clone(),
        };
        let mut q = vec![job(3000), job(1000), job(2000), job(9000)];
        assert_eq!(take_batch(&mut q).len(), 2, "3 × 3000 > 8192");
        assert_eq!(take_batch(&mut q).len(), 1);
        assert_eq!(
            take_batch(&mut q).len(),
            1,
            "one over-long job still runs alone"
        );
        assert!(take_batch(&mut q).is_empty());
    }
}
