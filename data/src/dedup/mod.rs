//! Deduplication across all shards of a run: exact (a 128-bit hash of the text) and
//! near-duplicate (MinHash LSH). Documents that collide are joined in a union-find; each
//! cluster keeps its first document. Clusters are written to `dedup/clusters.jsonl`.

pub mod minhash;
pub mod union_find;

use crate::pipeline::output::{read_docs, DocWriter};
use crate::pipeline::Pipeline;
use crate::{Error, Result};
use minhash::{MinHashConfig, MinHasher};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use union_find::UnionFind;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    #[serde(default = "yes")]
    pub exact: bool,
    #[serde(default)]
    pub minhash: Option<MinHashConfig>,
}

fn yes() -> bool {
    true
}

impl DedupConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(m) = &self.minhash {
            if m.n_grams == 0 || m.bands == 0 || m.rows == 0 {
                return Err("minhash n_grams, bands and rows must be at least 1".into());
            }
            if m.min_similarity.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
                return Err("minhash min_similarity must lie between 0 and 1".into());
            }
        }
        if !self.exact && self.minhash.is_none() {
            return Err("neither exact nor minhash deduplication is on".into());
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupStats {
    pub documents_in: u64,
    pub documents_out: u64,
    /// Removed because an identical text came first.
    pub exact_duplicates: u64,
    /// Removed as near duplicates (MinHash) of a kept document.
    pub near_duplicates: u64,
    /// Documents too short to shingle (never near-deduplicated).
    pub unshingled: u64,
    pub clusters: u64,
    pub largest_cluster: u64,
}

impl DedupStats {
    pub fn duplicate_rate(&self) -> f64 {
        (self.exact_duplicates + self.near_duplicates) as f64 / self.documents_in.max(1) as f64
    }
}

/// What pass one keeps per document.
#[derive(Debug)]
pub struct Keys {
    pub id: String,
    pub exact: u128,
    pub bands: Option<Vec<u64>>,
    /// The whole signature, kept only when candidates are verified (`min_similarity`).
    pub signature: Option<Vec<u64>>,
}

/// Documents that share a band and are compared; beyond this a bucket's later members are
/// compared with its first ones only, which bounds the work on huge duplicate clusters.
const MAX_BUCKET_COMPARISONS: usize = 64;

#[derive(Serialize, Deserialize)]
struct Marker {
    config_sha256: String,
    /// Digest of the clean stage's shard markers: any change there reruns deduplication.
    clean_digest: String,
    stats: DedupStats,
}

/// Clusters `keys` (documents in global order); returns the union-find and exact-dup flags.
pub fn cluster(keys: &[Keys], exact: bool, min_similarity: Option<f64>) -> (UnionFind, Vec<bool>) {
    let n = keys.len();
    let mut uf = UnionFind::new(n);
    let mut exact_dup = vec![false; n];
    if exact {
        let mut first: HashMap<u128, u32> = HashMap::with_capacity(n);
        for (i, k) in keys.iter().enumerate() {
            match first.get(&k.exact) {
                Some(&j) => {
                    uf.union(j, i as u32);
                    exact_dup[i] = true;
                }
                None => {
                    first.insert(k.exact, i as u32);
                }
            }
        }
    }
    let bands = keys
        .iter()
        .find_map(|k| k.bands.as_ref().map(Vec::len))
        .unwrap_or(0);
    for b in 0..bands {
        let mut buckets: HashMap<u64, Vec<u32>> = HashMap::with_capacity(n);
        for (i, k) in keys.iter().enumerate() {
            let Some(bk) = &k.bands else { continue };
            let bucket = buckets.entry(bk[b]).or_default();
            match min_similarity {
                None => {
                    if let Some(&j) = bucket.first() {
                        uf.union(j, i as u32);
                    }
                }
                Some(t) => {
                    for &j in bucket.iter().take(MAX_BUCKET_COMPARISONS) {
                        let (a, c) = (
                            keys[j as usize].signature.as_deref(),
                            k.signature.as_deref(),
                        );
                        if let (Some(a), Some(c)) = (a, c) {
                            if minhash::similarity(a, c) >= t {
                                uf.union(j, i as u32);
                            }
                        }
                    }
                }
            }
            if bucket.len() < MAX_BUCKET_COMPARISONS {
                bucket.push(i as u32);
            }
        }
    }
    (uf, exact_dup)
}

/// Pass one for one document: its exact hash, band keys and (when verifying) signature.
pub fn document_keys(id: String, text: &str, hasher: Option<&MinHasher>) -> Keys {
    let signature = hasher.and_then(|h| h.signature(text));
    let bands = hasher.zip(signature.as_ref()).map(|(h, s)| h.band_keys(s));
    let keep_signature = hasher.is_some_and(|h| h.config().min_similarity.is_some());
    Keys {
        id,
        exact: xxhash_rust::xxh3::xxh3_128(text.as_bytes()),
        bands,
        signature: signature.filter(|_| keep_signature),
    }
}

pub fn run(
    p: &Pipeline,
    cfg: &DedupConfig,
    pool: &rayon::ThreadPool,
    progress: bool,
    clean_digest: &str,
) -> Result<DedupStats> {
    let clean = p.out_dir().join("clean");
    let dir = p.out_dir().join("dedup");
    let marker = dir.join("stats.json");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let m: Marker = serde_json::from_str(&text)
            .map_err(|e| Error::format(&marker, "marker", e.to_string()))?;
        if m.config_sha256 == p.config_sha256 && m.clean_digest == clean_digest {
            return Ok(m.stats);
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let hasher = cfg.minhash.as_ref().map(MinHasher::new);
    let bar = if progress {
        flagcore::telemetry::progress_bar(p.shards.len() as u64 * 2, "dedup")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let per_shard: Vec<Result<Vec<Keys>>> = pool.install(|| {
        p.shards
            .par_iter()
            .map(|shard| {
                let mut keys = Vec::new();
                read_docs(&clean.join(format!("{}.jsonl.zst", shard.id)), |doc| {
                    keys.push(document_keys(doc.id, &doc.text, hasher.as_ref()));
                    Ok(())
                })?;
                bar.inc(1);
                Ok(keys)
            })
            .collect()
    });
    let mut offsets = Vec::with_capacity(p.shards.len());
    let mut keys = Vec::new();
    for r in per_shard {
        offsets.push(keys.len());
        keys.extend(r?);
    }
    let min_similarity = cfg.minhash.as_ref().and_then(|m| m.min_similarity);
    let (mut uf, exact_dup) = cluster(&keys, cfg.exact, min_similarity);
    let roots: Vec<u32> = (0..keys.len() as u32).map(|i| uf.find(i)).collect();
    let mut stats = DedupStats {
        documents_in: keys.len() as u64,
        ..Default::default()
    };
    stats.unshingled = if hasher.is_some() {
        keys.iter().filter(|k| k.bands.is_none()).count() as u64
    } else {
        0
    };
    let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
    for (i, &r) in roots.iter().enumerate() {
        if r as usize != i {
            members.entry(r).or_default().push(i as u32);
            if exact_dup[i] {
                stats.exact_duplicates += 1;
            } else {
                stats.near_duplicates += 1;
            }
        }
    }
    stats.documents_out = stats.documents_in - stats.exact_duplicates - stats.near_duplicates;
    stats.clusters = members.len() as u64;
    stats.largest_cluster = members
        .values()
        .map(|m| m.len() as u64 + 1)
        .max()
        .unwrap_or(1);
    let mut clusters: Vec<(&u32, &Vec<u32>)> = members.iter().collect();
    clusters.sort();
    let mut lines = Vec::new();
    for (root, rest) in clusters {
        let ids: Vec<&str> = std::iter::once(*root)
            .chain(rest.iter().copied())
            .map(|i| keys[i as usize].id.as_str())
            .collect();
        let row = serde_json::json!({"kept": ids[0], "size": ids.len(), "members": ids});
        writeln!(lines, "{row}").map_err(|e| Error::io(&dir, e))?;
    }
    flagcore::fsutil::write_atomic(&dir.join("clusters.jsonl"), &lines)?;
    let results: Vec<Result<()>> = pool.install(|| {
        p.shards
            .par_iter()
            .enumerate()
            .map(|(s, shard)| {
                let mut out = DocWriter::create(&dir.join(format!("{}.jsonl.zst", shard.id)))?;
                let mut i = offsets[s];
                read_docs(&clean.join(format!("{}.jsonl.zst", shard.id)), |doc| {
                    let keep = roots[i] as usize == i;
                    i += 1;
                    if keep {
                        out.write(&doc)?;
                    }
                    Ok(())
                })?;
                bar.inc(1);
                out.finish()
            })
            .collect()
    });
    bar.finish_and_clear();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let m = Marker {
        config_sha256: p.config_sha256.clone(),
        clean_digest: clean_digest.to_string(),
        stats: stats.clone(),
    };
    flagcore::fsutil::write_atomic(
        &marker,
        &serde_json::to_vec_pretty(&m).map_err(|e| Error::Invalid(e.to_string()))?,
    )?;
    Ok(stats)
}
