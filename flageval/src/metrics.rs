//! Per-item metrics as lm-eval-harness computes them for multiple choice, and the standard
//! error of a mean (sample standard deviation over √n, as lm-eval's `mean_stderr`).

/// Index of the largest value; the first on ties (NumPy's argmax).
fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// `acc`, `acc_norm` (log-likelihood over the choice's characters) and `acc_bytes` (over its
/// UTF-8 bytes) of one item, from each choice's log-likelihood.
pub fn multiple_choice(lls: &[f64], choices: &[String], gold: usize) -> [(&'static str, f64); 3] {
    let hit = |i: usize| if i == gold { 1.0 } else { 0.0 };
    let pred = argmax(lls.iter().copied());
    let chars = argmax(
        lls.iter()
            .zip(choices)
            .map(|(l, c)| l / c.chars().count() as f64),
    );
    let bytes = argmax(lls.iter().zip(choices).map(|(l, c)| l / c.len() as f64));
    [
        ("acc", hit(pred)),
        ("acc_norm", hit(chars)),
        ("acc_bytes", hit(bytes)),
    ]
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Standard error of the mean: √(Σ(x − μ)² / (n − 1)) / √n.
pub fn mean_stderr(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let mu = mean(v);
    (v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_uses_characters_and_bytes() {
        // "Paris" (5 chars, 5 bytes) vs "北京市" (3 chars, 9 bytes): per character Paris wins
        // (−1.1 > −1.33), per byte 北京市 does (−0.44 > −1.1), raw 北京市 too.
        let choices = ["Paris".to_string(), "北京市".to_string()];
        let lls = [-5.5, -4.0];
        let m = multiple_choice(&lls, &choices, 0);
        assert_eq!(m, [("acc", 0.0), ("acc_norm", 1.0), ("acc_bytes", 0.0)]);
        // Ties go to the first choice.
        assert_eq!(multiple_choice(&[-1.0, -1.0], &choices, 0)[0].1, 1.0);
    }

    #[test]
    fn stderr_is_lm_evals() {
        // numpy: np.std([1,0,1,1], ddof=1) / sqrt(4) = 0.25
        assert!((mean_stderr(&[1.0, 0.0, 1.0, 1.0]) - 0.25).abs() < 1e-12);
        assert!(mean_stderr(&[1.0]).is_nan());
    }
}
