//! Mixing and splits: blend tokenized sources by weight to a token budget, and assign every
//! document to train/valid/test by a hash of its tokens, so the split of a document never
//! depends on order, on the other documents, or on the mix.

use crate::indexed::{IndexedDataset, IndexedWriter, TokenDType};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One tokenized source and its share of the blend.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MixSource {
    pub name: String,
    /// Indexed dataset prefix (`<prefix>.bin/.idx`).
    pub prefix: PathBuf,
    pub weight: f64,
}

impl std::str::FromStr for MixSource {
    type Err = Error;

    /// `name=weight:prefix`, e.g. `zh=0.6:shards/zh`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("mix source `{s}`: expected name=weight:prefix"));
        let (name, rest) = s.split_once('=').ok_or_else(bad)?;
        let (weight, prefix) = rest.split_once(':').ok_or_else(bad)?;
        let weight: f64 = weight.parse().map_err(|_| bad())?;
        if name.is_empty() || prefix.is_empty() || !(weight > 0.0 && weight.is_finite()) {
            return Err(bad());
        }
        Ok(MixSource {
            name: name.into(),
            prefix: prefix.into(),
            weight,
        })
    }
}

/// Train/valid/test proportions (normalised), Megatron's `split: 98,1,1` style.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splits(pub [f64; 3]);

impl std::str::FromStr for Splits {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                Error::Invalid(format!("splits `{s}`: expected three numbers like 98,1,1"))
            })?;
        let [a, b, c] = parts[..] else {
            return Err(Error::Invalid(format!(
                "splits `{s}`: expected three numbers like 98,1,1"
            )));
        };
        let total = a + b + c;
        if [a, b, c].iter().any(|x| *x < 0.0 || !x.is_finite()) || total <= 0.0 {
            return Err(Error::Invalid(format!(
                "splits `{s}`: proportions must be non-negative with a positive sum"
            )));
        }
        Ok(Splits([a / total, b / total, c / total]))
    }
}

pub const SPLIT_NAMES: [&str; 3] = ["train", "valid", "test"];

