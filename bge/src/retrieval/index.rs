//! An on-disk index of normalised embeddings: `embeddings.safetensors` (one (count, dim)
//! tensor, f32 or f16) memory-mapped, `ids.json` (a document id per row) and `index.json`
//! (model, dtype, query instruction). Exact search streams the rows in chunks through
//! batched matrix products, so memory stays O(queries × chunk); approximate search builds an
//! HNSW graph (Malkov & Yashunin, 2018) with the `instant-distance` crate.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub model: String,
    pub dim: usize,
    pub count: usize,
    /// `f32` or `f16`.
    pub dtype: String,
    pub query_instruction: String,
}

#[derive(Debug)]
pub struct Index {
    pub dir: PathBuf,
    pub meta: Meta,
    pub ids: Vec<String>,
    map: memmap2::Mmap,
    /// Where the rows start in `map`.
    offset: usize,
    kind: Kind,
}

const WEIGHTS: &str = "embeddings.safetensors";

fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Index {
    /// Writes an index of `rows` (count, dim; normalised by the caller) with `ids` into `dir`
    /// (which must not exist or be empty), in `dtype` (`f32` or `f16`), atomically.
    pub fn write(dir: &Path, ids: &[String], rows: &Tensor, meta: Meta) -> Result<()> {
        let dtype = match meta.dtype.as_str() {
            "f32" => flagcore::DType::F32,
            "f16" => flagcore::DType::F16,
            other => {
                return Err(Error::Invalid(format!(
                    "index dtype `{other}`: use f32 or f16"
                )))
            }
        };
        let size = rows.size();
        if size.len() != 2 || size[0] as usize != ids.len() || size[1] as usize != meta.dim {
            return Err(Error::Invalid(format!(
                "{} ids and rows {size:?} of dim {} do not fit",
                ids.len(),
                meta.dim
            )));
        }
        crate::error::write_dir(dir, |tmp| {
            let weights = tmp.join(WEIGHTS);
            flagcore::torch::save_safetensors(&weights, &[("embeddings", rows)], Some(dtype), None)
                .map_err(|e| file_err(&weights, e.to_string()))?;
            let json = |name: &str, v: serde_json::Result<Vec<u8>>| -> Result<()> {
                let p = tmp.join(name);
                let bytes = v.map_err(|e| file_err(&p, e.to_string()))?;
                std::fs::write(&p, bytes).map_err(|e| Error::Io { path: p, error: e })
            };
            json("ids.json", serde_json::to_vec(ids))?;
            json("index.json", serde_json::to_vec_pretty(&meta))
        })
    }

    /// Opens an index written by [`Index::write`]; every inconsistency names the file.
    pub fn open(dir: &Path) -> Result<Self> {
        let meta: Meta = crate::error::read_json(&dir.join("index.json"))?;
        let ids: Vec<String> = crate::error::read_json(&dir.join("ids.json"))?;
        let path = dir.join(WEIGHTS);
        let file = std::fs::File::open(&path).map_err(|e| Error::Io {
            path: path.clone(),
            error: e,
        })?;
        // SAFETY: the map is read-only; an index is written once into a fresh folder and
        // renamed into place, never modified afterwards.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io {
            path: path.clone(),
            error: e,
        })?;
        let (header, md) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| file_err(&path, e.to_string()))?;
        let info = md
            .info("embeddings")
            .ok_or_else(|| file_err(&path, "no `embeddings` tensor"))?;
        let (kind, width) = match info.dtype {
            safetensors::Dtype::F32 => (Kind::Float, 4),
            safetensors::Dtype::F16 => (Kind::Half, 2),
            other => return Err(file_err(&path, format!("dtype {other:?}: f32 or f16 only"))),
        };
        if info.shape != [ids.len(), meta.dim] || meta.count != ids.len() {
            return Err(file_err(
                &path,
                format!(
                    "shape {:?} does not fit {} ids of dim {}",
                    info.shape,
                    ids.len(),
                    meta.dim
                ),
            ));
        }
        let offset = 8 + header + info.data_offsets.0;
        if info.data_offsets.1 - info.data_offsets.0 != ids.len() * meta.dim * width
            || offset + ids.len() * meta.dim * width > map.len()
        {
            return Err(file_err(&path, "the file is truncated"));
        }
        Ok(Index {
            dir: dir.to_path_buf(),
            meta,
            ids,
            map,
            offset,
            kind,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Rows `start..start + n` as an f32 tensor (n, dim), read from the map.
    pub fn rows(&self, start: usize, n: usize) -> Tensor {
        let width = if self.kind == Kind::Half { 2 } else { 4 };
        let row = self.meta.dim * width;
        let bytes = &self.map[self.offset + start * row..self.offset + (start + n) * row];
        Tensor::from_data_size(bytes, &[n as i64, self.meta.dim as i64], self.kind)
            .to_kind(Kind::Float)
    }

    /// Exact top-`k` rows for each query row (queries × dim, f32), best first: (row, score).
    /// Rows stream through in chunks of `chunk`; each chunk's best are merged.
    pub fn search(
        &self,
        queries: &Tensor,
        k: usize,
        chunk: usize,
    ) -> Result<Vec<Vec<(usize, f32)>>> {
        let nq = queries.size().first().copied().unwrap_or(0) as usize;
        let mut best: Vec<Vec<(usize, f32)>> = vec![Vec::new(); nq];
        let mut start = 0;
        while start < self.len() {
            let n = chunk.max(1).min(self.len() - start);
            let hits = super::search(queries, &self.rows(start, n), k, 1024)?;
            for (b, h) in best.iter_mut().zip(hits) {
                b.extend(h.into_iter().map(|(i, s)| (start + i, s)));
                b.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                b.truncate(k);
            }
            start += n;
        }
        Ok(best)
    }

    /// An HNSW graph over every row (built in memory: the graph is not stored); `ef_search`
    /// (the candidate list while searching) trades speed for recall.
    pub fn hnsw(&self, ef_construction: usize, ef_search: usize, seed: u64) -> Result<Hnsw> {
        let mut points = Vec::with_capacity(self.len());
        let step = 4096;
        let mut start = 0;
        while start < self.len() {
            let n = step.min(self.len() - start);
            let flat = Vec::<f32>::try_from(self.rows(start, n).flatten(0, -1))
                .map_err(|e| Error::Invalid(format!("reading index rows: {e}")))?;
            points.extend(flat.chunks(self.meta.dim.max(1)).map(|r| Point(r.to_vec())));
            start += n;
        }
        let rows: Vec<usize> = (0..points.len()).collect();
        let map = instant_distance::Builder::default()
            .ef_construction(ef_construction)
            .ef_search(ef_search)
            .seed(seed)
            .build(points, rows);
        Ok(Hnsw { map })
    }
}

/// A row for HNSW: distance is 1 − inner product (cosine distance of normalised rows).
#[derive(Clone, Debug)]
pub struct Point(pub Vec<f32>);

impl instant_distance::Point for Point {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum::<f32>()
    }
}

