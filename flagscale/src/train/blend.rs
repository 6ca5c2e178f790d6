//! Megatron's blending of datasets by weight: slot i goes to the dataset whose share so far
//! lags its weight most (largest `w·(i+1) − count`), so any prefix of the blend follows the
//! weights as closely as whole samples allow.

/// For `n` slots, which dataset each takes and that dataset's running sample index.
pub fn blending_indices(weights: &[f64], n: usize) -> Vec<(usize, usize)> {
    let total: f64 = weights.iter().sum();
    let w: Vec<f64> = weights.iter().map(|x| x / total).collect();
    let mut counts = vec![0usize; w.len()];
    (0..n)
        .map(|i| {
            let pick = (0..w.len())
                .max_by(|&a, &b| {
                    let ea = w[a] * (i + 1) as f64 - counts[a] as f64;
                    let eb = w[b] * (i + 1) as f64 - counts[b] as f64;
                    // Ties go to the first dataset, as numpy's argmax does.
                    ea.partial_cmp(&eb)
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(b.cmp(&a))
                })
                .unwrap_or(0);
            counts[pick] += 1;
            (pick, counts[pick] - 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_weights() {
        let idx = blending_indices(&[0.6, 0.4], 10);
        let picks: Vec<usize> = idx.iter().map(|p| p.0).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0, 0, 1, 0, 1, 0]);
        assert_eq!(idx[6], (1, 2));
        let many = blending_indices(&[1.0, 2.0, 7.0], 1000);
        let c2 = many.iter().filter(|p| p.0 == 2).count();
        assert_eq!(c2, 700);
        // A longer blend starts with the shorter one (resumed runs may grow).
        assert_eq!(&blending_indices(&[1.0, 2.0, 7.0], 1500)[..1000], &many[..]);
    }
}
