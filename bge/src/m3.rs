//! bge-m3's three outputs (Chen et al., 2024, "BGE M3-Embedding: Multi-Lingual,
//! Multi-Functionality, Multi-Granularity Text Embeddings Through Self-Knowledge
//! Distillation") on an XLM-R encoder: dense (the CLS state, normalised), sparse lexical
//! weights (relu of a hidden→1 head per token, the largest weight per token id, special tokens
//! dropped) and multi-vector ColBERT (a hidden→hidden head on every token after CLS,
//! normalised); scores as FlagEmbedding computes them, and their weighted hybrid.
//!
//! The heads (`weight`, `bias`) are read from `sparse_linear` and `colbert_linear` beside the
//! model: `.safetensors`, or the `.pt` state dicts FlagEmbedding ships (`torch_pickle.rs`).

use crate::bert::Bert;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

#[derive(Debug)]
struct Head {
    w: Tensor,
    b: Tensor,
}

/// The head `stem` of `dir`: `<stem>.safetensors`, or FlagEmbedding's `<stem>.pt`.
fn head(dir: &Path, stem: &str, kind: Kind, device: tch::Device) -> Result<Head> {
    let safe = dir.join(format!("{stem}.safetensors"));
    let (path, mut t) = if safe.is_file() {
        let t = crate::bert::load_tensors(&safe, kind, device)?;
        (safe, t)
    } else {
        let pt = dir.join(format!("{stem}.pt"));
        let t = crate::torch_pickle::load_state_dict(&pt, kind, device)?;
        (pt, t)
    };
    let mut take = |n: &str| {
        t.remove(n).ok_or_else(|| Error::File {
            path: path.to_path_buf(),
            message: format!("no tensor `{n}`"),
        })
    };
    Ok(Head {
        w: take("weight")?,
        b: take("bias")?,
    })
}

/// One text's three representations.
#[derive(Clone, Debug)]
pub struct M3Output {
    pub dense: Vec<f32>,
    /// Token id → weight (the largest over the text's occurrences; > 0 only).
    pub sparse: HashMap<u32, f32>,
    /// One normalised vector per token after CLS.
    pub colbert: Vec<Vec<f32>>,
}

#[derive(Debug)]
pub struct M3 {
    sparse: Head,
    colbert: Head,
    /// Token ids that never carry lexical weight (CLS, EOS, PAD, UNK).
    pub special: Vec<u32>,
}

impl M3 {
    /// The same heads over the same storage (another handle to each tensor), for another
    /// thread: tensors are `Send` but not `Sync`.
    pub fn share(&self) -> M3 {
        let head = |h: &Head| Head {
            w: h.w.shallow_clone(),
            b: h.b.shallow_clone(),
        };
        M3 {
            sparse: head(&self.sparse),
            colbert: head(&self.colbert),
            special: self.special.clone(),
        }
    }

    pub fn load(dir: &Path, special: Vec<u32>, kind: Kind, device: tch::Device) -> Result<Self> {
        Ok(M3 {
            sparse: head(dir, "sparse_linear", kind, device)?,
            colbert: head(dir, "colbert_linear", kind, device)?,
            special,
        })
    }

    /// The three outputs of a padded batch `ids` / `mask` (B, T) through `bert` by libtorch's
    /// operators ([`crate::bert::Bert::forward`]): the reference the CPU plan's path
    /// ([`M3::outputs`] through [`crate::Encoder::map_hidden`], what the server runs) is checked
    /// against.
    pub fn forward(&self, bert: &Bert, ids: &Tensor, mask: &Tensor) -> Result<Vec<M3Output>> {
        let h = tch::no_grad(|| bert.forward(ids, mask))?;
        self.outputs(&h, ids, mask)
    }

