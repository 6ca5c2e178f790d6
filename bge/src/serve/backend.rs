//! The backend: one thread owns the model; requests queue on a channel and are batched
//! dynamically — the first waiting request, then as many more of the same kind as fit the
//! token budget — so concurrent clients share forward passes (text-embeddings-inference's
//! design).

use crate::m3::M3;
use crate::rerank::Reranker;
use crate::{Encoder, Error, Result};
use std::sync::mpsc;
use tch::Kind;

/// What the server runs: an embedding model (with bge-m3's sparse and ColBERT heads when the
/// folder has them) or a cross-encoder.
#[derive(Debug)]
pub enum Model {
    Embed { encoder: Encoder, m3: Option<M3> },
    Rerank(Reranker),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Pooled embeddings, normalised or not.
    Embed { normalize: bool },
    /// Every token's last hidden state.
    All,
    /// bge-m3 lexical weights.
    Sparse,
    /// bge-m3 multi-vectors.
    Colbert,
    /// Cross-encoder logits (sigmoid or raw).
    Rerank { raw: bool },
}

#[derive(Debug)]
pub enum Output {
    Vectors(Vec<Vec<f32>>),
    Tokens(Vec<Vec<Vec<f32>>>),
    Sparse(Vec<Vec<(u32, f32)>>),
    Scores(Vec<f32>),
}

#[derive(Debug)]
pub struct Job {
    pub task: Task,
    /// Token ids per input (special tokens included) and, for pairs, token types.
    pub ids: Vec<Vec<u32>>,
    pub types: Vec<Vec<u32>>,
    pub reply: tokio::sync::oneshot::Sender<std::result::Result<Output, String>>,
}

impl Job {
    fn tokens(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }
}

impl Model {
    fn run(&self, task: Task, ids: &[Vec<u32>], types: &[Vec<u32>]) -> Result<Output> {
        let no = |what: &str| Error::Invalid(format!("this model does not serve {what}"));
        match (self, task) {
            (Model::Embed { encoder, .. }, Task::Embed { normalize }) => {
                Ok(Output::Vectors(encoder.encode_ids(ids, normalize)?))
            }
            (Model::Embed { encoder, .. }, Task::All) => Ok(Output::Tokens(hidden(encoder, ids)?)),
            (
                Model::Embed {
                    encoder,
                    m3: Some(m3),
                },
                Task::Sparse | Task::Colbert,
            ) => {
                let out =
                    encoder.map_hidden(ids, || m3.share(), |m3, h, i, m| m3.outputs(h, i, m))?;
                Ok(if task == Task::Sparse {
                    Output::Sparse(
                        out.into_iter()
                            .map(|o| {
                                let mut v: Vec<(u32, f32)> = o.sparse.into_iter().collect();
                                v.sort_by_key(|p| p.0);
                                v
                            })
                            .collect(),
                    )
                } else {
                    Output::Tokens(out.into_iter().map(|o| o.colbert).collect())
                })
            }
            (Model::Rerank(r), Task::Rerank { raw }) => {
                let pairs: Vec<(Vec<u32>, Vec<u32>)> =
                    ids.iter().cloned().zip(types.iter().cloned()).collect();
                Ok(Output::Scores(r.score_ids(&pairs, !raw)?))
            }
            (_, Task::Rerank { .. }) => Err(no("reranking")),
            (_, Task::Sparse | Task::Colbert) => Err(no("sparse or ColBERT outputs")),
            (Model::Rerank(_), _) => Err(no("embeddings")),
        }
    }
}

/// Every token's last hidden state (f32) per input.
fn hidden(encoder: &Encoder, ids: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>> {
    encoder.map_hidden(
        ids,
        || (),
        |_, h, _, mask| {
            let h = h.to_kind(Kind::Float).to_device(tch::Device::Cpu);
            // Batches pad on the right: each input's tokens come first in its row.
            let lens = Vec::<i64>::try_from(mask.sum_dim_intlist(1, false, Kind::Int64))
                .map_err(|e| Error::Invalid(format!("reading the mask: {e}")))?;
            let dim = h.size()[2].max(1) as usize;
            lens.iter()
                .enumerate()
                .map(|(r, &len)| {
                    let t = h.get(r as i64).narrow(0, 0, len);
                    let flat = Vec::<f32>::try_from(t.flatten(0, -1))
                        .map_err(|e| Error::Invalid(format!("reading hidden states: {e}")))?;
                    Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect())
                })
                .collect()
        },
    )
}

fn split(out: &Output, at: usize, n: usize) -> Output {
    match out {
        Output::Vectors(v) => Output::Vectors(v[at..at + n].to_vec()),
        Output::Tokens(v) => Output::Tokens(v[at..at + n].to_vec()),
        Output::Sparse(v) => Output::Sparse(v[at..at + n].to_vec()),
        Output::Scores(v) => Output::Scores(v[at..at + n].to_vec()),
    }
}

/// Starts the model thread; returns the queue. The thread ends when every sender is gone.
/// `observe` sees the size (inputs) of every forward batch.
pub fn spawn(
    model: Model,
    max_batch_tokens: usize,
    observe: impl Fn(usize) + Send + 'static,
) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::spawn(move || {
        let mut held: Option<Job> = None;
        while let Some(first) = held.take().or_else(|| rx.recv().ok()) {
            let mut jobs = vec![first];
            let mut tokens = jobs[0].tokens();
            while let Ok(j) = rx.try_recv() {
                if tokens + j.tokens() > max_batch_tokens || j.task != jobs[0].task {
                    held = Some(j);
                    break;
                }
                tokens += j.tokens();
                jobs.push(j);
            }
            let ids: Vec<Vec<u32>> = jobs.iter().flat_map(|j| j.ids.iter().cloned()).collect();
            let types: Vec<Vec<u32>> = jobs.iter().flat_map(|j| j.types.iter().cloned()).collect();
            observe(ids.len());
            // A panic inside libtorch (out of memory, say) fails this batch, not the server.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                model.run(jobs[0].task, &ids, &types)
            }))
            .unwrap_or_else(|_| Err(Error::Invalid("the model failed on this batch".into())));
            let mut at = 0;
            for j in jobs {
                let n = j.ids.len();
                let part = match &result {
                    Ok(out) => Ok(split(out, at, n)),
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
