//! GPT training samples from a Megatron indexed dataset: documents in a seeded order per epoch,
//! joined into one token stream, cut into samples of `seq_len + 1` tokens (inputs and shifted
//! targets) that may cross document boundaries, as Megatron's GPTDataset does.

use crate::{Error, Result};
use flagdata::indexed::IndexedDataset;
use std::path::Path;

#[derive(Debug)]
pub struct GptDataset {
    data: IndexedDataset,
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
    pub fn open(prefix: &Path, seq_len: usize, seed: u64) -> Result<Self> {
        let data = IndexedDataset::open(prefix).map_err(|e| Error::Invalid(e.to_string()))?;
        let tokens = data.total_tokens() as usize;
        if seq_len == 0 || tokens < seq_len + 1 {
            return Err(Error::Invalid(format!(
                "{}: {tokens} tokens cannot make one sample of {} (sequence length + 1)",
                prefix.display(),
                seq_len + 1
            )));
        }
        Ok(GptDataset {
            per_epoch: (tokens - 1) / seq_len,
            data,
            seq_len,
            seed,
            order: None,
        })
    }

    pub fn samples_per_epoch(&self) -> usize {
        self.per_epoch
    }

    /// Sample `i` (any index: epochs repeat with a new document order): `seq_len + 1` tokens.
    pub fn sample(&mut self, i: usize) -> Result<Vec<i64>> {
        let epoch = (i / self.per_epoch) as u64;
        let start = (i % self.per_epoch) * self.seq_len;
        if self.order.as_ref().is_none_or(|(e, _, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.data.len()).collect();
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