    /// The three outputs of a padded batch `ids` / `mask` (B, T) from its last hidden states
    /// `h` (B, T, hidden), e.g. [`crate::Encoder::map_hidden`]'s; padding positions are not
    /// read.
    pub fn outputs(&self, h: &Tensor, ids: &Tensor, mask: &Tensor) -> Result<Vec<M3Output>> {
        let read = |t: &Tensor| -> Result<Vec<f32>> {
            Vec::<f32>::try_from(
                t.to_kind(Kind::Float)
                    .to_device(tch::Device::Cpu)
                    .flatten(0, -1),
            )
            .map_err(|e| Error::Invalid(format!("reading an output: {e}")))
        };
        let hidden = h.size()[2];
        let fits = |head: &Head, out: Option<i64>| {
            let w = head.w.size();
            w.len() == 2
                && w[1] == hidden
                && out.is_none_or(|o| w[0] == o)
                && head.b.size() == [w[0]]
        };
        if !fits(&self.sparse, Some(1)) || !fits(&self.colbert, None) {
            return Err(Error::Weights(format!(
                "the sparse head must be ({hidden} → 1) and the ColBERT head ({hidden} → n), not \
                 {:?} and {:?}",
                self.sparse.w.size(),
                self.colbert.w.size()
            )));
        }
        let dense = {
            let cls = h.select(1, 0).to_kind(Kind::Float);
            cls.shallow_clone() / cls.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12)
        };
        let weights =
            tch::no_grad(|| h.linear(&self.sparse.w, Some(&self.sparse.b)).relu()).squeeze_dim(-1);
        let col = tch::no_grad(|| {
            h.narrow(1, 1, h.size()[1] - 1)
                .linear(&self.colbert.w, Some(&self.colbert.b))
        });
        let col = col.to_kind(Kind::Float);
        let col = col.shallow_clone() / col.norm_scalaropt_dim(2, [-1], true).clamp_min(1e-12);
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let ids_v = Vec::<i64>::try_from(ids.to_device(tch::Device::Cpu).flatten(0, -1))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mask_v = Vec::<i64>::try_from(
            mask.to_kind(Kind::Int64)
                .to_device(tch::Device::Cpu)
                .flatten(0, -1),
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let w_v = read(&weights)?;
        // One copy to the host for each output, then slices per row and token.
        let (dense_v, col_v) = (read(&dense)?, read(&col)?);
        let cdim = col.size()[2] as usize;
        let hd = hidden as usize;
        let mut out = Vec::with_capacity(b as usize);
        for r in 0..b {
            let len: i64 = mask_v[(r * t) as usize..((r + 1) * t) as usize]
                .iter()
                .sum();
            let mut sparse = HashMap::new();
            for j in 0..len {
                let id = ids_v[(r * t + j) as usize] as u32;
                let w = w_v[(r * t + j) as usize];
                if self.special.contains(&id) || w <= 0.0 {
                    continue;
                }
                let e = sparse.entry(id).or_insert(0f32);
                *e = e.max(w);
            }
            let colbert = (0..(len - 1).max(0) as usize)
                .map(|j| {
                    let at = (r as usize * (t as usize - 1) + j) * cdim;
                    col_v[at..at + cdim].to_vec()
                })
                .collect();
            out.push(M3Output {
                dense: dense_v[r as usize * hd..(r as usize + 1) * hd].to_vec(),
                sparse,
                colbert,
            });
        }
        Ok(out)
    }
}

/// Σ w_q · w_p over the token ids both texts have.
pub fn sparse_score(q: &HashMap<u32, f32>, p: &HashMap<u32, f32>) -> f32 {
    q.iter()
        .filter_map(|(id, w)| p.get(id).map(|v| w * v))
        .sum()
}

/// The mean over query vectors of the best inner product with any passage vector.
pub fn colbert_score(q: &[Vec<f32>], p: &[Vec<f32>]) -> f32 {
    if q.is_empty() || p.is_empty() {
        return 0.0;
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    q.iter()
        .map(|v| {
            p.iter()
                .map(|u| dot(v, u))
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum::<f32>()
        / q.len() as f32
}

pub fn dense_score(q: &[f32], p: &[f32]) -> f32 {
    q.iter().zip(p).map(|(x, y)| x * y).sum()
}

/// FlagEmbedding's weighted hybrid (dense, sparse, ColBERT), normalised by the weights' sum;
/// default weights 0.4, 0.2, 0.4.
pub fn hybrid_score(q: &M3Output, p: &M3Output, weights: [f32; 3]) -> f32 {
    let s = weights.iter().sum::<f32>().max(f32::MIN_POSITIVE);
    (weights[0] * dense_score(&q.dense, &p.dense)
        + weights[1] * sparse_score(&q.sparse, &p.sparse)
        + weights[2] * colbert_score(&q.colbert, &p.colbert))
        / s
}
