//! FineWeb's quality rules (Penedo et al. 2024, "The FineWeb Datasets"), with datatrove
//! 0.10.1's defaults: line-ending punctuation, short lines, duplicated line characters and
//! list-like documents.

use super::gopher::find_duplicates;
use super::text::{char_len, is_terminal_punctuation, words};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FineWebConfig {
    pub line_punct_thr: f64,
    pub line_punct_exclude_zero: bool,
    pub short_line_thr: f64,
    pub short_line_length: usize,
    pub char_duplicates_ratio: f64,
    pub new_line_ratio: f64,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        FineWebConfig {
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
        }
    }
}

pub fn check(cfg: &FineWebConfig, text: &str) -> Option<&'static str> {
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Some("empty");
    }
    let n = lines.len() as f64;
    let ending = lines
        .iter()
        .filter(|l| l.chars().last().is_some_and(is_terminal_punctuation))
        .count() as f64
        / n;
    if ending < cfg.line_punct_thr && !(ending == 0.0 && cfg.line_punct_exclude_zero) {
        return Some("line_punct_ratio");
    }
    let short = lines
        .iter()
        .filter(|l| char_len(l) <= cfg.short_line_length)
        .count() as f64
        / n;
    if short > cfg.short_line_thr {
        return Some("short_line_ratio");
    }
    let non_newline = text.chars().filter(|&c| c != '\n').count().max(1) as f64;
    if find_duplicates(lines.iter().copied()).1 as f64 / non_newline > cfg.char_duplicates_ratio {
        return Some("char_dup_ratio");
    }
    let n_words = words(text).len().max(1) as f64;
    if text.matches('\n').count() as f64 / n_words > cfg.new_line_ratio {
        return Some("list_ratio");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let cfg = FineWebConfig::default();
        let good = "This is a long enough line of running prose that ends well.\nAnother long line of prose follows it, also ending properly.";
        assert_eq!(check(&cfg, good), None);
        assert_eq!(check(&cfg, "no punctuation at all on this rather long line here\nnor here on this second long line of text"), Some("line_punct_ratio"));
        assert_eq!(
            check(
                &cfg,
                "Short.\nTiny.\nSmall.\nA much longer line of text that goes on and on and on."
            ),
            Some("short_line_ratio")
        );
        let dup = format!("{good}\n{good}");
        assert_eq!(check(&cfg, &dup), Some("char_dup_ratio"));
        assert_eq!(check(&cfg, " \n "), Some("empty"));
    }
}
