//! Semantic textual similarity: Spearman's rank correlation between the cosine similarity of
//! each pair's embeddings and its gold score (MTEB's STS main score), over JSON lines
//! `{"sentence1", "sentence2", "score"}`.

use crate::{Encoder, Error, Result};
use std::path::Path;

/// Ranks 1..n with ties sharing their average rank (as `scipy.stats.rankdata`).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = avg;
        }
        i = j + 1;
    }
    out
}

pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Spearman's ρ: Pearson's r of the (tie-averaged) ranks.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Reads the pairs; an error names the file and line.
pub fn read_pairs(path: &Path) -> Result<Vec<(String, String, f64)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fail = |m: String| Error::File {
            path: path.to_path_buf(),
            message: format!("line {}: {m}", i + 1),
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| fail(e.to_string()))?;
        let s = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| fail(format!("no `{k}` string")))
        };
        let score = v["score"]
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| fail("no finite `score` number".into()))?;
        out.push((s("sentence1")?, s("sentence2")?, score));
    }
    if out.len() < 2 {
        return Err(Error::File {
            path: path.to_path_buf(),
            message: "a correlation needs at least two pairs".into(),
        });
    }
    Ok(out)
}

/// (Spearman, Pearson) of cosine similarities against gold scores.
pub fn evaluate(encoder: &Encoder, pairs: &[(String, String, f64)]) -> Result<(f64, f64)> {
    let a: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
    let b: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    let (ea, eb) = (encoder.encode(&a)?, encoder.encode(&b)?);
    let cos: Vec<f64> = ea
        .iter()
        .zip(&eb)
        .map(|(x, y)| {
            let dot: f64 = x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum();
            let nx = x.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let ny = y.iter().map(|q| (*q as f64).powi(2)).sum::<f64>().sqrt();
            dot / (nx * ny).max(1e-30)
        })
        .collect();
    let gold: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    Ok((spearman(&cos, &gold), pearson(&cos, &gold)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties_and_spearman_by_hand() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), [2.5, 4.0, 2.5, 1.0]);
        // a = [1, 2, 3, 4, 5], b = [5, 6, 7, 8, 7]: ranks of b are [1, 2, 3.5, 5, 3.5];
        // centred ranks give covariance 8, variances 10 and 9.5: ρ = 8 / sqrt(95).
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
        assert!((r - 8.0 / (10.0f64 * 9.5).sqrt()).abs() < 1e-12, "{r}");
        assert!((spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]) + 1.0).abs() < 1e-12);
    }
}
