//! MinHash signatures and LSH band keys (Broder 1997, "On the resemblance and containment of
//! documents"; banding as in Leskovec et al., "Mining of Massive Datasets", ch. 3).
//!
//! Shingles follow datatrove's recipe: the text is simplified (lower case, digit runs to `0`,
//! punctuation to spaces, whitespace collapsed, accents stripped), split into words (Chinese
//! into characters), and each n-gram of words, joined by spaces, is hashed with 64-bit XXH64.
//! Permutation j maps a shingle hash h to `(a_j·h + b_j) mod (2^61 − 1)` in wrapping u64
//! arithmetic, as datatrove computes it; a and b come from a seeded SplitMix64 stream.

use crate::filter::text::{is_punctuation, is_py_space, words};
use serde::{Deserialize, Serialize};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

const MERSENNE_61: u64 = (1 << 61) - 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinHashConfig {
    pub n_grams: usize,
    pub bands: usize,
    pub rows: usize,
    pub seed: u64,
    /// When set, two documents sharing a band are joined only if the share of equal values
    /// in their whole signatures (an estimate of their Jaccard similarity) reaches this.
    /// Lets few rows per band catch low-similarity duplicates without false merges.
    pub min_similarity: Option<f64>,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        MinHashConfig {
            n_grams: 5,
            bands: 14,
            rows: 8,
            seed: 1,
            min_similarity: None,
        }
    }
}

/// The text as shingled: datatrove's `simplify_text`.
pub fn simplify(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut numbers_zeroed = String::with_capacity(lower.len());
    let mut chars = lower.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_numeric() {
            // A digit run, optionally with one decimal separator inside, becomes `0`.
            while chars.peek().is_some_and(|d| d.is_numeric()) {
                chars.next();
            }
            let mut ahead = chars.clone();
            if ahead.next().is_some_and(|s| ".,،٫⎖⎗⎘".contains(s))
                && ahead.peek().is_some_and(|d| d.is_numeric())
            {
                chars.next();
                while chars.peek().is_some_and(|d| d.is_numeric()) {
                    chars.next();
                }
            }
            numbers_zeroed.push('0');
        } else if is_punctuation(c) {
            numbers_zeroed.push(' ');
        } else {
            numbers_zeroed.push(c);
        }
    }
    let collapsed = numbers_zeroed
        .split(is_py_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    collapsed
        .nfd()
        .filter(|&c| !is_combining_mark(c))
        .collect::<String>()
        .trim()
        .to_string()
}

/// Permutation parameters for `bands * rows` hash functions.
#[derive(Debug, Clone)]
pub struct MinHasher {
    cfg: MinHashConfig,
    a: Vec<u64>,
    b: Vec<u64>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl MinHasher {
    pub fn new(cfg: &MinHashConfig) -> Self {
        let k = cfg.bands * cfg.rows;
        let mut state = cfg.seed;
        let a = (0..k)
            .map(|_| 1 + splitmix64(&mut state) % (MERSENNE_61 - 1))
            .collect();
        let b = (0..k)
            .map(|_| splitmix64(&mut state) % MERSENNE_61)
            .collect();
        MinHasher {
            cfg: cfg.clone(),
            a,
            b,
        }
    }

    pub fn config(&self) -> &MinHashConfig {
        &self.cfg
    }

    /// Hashes of the text's word n-grams (none when it has fewer than n words).
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let simple = simplify(text);
        let toks = words(&simple);
        let n = self.cfg.n_grams;
        if toks.len() < n {
            return Vec::new();
        }
        let mut out: Vec<u64> = toks
            .windows(n)
            .map(|g| xxhash_rust::xxh64::xxh64(g.join(" ").as_bytes(), 0))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The minimum of every permutation over the shingles; `None` without shingles.
    pub fn signature(&self, text: &str) -> Option<Vec<u64>> {
        let shingles = self.shingles(text);
        if shingles.is_empty() {
            return None;
        }
        let mut sig = vec![u64::MAX; self.a.len()];
        for &h in &shingles {
            for (j, slot) in sig.iter_mut().enumerate() {
                let v = h.wrapping_mul(self.a[j]).wrapping_add(self.b[j]) % MERSENNE_61;
                if v < *slot {
                    *slot = v;
                }
            }
        }
        Some(sig)
    }

    /// One key per band: a hash of that band's `rows` values (band index mixed in).
    pub fn band_keys(&self, sig: &[u64]) -> Vec<u64> {
        sig.chunks(self.cfg.rows)
            .enumerate()
            .map(|(band, rows)| {
                let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
                xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, band as u64)
            })
            .collect()
    }
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u64], b: &[u64]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplify_like_datatrove() {
        // The example datatrove 0.10.1 simplifies to "... it s 0 times faster cafe naive"
        // keeps "…" (not in its punctuation set); ours maps ASCII dots to spaces the same way.
        assert_eq!(
            simplify("It's 3,5 times faster! Café naïve"),
            "it s 0 times faster cafe naive"
        );
        assert_eq!(simplify("第1998期，人民日报。"), "第0期 人民日报");
    }

    #[test]
    fn near_duplicates_share_bands_and_others_do_not() {
        let mh = MinHasher::new(&MinHashConfig::default());
        // Letters only: `simplify` turns digits into `0`.
        let word = |mut n: usize| {
            let mut w = String::new();
            n += 26;
            while n > 0 {
                w.push((b'a' + (n % 26) as u8) as char);
                n /= 26;
            }
            w
        };
        let words: Vec<String> = (0..200).map(|i| word((i * 7919) % 1000)).collect();
        let base = format!(
            "{} bird sings {}",
            words[..100].join(" "),
            words[100..].join(" ")
        );
        let near = base.replace("bird sings", "bird chirps");
        let other = "an entirely different sentence about rivers mountains valleys and the sea that shares almost nothing with the first one at all really";
        let (s1, s2, s3) = (
            mh.signature(&base).unwrap(),
            mh.signature(&near).unwrap(),
            mh.signature(other).unwrap(),
        );
        assert!(similarity(&s1, &s2) > 0.85, "{}", similarity(&s1, &s2));
        assert!(similarity(&s1, &s3) < 0.1);
        let (k1, k2, k3) = (mh.band_keys(&s1), mh.band_keys(&s2), mh.band_keys(&s3));
        assert_eq!(k1.len(), 14);
        assert!(k1.iter().zip(&k2).any(|(a, b)| a == b));
        assert!(k1.iter().zip(&k3).all(|(a, b)| a != b));
        assert!(mh.signature("too short").is_none());
    }

    #[test]
    fn chinese_shingles_are_character_grams() {
        let mh = MinHasher::new(&MinHashConfig::default());
        assert_eq!(mh.shingles("人民日报社论").len(), 2);
    }
}
