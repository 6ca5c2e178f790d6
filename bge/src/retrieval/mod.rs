//! Retrieval over normalised embeddings: exact top-k by batched matrix products (`search`)
//! and the metrics retrieval is judged by (`metrics.rs`), over sets in FlagEmbedding's
//! layout (`data.rs`).

pub mod data;
pub mod index;
pub mod metrics;

use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Embedding rows (all of one length) as an (n, dim) f32 tensor.
pub fn rows_tensor(rows: &[Vec<f32>]) -> Tensor {
    let dim = rows.first().map_or(1, Vec::len).max(1) as i64;
    Tensor::from_slice(&rows.concat()).view([-1, dim])
}

/// The `k` best corpus rows for each query row by inner product (cosine for normalised
/// vectors), best first: (corpus index, score). Queries go `batch` at a time, so memory is
/// `batch × corpus` scores.
pub fn search(
    queries: &Tensor,
    corpus: &Tensor,
    k: usize,
    batch: usize,
) -> Result<Vec<Vec<(usize, f32)>>> {
    let (qs, cs) = (queries.size(), corpus.size());
    if qs.len() != 2 || cs.len() != 2 || qs[1] != cs[1] {
        return Err(Error::Invalid(format!(
            "queries {qs:?} and corpus {cs:?} must be (n, dim) with the same dim"
        )));
    }
    let k = k.min(cs[0] as usize);
    let corpus_t = corpus.to_kind(Kind::Float).transpose(0, 1);
    let mut out = Vec::with_capacity(qs[0] as usize);
    let mut start = 0;
    while start < qs[0] {
        let n = (batch.max(1) as i64).min(qs[0] - start);
        let scores = queries
            .narrow(0, start, n)
            .to_kind(Kind::Float)
            .matmul(&corpus_t);
        let (vals, idx) = scores.topk(k as i64, 1, true, true);
        let vals = Vec::<f32>::try_from(vals.flatten(0, -1))
            .map_err(|e| Error::Invalid(format!("reading scores: {e}")))?;
        let idx = Vec::<i64>::try_from(idx.flatten(0, -1))
            .map_err(|e| Error::Invalid(format!("reading indices: {e}")))?;
        for r in 0..n as usize {
            out.push(
                (0..k)
                    .map(|j| (idx[r * k + j] as usize, vals[r * k + j]))
                    .collect(),
            );
        }
        start += n;
    }
    Ok(out)
}

/// Embeds the corpus and the queries (with `instruction` before each query), retrieves the
/// top 100 exactly and scores the rankings: (metric, value) pairs of [`metrics::evaluate`].
pub fn evaluate(
    encoder: &crate::Encoder,
    data: &data::Dataset,
    instruction: &str,
) -> Result<Vec<(String, f64)>> {
    let docs: Vec<&str> = data.corpus.iter().map(|(_, t)| t.as_str()).collect();
    let queries: Vec<&str> = data.queries.iter().map(|(_, t)| t.as_str()).collect();
    if docs.is_empty() || queries.is_empty() {
        return Err(Error::Invalid(
            "the retrieval set has no documents or no queries".into(),
        ));
    }
    let corpus = rows_tensor(&encoder.encode(&docs)?);
    let q = rows_tensor(&encoder.encode_queries(&queries, instruction)?);
    let hits = search(&q, &corpus, 100, 256)?;
    let rankings = data
        .queries
        .iter()
        .zip(hits)
        .map(|((qid, _), h)| {
            (
                qid.clone(),
                h.into_iter()
                    .map(|(i, _)| data.corpus[i].0.clone())
                    .collect(),
            )
        })
        .collect();
    Ok(metrics::evaluate(&rankings, &data.qrels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_top_k() {
        let corpus = Tensor::from_slice(&[1f32, 0., 0., 1., 0.6, 0.8, -1., 0.]).view([4, 2]);
        let queries = Tensor::from_slice(&[0.8f32, 0.6, 0., 1.]).view([2, 2]);
        let hits = search(&queries, &corpus, 2, 1).unwrap();
        assert_eq!(hits[0].iter().map(|h| h.0).collect::<Vec<_>>(), [2, 0]);
        assert!((hits[0][0].1 - 0.96).abs() < 1e-6);
        assert_eq!(hits[1].iter().map(|h| h.0).collect::<Vec<_>>(), [1, 2]);
        assert!(search(&queries, &corpus.narrow(1, 0, 1), 1, 1).is_err());
    }
}
