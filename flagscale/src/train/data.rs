//! GPT training samples from a Megatron indexed dataset: documents in a seeded order per epoch,
//! joined into one token stream, cut into samples of `seq_len + 1` tokens (inputs and shifted
//! targets) that may cross document boundaries, as Megatron's GPTDataset does. A dataset covers
//! a range of documents, so train / validation / test splits never share one.

use crate::{Error, Result};
use flagdata::indexed::IndexedDataset;
use std::ops::Range;
use std::path::Path;

/// Megatron's split of `n` documents by weights (`"969,30,1"` → train, validation, test):
/// contiguous ranges, boundaries rounded from the normalised cumulative weights.
pub fn split_documents(n: usize, weights: &[f64; 3]) -> Result<[Range<usize>; 3]> {
    let total: f64 = weights.iter().sum();
    if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || total <= 0.0 {
        return Err(Error::Invalid(format!(
            "split {weights:?}: weights must be non-negative with a positive sum"
        )));
    }
    let mut bounds = [0i64; 4];
    for i in 0..3 {
        bounds[i + 1] = bounds[i] + (weights[i] / total * n as f64).round() as i64;
    }
    // As Megatron: rounding's surplus or shortfall moves every boundary after the first.
    let diff = bounds[3] - n as i64;
    let mut prev = 0usize;
    let mut b = [0usize; 4];
    for i in 1..4 {
        b[i] = ((bounds[i] - diff).clamp(0, n as i64) as usize).max(prev);
        prev = b[i];
    }
    let bounds = b;
    Ok([
        bounds[0]..bounds[1],
        bounds[1]..bounds[2],
        bounds[2]..bounds[3],
    ])
}

#[derive(Debug)]
pub struct GptDataset {
    data: IndexedDataset,
    docs: Range<usize>,
    seq_len: usize,
    seed: u64,
    /// Samples per epoch.
    per_epoch: usize,
    /// The document order of the last epoch read, and where each document starts in it.
    order: Option<(u64, Vec<usize>, Vec<usize>)>,
}

fn order_key(seed: u64, epoch: u64, doc: usize) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (doc as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl GptDataset {
    /// Samples over documents `docs` of the dataset at `prefix`.
    pub fn open(prefix: &Path, docs: Range<usize>, seq_len: usize, seed: u64) -> Result<Self> {
        let data = IndexedDataset::open(prefix).map_err(|e| Error::Invalid(e.to_string()))?;
        if docs.end > data.len() {
            return Err(Error::Invalid(format!(
                "{}: documents {docs:?} asked of {}",
                prefix.display(),
                data.len()
            )));
        }
        let lengths = data.sequence_lengths();
        let tokens: usize = docs.clone().map(|d| lengths[d] as usize).sum();
        if seq_len == 0 || tokens < seq_len + 1 {
            return Err(Error::Invalid(format!(
                "{}: {tokens} tokens (documents {docs:?}) cannot make one sample of {} (sequence length + 1)",
                prefix.display(),
                seq_len + 1
            )));
        }
        Ok(GptDataset {
            per_epoch: (tokens - 1) / seq_len,
            data,
            docs,
            seq_len,
            seed,
            order: None,
        })
    }

    /// Documents in the dataset file (all splits).
    pub fn documents_in(prefix: &Path) -> Result<usize> {
        Ok(IndexedDataset::open(prefix)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .len())
    }

    pub fn samples_per_epoch(&self) -> usize {
        self.per_epoch
    }

    /// Sample `i` (any index: epochs repeat with a new document order): `seq_len + 1` tokens.
    pub fn sample(&mut self, i: usize) -> Result<Vec<i64>> {
        let epoch = (i / self.per_epoch) as u64;
        let start = (i % self.per_epoch) * self.seq_len;
        if self.order.as_ref().is_none_or(|(e, _, _)| *e != epoch) {
            let mut order: Vec<usize> = self.docs.clone().collect();
            order.sort_by_key(|&d| order_key(self.seed, epoch, d));
            let lengths = self.data.sequence_lengths();
            let mut starts = Vec::with_capacity(order.len());
            let mut pos = 0usize;
            for &d in &order {
                starts.push(pos);
                pos += lengths[d] as usize;
            }
            self.order = Some((epoch, order, starts));
        }
        let (_, order, starts) = self.order.as_ref().expect("set above");
        let lengths = self.data.sequence_lengths();
        // The document holding token `start`: the last one starting at or before it.
        let mut k = starts.partition_point(|&s| s <= start).saturating_sub(1);
        let mut out = Vec::with_capacity(self.seq_len + 1);
        while out.len() < self.seq_len + 1 && k < order.len() {
            let d = order[k];
            let from = start.saturating_sub(starts[k]);
            let len = lengths[d] as usize;
            if from < len {
                let take = (len - from).min(self.seq_len + 1 - out.len());
                self.data
                    .read_into(d, from, take, &mut out)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
            }
            k += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_contiguous_and_cover_every_document() {
        let s = split_documents(1000, &[969.0, 30.0, 1.0]).unwrap();
        assert_eq!(s, [0..969, 969..999, 999..1000]);
        let s = split_documents(7, &[1.0, 1.0, 0.0]).unwrap();
        assert_eq!(s[0].len() + s[1].len() + s[2].len(), 7);
        assert_eq!(split_documents(10, &[1.0, 0.0, 0.0]).unwrap()[0], 0..10);
        assert!(split_documents(10, &[0.0, 0.0, 0.0]).is_err());
    }
}
