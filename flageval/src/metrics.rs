//! Metrics as lm-eval-harness computes them: per-item values (`acc`, `acc_norm` over the
//! choice's characters, `acc_bytes`, `exact_match` with Hugging Face `evaluate`'s options,
//! token `f1` of a generation, log-likelihoods with their word and byte counts) and the
//! aggregations over items (mean, perplexity, weighted perplexity, bits per byte, binary F1,
//! Matthews correlation), with standard errors: closed form for means, seeded bootstrap for
//! the rest.

/// Index of the largest value; the first on ties (NumPy's argmax).
pub fn argmax(v: impl Iterator<Item = f64>) -> usize {
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

/// Words of a text as lm-eval counts them for `word_perplexity` (`re.split(r"\s+", text)`:
/// leading or trailing whitespace adds an empty piece).
pub fn word_count(text: &str) -> usize {
    let mut n = 1;
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                n += 1;
            }
            in_space = true;
        } else {
            in_space = false;
        }
    }
    n
}

/// `exact_match` of a prediction against a reference with `evaluate`'s options: the regexes
/// are removed first, then case and punctuation (ASCII, Python's `string.punctuation`) and
/// digits as asked.
pub fn exact_match(
    pred: &str,
    reference: &str,
    spec: &crate::task::config::MetricSpec,
    regexes: &[regex::Regex],
) -> f64 {
    let norm = |s: &str| {
        let mut s = s.to_string();
        for r in regexes {
            s = r.replace_all(&s, "").into_owned();
        }
        if spec.ignore_case {
            s = s.to_lowercase();
        }
        if spec.ignore_punctuation {
            s.retain(|c| !c.is_ascii_punctuation());
        }
        if spec.ignore_numbers {
            s.retain(|c| !c.is_ascii_digit());
        }
        s
    };
    f64::from(u8::from(norm(pred) == norm(reference)))
}

/// SQuAD's token F1 of a generation: lower-cased, punctuation and articles dropped, split on
/// whitespace; the harmonic mean of token precision and recall (1 when both are empty).
pub fn token_f1(pred: &str, reference: &str) -> f64 {
    let tokens = |s: &str| -> Vec<String> {
        let mut s = s.to_lowercase();
        s.retain(|c| !c.is_ascii_punctuation());
        s.split_whitespace()
            .filter(|w| !matches!(*w, "a" | "an" | "the"))
            .map(str::to_string)
            .collect()
    };
    let (p, r) = (tokens(pred), tokens(reference));
    if p.is_empty() || r.is_empty() {
        return f64::from(u8::from(p == r));
    }
    let mut left: std::collections::HashMap<&str, usize> = Default::default();
    for w in &r {
        *left.entry(w).or_default() += 1;
    }
    let mut same = 0;
    for w in &p {
        if let Some(n) = left.get_mut(w.as_str()).filter(|n| **n > 0) {
            *n -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let (precision, recall) = (same as f64 / p.len() as f64, same as f64 / r.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

/// An item's value: `(x, 1)` for per-item scores, `(log-likelihood, words or bytes)` for
/// weighted perplexities, `(gold, prediction)` for F1 and MCC.
pub type ItemValue = (f64, f64);

/// Aggregates item values with lm-eval's aggregation `name`.
pub fn aggregate(name: &str, items: &[ItemValue]) -> Option<f64> {
    let n = items.len() as f64;
    let sum = |f: fn(&ItemValue) -> f64| items.iter().map(f).sum::<f64>();
    Some(match name {
        "mean" => sum(|v| v.0) / n,
        "perplexity" => (-sum(|v| v.0) / n).exp(),
        "weighted_perplexity" => (-sum(|v| v.0) / sum(|v| v.1)).exp(),
        "bits_per_byte" => -sum(|v| v.0) / sum(|v| v.1) / std::f64::consts::LN_2,
        "f1" => {
            // Binary F1 with 1 as the positive label (scikit-learn's f1_score).
            let count = |g: f64, p: f64| items.iter().filter(|v| v.0 == g && v.1 == p).count();
            let (tp, fp, fn_) = (count(1.0, 1.0), count(0.0, 1.0), count(1.0, 0.0));
            if tp == 0 {
                0.0
            } else {
                2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
            }
        }
        "matthews_corrcoef" => {
            let count =
                |g: f64, p: f64| items.iter().filter(|v| v.0 == g && v.1 == p).count() as f64;
            let (tp, tn, fp, fn_) = (
                count(1.0, 1.0),
                count(0.0, 0.0),
                count(0.0, 1.0),
                count(1.0, 0.0),
            );
            let d = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
            if d == 0.0 {
                0.0
            } else {
                (tp * tn - fp * fn_) / d
            }
        }
        _ => return None,
    })
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

/// The standard error of an aggregation: closed form for a mean; otherwise (lm-eval reports
/// "N/A" for weighted perplexities and bits per byte; we bootstrap them too) the sample
/// standard deviation of the aggregation over `iters` resamples (with replacement) drawn
/// from a generator seeded with `seed`. NaN when it cannot be estimated (`iters` 0, n < 2).
pub fn stderr(name: &str, items: &[ItemValue], iters: usize, seed: u64) -> f64 {
    if name == "mean" {
        return mean_stderr(&items.iter().map(|v| v.0).collect::<Vec<_>>());
    }
    if iters == 0 || items.len() < 2 {
        return f64::NAN;
    }
    let mut rng = Rng::new(seed);
    let mut sample = vec![(0.0, 0.0); items.len()];
    let stats: Vec<f64> = (0..iters)
        .filter_map(|_| {
            for s in sample.iter_mut() {
                *s = items[rng.below(items.len())];
            }
            aggregate(name, &sample).filter(|v| v.is_finite())
        })
        .collect();
    mean_stderr(&stats) * (stats.len() as f64).sqrt()
}

/// lm-eval's pooled standard error of a group's mean from its tasks' standard errors and
/// sizes (pooled variance).
pub fn pooled_stderr(stderrs: &[f64], sizes: &[usize]) -> f64 {
    let total: usize = sizes.iter().sum();
    if total <= sizes.len() {
        return f64::NAN;
    }
    let var: f64 = stderrs
        .iter()
        .zip(sizes)
        .map(|(se, &n)| (n as f64 - 1.0) * se * se * n as f64)
        .sum::<f64>()
        / (total - sizes.len()) as f64;
    (var / total as f64).sqrt()
}

pub use flagcore::rng::Rng;

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
