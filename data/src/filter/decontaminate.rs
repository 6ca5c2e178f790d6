//! Decontamination: drop documents sharing an n-gram (13 by default, as GPT-3 and lm-eval's
//! decontamination do) with any evaluation item, so benchmarks stay unseen in training.

use super::text::{is_punctuation, is_terminal_punctuation, words};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecontaminateConfig {
    /// Evaluation sets: `.jsonl` (every string value of a record), `.csv` (every cell of a
    /// row, header skipped), `.json` (an array of records) or `.txt` (one item per line).
    pub eval_files: Vec<PathBuf>,
    #[serde(default = "default_n")]
    pub n: usize,
}

fn default_n() -> usize {
    13
}

/// Normalised tokens: lower case, punctuation dropped (Chinese split into characters).
fn tokens(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| {
            w.chars().any(|c| {
                !(is_punctuation(c)
                    || is_terminal_punctuation(c)
                    || "，、；：“”‘’（）《》【】".contains(c))
            })
        })
        .map(str::to_lowercase)
        .collect()
}

fn ngram_hashes(text: &str, n: usize) -> impl Iterator<Item = u64> {
    let toks = tokens(text);
    let count = toks.len().saturating_sub(n - 1);
    (0..if toks.len() >= n { count } else { 0 }).map(move |i| {
        let joined = toks[i..i + n].join("\u{1}");
        xxhash_rust::xxh3::xxh3_64(joined.as_bytes())
    })
}

/// The n-gram set of the evaluation data.
#[derive(Debug)]
pub struct Decontaminator {
    n: usize,
    grams: HashSet<u64>,
    pub items: usize,
}

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn items(path: &Path) -> Result<Vec<String>> {
    let name = path.to_string_lossy().to_lowercase();
    let text = || std::fs::read_to_string(path).map_err(|e| Error::io(path, e));
    let mut out = Vec::new();
    if name.ends_with(".csv") {
        let mut rdr =
            csv::Reader::from_path(path).map_err(|e| Error::format(path, "open", e.to_string()))?;
        for (i, row) in rdr.records().enumerate() {
            let row =
                row.map_err(|e| Error::format(path, format!("row {}", i + 2), e.to_string()))?;
            out.push(row.iter().collect::<Vec<_>>().join(" "));
        }
    } else if name.ends_with(".jsonl") {
        for (i, line) in text()?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::format(path, format!("line {}", i + 1), e.to_string()))?;
            let mut parts = Vec::new();
            strings(&v, &mut parts);
            out.push(parts.join(" "));
        }
    } else if name.ends_with(".json") {
        let v: serde_json::Value = serde_json::from_str(&text()?)
            .map_err(|e| Error::format(path, "json", e.to_string()))?;
        let records = match v {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        };
        for r in records {
            let mut parts = Vec::new();
            strings(&r, &mut parts);
            out.push(parts.join(" "));
        }
    } else {
        out.extend(
            text()?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    Ok(out)
}

impl Decontaminator {
    pub fn load(cfg: &DecontaminateConfig) -> Result<Self> {
        if cfg.n == 0 {
            return Err(Error::Invalid("decontaminate: n must be at least 1".into()));
        }
        let mut grams = HashSet::new();
        let mut count = 0;
        for f in &cfg.eval_files {
            for item in items(f)? {
                count += 1;
                grams.extend(ngram_hashes(&item, cfg.n));
            }
        }
        Ok(Decontaminator {
            n: cfg.n,
            grams,
            items: count,
        })
    }

    pub fn ngrams(&self) -> usize {
        self.grams.len()
    }

    /// True when the text shares an n-gram with the evaluation data.
    pub fn contaminated(&self, text: &str) -> bool {
        ngram_hashes(text, self.n).any(|h| self.grams.contains(&h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_shared_13_grams_in_chinese_and_english() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("eval.csv");
        std::fs::write(
            &csv,
            "问题,答案\n“光阴”与“岁月” 这两个词语具有以下哪种语义关系？,A\n",
        )
        .unwrap();
        let txt = dir.path().join("eval.txt");
        std::fs::write(
            &txt,
            "What is the capital city of the country that hosted the 2008 summer olympic games\n",
        )
        .unwrap();
        let d = Decontaminator::load(&DecontaminateConfig {
            eval_files: vec![csv, txt],
            n: 13,
        })
        .unwrap();
        assert_eq!(d.items, 2);
        assert!(d.contaminated("考试题：“光阴”与“岁月”这两个词语具有以下哪种语义关系呢"));
        assert!(!d.contaminated("光阴似箭，岁月如梭，这两个词语常常一起出现在文章里。"));
        assert!(d.contaminated("Quiz: WHAT is the capital city of the country that hosted the 2008 Summer Olympic games?"));
        assert!(!d.contaminated("The capital city hosted many games."));
    }
}
