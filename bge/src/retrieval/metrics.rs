//! Retrieval metrics as `trec_eval` (and so `pytrec_eval` and MTEB) computes them, per query:
//! nDCG@k with linear gains (MTEB's main retrieval score at k = 10), MAP@k (average precision
//! over the top k, divided by all relevant documents), MRR@k and Recall@k. Averages are over
//! the queries that have relevant documents.

use std::collections::HashMap;

/// Relevance judgements of one query: document id → relevance (> 0 is relevant).
pub type Qrels = HashMap<String, i64>;

fn rel(qrels: &Qrels, doc: &str) -> i64 {
    qrels.get(doc).copied().unwrap_or(0).max(0)
}

/// nDCG@k: Σ rel_i / log2(i + 2) over the ranking's top k, over the same sum for the ideal
/// ordering of the judged documents.
pub fn ndcg_at(ranking: &[String], qrels: &Qrels, k: usize) -> f64 {
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| rel(qrels, d) as f64 / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<i64> = qrels.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &r)| r as f64 / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

fn relevant_count(qrels: &Qrels) -> usize {
    qrels.values().filter(|&&r| r > 0).count()
}

/// Average precision over the top k: Σ precision@i at each relevant rank i ≤ k, over the
/// number of relevant documents.
pub fn map_at(ranking: &[String], qrels: &Qrels, k: usize) -> f64 {
    let total = relevant_count(qrels);
    if total == 0 {
        return 0.0;
    }
    let mut hits = 0;
    let mut sum = 0.0;
    for (i, d) in ranking.iter().take(k).enumerate() {
        if rel(qrels, d) > 0 {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    sum / total as f64
}

/// Reciprocal rank of the first relevant document within the top k (0 when none).
pub fn mrr_at(ranking: &[String], qrels: &Qrels, k: usize) -> f64 {
    ranking
        .iter()
        .take(k)
        .position(|d| rel(qrels, d) > 0)
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Relevant documents in the top k over all relevant documents.
pub fn recall_at(ranking: &[String], qrels: &Qrels, k: usize) -> f64 {
    let total = relevant_count(qrels);
    if total == 0 {
        return 0.0;
    }
    let found = ranking.iter().take(k).filter(|d| rel(qrels, d) > 0).count();
    found as f64 / total as f64
}

/// Mean of each metric over the queries with relevant documents: (name, value) pairs for
/// nDCG@10, MAP@10, MRR@10 and Recall@1/10/100.
pub fn evaluate(
    rankings: &HashMap<String, Vec<String>>,
    qrels: &HashMap<String, Qrels>,
) -> Vec<(String, f64)> {
    let judged: Vec<(&String, &Qrels)> = qrels
        .iter()
        .filter(|(_, q)| relevant_count(q) > 0)
        .collect();
    let empty = Vec::new();
    type Metric = fn(&[String], &Qrels, usize) -> f64;
    let metrics: [(&str, Metric, usize); 6] = [
        ("ndcg_at_10", ndcg_at, 10),
        ("map_at_10", map_at, 10),
        ("mrr_at_10", mrr_at, 10),
        ("recall_at_1", recall_at, 1),
        ("recall_at_10", recall_at, 10),
        ("recall_at_100", recall_at, 100),
    ];
    metrics
        .iter()
        .map(|(name, f, k)| {
            let total: f64 = judged
                .iter()
                .map(|(q, rels)| f(rankings.get(*q).unwrap_or(&empty), rels, *k))
                .sum();
            (name.to_string(), total / judged.len().max(1) as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_values() {
        // Relevant: d1 (2), d3 (1), d9 (1, never retrieved). Ranking: d3 d2 d1 d4.
        let q: Qrels = [("d1", 2), ("d3", 1), ("d9", 1)]
            .iter()
            .map(|(d, r)| (d.to_string(), *r))
            .collect();
        let r = v(&["d3", "d2", "d1", "d4"]);
        // DCG = 1/log2(2) + 2/log2(4) = 1 + 1 = 2; IDCG = 2/1 + 1/log2(3) + 1/log2(4)
        let idcg = 2.0 + 1.0 / 3f64.log2() + 0.5;
        assert!((ndcg_at(&r, &q, 10) - 2.0 / idcg).abs() < 1e-12);
        // AP = (1/1 + 2/3) / 3
        assert!((map_at(&r, &q, 10) - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(mrr_at(&r, &q, 10), 1.0);
        assert_eq!(mrr_at(&v(&["d2", "d4", "d1"]), &q, 10), 1.0 / 3.0);
        assert_eq!(mrr_at(&v(&["d2", "d4", "d1"]), &q, 2), 0.0);
        assert!((recall_at(&r, &q, 1) - 1.0 / 3.0).abs() < 1e-12);
        assert!((recall_at(&r, &q, 10) - 2.0 / 3.0).abs() < 1e-12);
        // Cut at 2: DCG = 1, IDCG@2 = 2 + 1/log2(3)
        assert!((ndcg_at(&r, &q, 2) - 1.0 / (2.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        // A query without relevant documents is left out of the averages.
        let rankings: HashMap<String, Vec<String>> =
            [("a".to_string(), r.clone()), ("b".to_string(), v(&["x"]))].into();
        let qrels: HashMap<String, Qrels> = [
            ("a".to_string(), q.clone()),
            ("b".to_string(), Qrels::new()),
        ]
        .into();
        let m = evaluate(&rankings, &qrels);
        assert_eq!(m[2], ("mrr_at_10".to_string(), 1.0));
    }
}