pub struct Hnsw {
    map: instant_distance::HnswMap<Point, usize>,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hnsw")
    }
}

impl Hnsw {
    /// The approximately best `k` rows for `query`, best first: (row, score).
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut s = instant_distance::Search::default();
        self.map
            .search(&Point(query.to_vec()), &mut s)
            .take(k)
            .map(|item| (*item.value, 1.0 - item.distance))
            .collect()
    }
}

/// Recall@k of approximate hits against exact ones: the share of exact top-k rows found.
pub fn recall(approx: &[Vec<(usize, f32)>], exact: &[Vec<(usize, f32)>], k: usize) -> f64 {
    let (mut found, mut total) = (0usize, 0usize);
    for (a, e) in approx.iter().zip(exact) {
        let want: std::collections::HashSet<usize> = e.iter().take(k).map(|h| h.0).collect();
        found += a.iter().take(k).filter(|h| want.contains(&h.0)).count();
        total += want.len();
    }
    found as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: i64, d: i64) -> Tensor {
        tch::manual_seed(7);
        let r = Tensor::randn([n, d], (Kind::Float, tch::Device::Cpu));
        &r / r.norm_scalaropt_dim(2, [-1], true)
    }

    fn meta(dim: usize, count: usize, dtype: &str) -> Meta {
        Meta {
            model: "test".into(),
            dim,
            count,
            dtype: dtype.into(),
            query_instruction: String::new(),
        }
    }

    #[test]
    fn mapped_exact_search_equals_in_memory_search() {
        let (n, d) = (400, 24);
        let data = rows(n, d);
        let q = data.narrow(0, 0, 37) + 0.3 * rows(37, d);
        let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
        let want = super::super::search(&q, &data, 10, 16).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        for dtype in ["f32", "f16"] {
            let dir = tmp.path().join(dtype);
            Index::write(&dir, &ids, &data, meta(d as usize, n as usize, dtype)).unwrap();
            assert!(Index::write(&dir, &ids, &data, meta(d as usize, n as usize, dtype)).is_err());
            let idx = Index::open(&dir).unwrap();
            assert_eq!(idx.ids, ids);
            // Chunks of 77 rows: the merge across chunks must give the one-shot answer.
            let got = idx.search(&q, 10, 77).unwrap();
            for (g, w) in got.iter().zip(&want) {
                let tol = if dtype == "f32" { 1e-6 } else { 2e-3 };
                for (a, b) in g.iter().zip(w) {
                    assert!((a.1 - b.1).abs() < tol, "{dtype}: {a:?} vs {b:?}");
                }
                if dtype == "f32" {
                    assert_eq!(
                        g.iter().map(|h| h.0).collect::<Vec<_>>(),
                        w.iter().map(|h| h.0).collect::<Vec<_>>()
                    );
                }
            }
            let hnsw = idx.hnsw(64, 32, 1).unwrap();
            let flat = Vec::<f32>::try_from(q.flatten(0, -1)).unwrap();
            let approx: Vec<_> = flat
                .chunks(d as usize)
                .map(|r| hnsw.search(r, 10))
                .collect();
            let r = recall(&approx, &got, 10);
            assert!(r > 0.9, "{dtype}: HNSW recall@10 {r}");
        }
        // A truncated file is an error naming it, not a crash.
        let p = tmp.path().join("f32").join(WEIGHTS);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 8]).unwrap();
        let e = Index::open(&tmp.path().join("f32"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(WEIGHTS), "{e}");
    }
}