/// The split of a document: its token bytes hashed to a point in [0, 1).
pub fn split_of(tokens: &[i64], splits: &Splits) -> usize {
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    let u = (xxhash_rust::xxh3::xxh3_64(&bytes) >> 11) as f64 / (1u64 << 53) as f64;
    if u < splits.0[0] {
        0
    } else if u < splits.0[0] + splits.0[1] {
        1
    } else {
        2
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub name: String,
    pub weight: f64,
    pub target_tokens: u64,
    pub tokens: u64,
    pub documents: u64,
    /// How many passes over the source the budget took (above 1: documents repeat).
    pub epochs: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MixReport {
    pub token_budget: u64,
    pub seed: u64,
    pub sources: Vec<SourceReport>,
    /// Documents and tokens per split (train, valid, test).
    pub split_documents: [u64; 3],
    pub split_tokens: [u64; 3],
}

fn order_key(seed: u64, source: usize, doc: usize, epoch: u64) -> u64 {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..16].copy_from_slice(&(source as u64).to_le_bytes());
    b[16..24].copy_from_slice(&(doc as u64).to_le_bytes());
    b[24..].copy_from_slice(&epoch.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// Blends `sources` into `<output>_{train,valid,test}` (or `<output>` alone when `splits` is
/// `None`): each source contributes documents, in a seeded hash order (repeating in further
/// passes if it is too small), until it reaches `weight / Σweights × budget` tokens; the chosen
/// documents are interleaved in a seeded order.
pub fn mix(
    sources: &[MixSource],
    token_budget: u64,
    seed: u64,
    splits: Option<Splits>,
    output: &Path,
) -> Result<MixReport> {
    if sources.is_empty() {
        return Err(Error::Invalid("mix: no sources".into()));
    }
    let total_weight: f64 = sources.iter().map(|s| s.weight).sum();
    let datasets = sources
        .iter()
        .map(|s| IndexedDataset::open(&s.prefix))
        .collect::<Result<Vec<_>>>()?;
    let dtype: TokenDType = datasets[0].dtype();
    for (s, d) in sources.iter().zip(&datasets) {
        if d.dtype() != dtype {
            return Err(Error::Invalid(format!(
                "mix: `{}` stores {:?} tokens, `{}` {:?}: tokenize them with one vocabulary",
                s.name,
                d.dtype(),
                sources[0].name,
                dtype
            )));
        }
        if d.len() != d.num_documents() || d.total_tokens() == 0 {
            return Err(Error::Invalid(format!(
                "mix: `{}` must hold one sequence per document and some tokens",
                s.name
            )));
        }
    }
    let mut picks: Vec<(u64, usize, usize)> = Vec::new();
    let mut report = MixReport {
        token_budget,
        seed,
        ..Default::default()
    };
    for (si, (s, d)) in sources.iter().zip(&datasets).enumerate() {
        let target = (token_budget as f64 * s.weight / total_weight).round() as u64;
        let mut got = 0u64;
        let mut docs = 0u64;
        let mut epoch = 0u64;
        let lengths = d.sequence_lengths();
        'fill: while got < target {
            let mut order: Vec<usize> = (0..d.len()).collect();
            order.sort_by_key(|&i| order_key(seed, si, i, epoch));
            for i in order {
                if got >= target {
                    break 'fill;
                }
                got += lengths[i] as u64;
                docs += 1;
                picks.push((order_key(seed ^ 0x5eed, si, i, epoch), si, i));
            }
            epoch += 1;
        }
        report.sources.push(SourceReport {
            name: s.name.clone(),
            weight: s.weight,
            target_tokens: target,
            tokens: got,
            documents: docs,
            epochs: got as f64 / d.total_tokens() as f64,
        });
    }
    picks.sort_unstable();
    let names: Vec<PathBuf> = match splits {
        Some(_) => SPLIT_NAMES
            .iter()
            .map(|n| PathBuf::from(format!("{}_{n}", output.display())))
            .collect(),
        None => vec![output.to_path_buf()],
    };
    let mut writers = names
        .iter()
        .map(|p| IndexedWriter::create(p, dtype))
        .collect::<Result<Vec<_>>>()?;
    for (_, si, i) in picks {
        let tokens = datasets[si].get(i)?;
        let split = splits.map_or(0, |sp| split_of(&tokens, &sp));
        let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
        writers[split].add_document(&ids)?;
        report.split_documents[split] += 1;
        report.split_tokens[split] += ids.len() as u64;
    }
    for w in writers {
        w.finish()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sources_and_splits() {
        let s: MixSource = "zh=0.6:shards/zh".parse().unwrap();
        assert_eq!(
            (s.name.as_str(), s.weight, s.prefix.as_path()),
            ("zh", 0.6, Path::new("shards/zh"))
        );
        for bad in ["zh:0.6", "zh=x:p", "=1:p", "zh=0:p", "zh=-1:p"] {
            assert!(bad.parse::<MixSource>().is_err(), "{bad}");
        }
        assert_eq!(
            "98,1,1".parse::<Splits>().unwrap(),
            Splits([0.98, 0.01, 0.01])
        );
        assert!("1,2".parse::<Splits>().is_err());
        assert!("0,0,0".parse::<Splits>().is_err());
    }

    #[test]
    fn split_is_a_function_of_the_tokens() {
        let sp = Splits([0.5, 0.25, 0.25]);
        let mut counts = [0usize; 3];
        for d in 0..4000i64 {
            let toks = [d, d * 7, 3];
            assert_eq!(split_of(&toks, &sp), split_of(&toks, &sp));
            counts[split_of(&toks, &sp)] += 1;
        }
        assert!((counts[0] as f64 / 4000.0 - 0.5).abs() < 0.03, "{counts:?}");
        assert!(
            (counts[1] as f64 / 4000.0 - 0.25).abs() < 0.03,
            "{counts:?}"
        );
    }
}
