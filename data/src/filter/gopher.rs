//! Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods,
//! Analysis & Insights from Training Gopher", appendix A), with datatrove 0.10.1's defaults,
//! formulas and drop reasons. Words come from [`words`](super::text::words), which splits
//! Chinese into characters.

use super::text::{char_len, is_punctuation, is_terminal_punctuation, splitlines, words};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Thresholds of the Gopher quality filter; `None` turns a check off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQuality {
    pub min_doc_words: Option<usize>,
    pub max_doc_words: Option<usize>,
    pub min_avg_word_length: Option<f64>,
    pub max_avg_word_length: Option<f64>,
    pub max_symbol_word_ratio: Option<f64>,
    pub max_bullet_lines_ratio: Option<f64>,
    pub max_ellipsis_lines_ratio: Option<f64>,
    pub max_non_alpha_words_ratio: Option<f64>,
    pub min_stop_words: Option<usize>,
    pub stop_words: Vec<String>,
}

impl Default for GopherQuality {
    fn default() -> Self {
        GopherQuality {
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl GopherQuality {
    /// Settings for Chinese: word-length bounds off (a character is a word), and function
    /// characters standing in for English stop words.
    pub fn chinese() -> Self {
        GopherQuality {
            min_avg_word_length: None,
            max_avg_word_length: None,
            stop_words: ["的", "了", "是", "在", "和", "有", "我", "不", "这", "人"]
                .map(String::from)
                .to_vec(),
            ..GopherQuality::default()
        }
    }

    /// `None` keeps the document; `Some(reason)` drops it.
    pub fn check(&self, text: &str) -> Option<&'static str> {
        let words = words(text);
        let n_words = words.len().max(1) as f64;
        let non_symbol: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| {
                w.chars()
                    .any(|c| !(is_punctuation(c) || is_terminal_punctuation(c)))
            })
            .collect();
        let n = non_symbol.len();
        if self.min_doc_words.is_some_and(|m| n < m) {
            return Some("gopher_short_doc");
        }
        if self.max_doc_words.is_some_and(|m| n > m) {
            return Some("gopher_long_doc");
        }
        let avg = non_symbol.iter().map(|w| char_len(w)).sum::<usize>() as f64 / n as f64;
        if self.min_avg_word_length.is_some_and(|m| avg < m) {
            return Some("gopher_below_avg_threshold");
        }
        if self.max_avg_word_length.is_some_and(|m| avg > m) {
            return Some("gopher_above_avg_threshold");
        }
        if let Some(max) = self.max_symbol_word_ratio {
            if text.matches('#').count() as f64 / n_words > max {
                return Some("gopher_too_many_hashes");
            }
            if (text.matches("...").count() + text.matches('…').count()) as f64 / n_words > max {
                return Some("gopher_too_many_ellipsis");
            }
        }
        let lines = splitlines(text);
        let n_lines = lines.len().max(1) as f64;
        if let Some(max) = self.max_bullet_lines_ratio {
            let bullets = lines
                .iter()
                .filter(|l| l.trim_start().starts_with(['•', '-']))
                .count();
            if bullets as f64 / n_lines > max {
                return Some("gopher_too_many_bullets");
            }
        }
        if let Some(max) = self.max_ellipsis_lines_ratio {
            let ends = lines.iter().filter(|l| {
                let l = l.trim_end();
                l.ends_with("...") || l.ends_with('…')
            });
            if ends.count() as f64 / n_lines > max {
                return Some("gopher_too_many_end_ellipsis");
            }
        }
        if let Some(min) = self.max_non_alpha_words_ratio {
            let alpha = words
                .iter()
                .filter(|w| w.chars().any(char::is_alphabetic))
                .count();
            if (alpha as f64) / n_words < min {
                return Some("gopher_below_alpha_threshold");
            }
        }
        if let Some(min) = self.min_stop_words {
            let present: HashSet<&str> = words.iter().copied().collect();
            let found = self
                .stop_words
                .iter()
                .filter(|s| present.contains(s.as_str()))
                .count();
            if found < min {
                return Some("gopher_enough_stop_words");
            }
        }
        None
    }
}

/// Thresholds of the Gopher repetition filter; `None` turns a check off.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetition {
    pub dup_line_frac: Option<f64>,
    pub dup_para_frac: Option<f64>,
    pub dup_line_char_frac: Option<f64>,
    pub dup_para_char_frac: Option<f64>,
    /// `(n, max share)`: the most frequent n-gram's characters × count over the text's.
    pub top_n_grams: Vec<(usize, f64)>,
    /// `(n, max share)`: characters in repeated, non-overlapping n-grams over the text's.
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetition {
    fn default() -> Self {
        GopherRepetition {
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

/// Elements seen before and their characters, counting second and later appearances.
pub fn find_duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = HashSet::new();
    let (mut elems, mut chars) = (0, 0);
    for e in items {
        if !seen.insert(e) {
            elems += 1;
            chars += char_len(e);
        }
    }
    (elems, chars)
}

/// Words as hashes plus their lengths: n-grams are then compared by a rolling polynomial hash
/// of word hashes in O(1) per window, with no strings built (a 64-bit collision among one
/// document's n-grams is negligible). n-grams therefore compare as word sequences; datatrove
/// compares the repeated-n-gram strings with the words run together, which differs only when
/// different splits spell the same characters.
struct Grams {
    hashes: Vec<u64>,
    lens: Vec<usize>,
}

const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

impl Grams {
    fn new(words: &[&str]) -> Self {
        Grams {
            hashes: words
                .iter()
                .map(|w| xxhash_rust::xxh3::xxh3_64(w.as_bytes()))
                .collect(),
            lens: words.iter().map(|w| char_len(w)).collect(),
        }
    }

    /// The hash of every window of `n` words, in order.
    fn windows(&self, n: usize) -> impl Iterator<Item = u64> + '_ {
        let top = (1..n).fold(1u64, |p, _| p.wrapping_mul(BASE));
        let mut h = 0u64;
        self.hashes.iter().enumerate().filter_map(move |(i, &w)| {
            if i >= n {
                h = h.wrapping_sub(self.hashes[i - n].wrapping_mul(top));
            }
            h = h.wrapping_mul(BASE).wrapping_add(w);
            // A final mix spreads the polynomial's low bits for the hash table.
            (i + 1 >= n).then(|| (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        })
    }
}

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Build = std::hash::BuildHasherDefault<PreHashed>;

fn top_duplicate(words: &[&str], grams: &Grams, n: usize) -> usize {
    let mut counts: HashMap<u64, (usize, usize), Build> =
        HashMap::with_capacity_and_hasher(words.len(), Build::default());
    for (i, h) in grams.windows(n).enumerate() {
        counts.entry(h).or_insert((0, i)).0 += 1;
    }
    // Ties go to the n-gram seen first, as Python's Counter.most_common does.
    counts
        .values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|&(count, first)| gram_len(&words[first..first + n]) * count)
        .unwrap_or(0)
}

fn all_duplicate(grams: &Grams, n: usize) -> usize {
    let hashes: Vec<u64> = grams.windows(n).collect();
    let mut seen: HashSet<u64, Build> =
        HashSet::with_capacity_and_hasher(hashes.len(), Build::default());
    let (mut repeated, mut i) = (0usize, 0usize);
    while i < hashes.len() {
        if seen.contains(&hashes[i]) {
            repeated += grams.lens[i..i + n].iter().sum::<usize>();
            i += n;
        } else {
            seen.insert(hashes[i]);
            i += 1;
        }
    }
    repeated
}

/// Characters of an n-gram written out: datatrove joins words with a space; between two CJK
/// characters (our one-character words) no space is written, so Chinese shares stay shares of
/// the text's own characters.
fn gram_len(g: &[&str]) -> usize {
    let cjk = |w: &str| w.chars().count() == 1 && w.chars().all(super::text::is_cjk);
    let spaces = g.windows(2).filter(|p| !(cjk(p[0]) && cjk(p[1]))).count();
    g.iter().map(|w| char_len(w)).sum::<usize>() + spaces
}

impl GopherRepetition {
    pub fn check(&self, text: &str) -> Option<String> {
        if text.is_empty() {
            return Some("empty".into());
        }
        let total = char_len(text) as f64;
        let paragraphs: Vec<&str> = split_paragraphs(text.trim());
        let (pd, pc) = find_duplicates(paragraphs.iter().copied());
        if self
            .dup_para_frac
            .is_some_and(|f| pd as f64 / paragraphs.len() as f64 > f)
        {
            return Some("dup_para_frac".into());
        }
        if self
            .dup_para_char_frac
            .is_some_and(|f| pc as f64 / total > f)
        {
            return Some("dup_para_char_frac".into());
        }
        let lines: Vec<&str> = split_newline_runs(text);
        let (ld, lc) = find_duplicates(lines.iter().copied());
        if self
            .dup_line_frac
            .is_some_and(|f| ld as f64 / lines.len() as f64 > f)
        {
            return Some("dup_line_frac".into());
        }
        if self
            .dup_line_char_frac
            .is_some_and(|f| lc as f64 / total > f)
        {
            return Some("dup_line_char_frac".into());
        }
        let words = words(text);
        let grams = Grams::new(&words);
        for &(n, f) in &self.top_n_grams {
            if n > 0 && words.len() >= n && top_duplicate(&words, &grams, n) as f64 / total > f {
                return Some(format!("top_{n}_gram"));
            }
        }
        for &(n, f) in &self.dup_n_grams {
            if n > 0 && all_duplicate(&grams, n) as f64 / total > f {
                return Some(format!("duplicated_{n}_n_grams"));
            }
        }
        None
    }
}

/// `re.split(r"\n{2,}", text)`.
fn split_paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'\n' && bytes.get(i + 1) == Some(&b'\n') {
            let mut j = i;
            while j < bytes.len() && bytes[j] == b'\n' {
                j += 1;
            }
            out.push(&text[start..i]);
            start = j;
            i = j;
        } else {
            i += 1;
        }
    }
    out.push(&text[start..]);
    out
}

/// `re.split("\n+", text)`.
fn split_newline_runs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('\n') {
        out.push(&rest[..i]);
        rest = rest[i..].trim_start_matches('\n');
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn english(words: usize) -> String {
        let base = "the cat sat with a hat and that is the way of things to have";
        let mut s = String::new();
        let mut n = 0;
        while n < words {
            for (i, w) in base.split(' ').enumerate() {
                s.push_str(w);
                s.push_str(if i % 7 == 6 { ". " } else { " " });
                n += 1;
            }
            s.push_str(&format!("number{n} "));
        }
        s
    }

    #[test]
    fn quality_reasons() {
        let q = GopherQuality::default();
        assert_eq!(q.check("too short"), Some("gopher_short_doc"));
        assert_eq!(q.check(&english(80)), None);
        let hashes = format!("{} {}", english(80), "#tag ".repeat(20));
        assert_eq!(q.check(&hashes), Some("gopher_too_many_hashes"));
        let no_stop = "alpha beta gamma delta epsilon zeta theta iota kappa lambda ".repeat(6);
        assert_eq!(q.check(&no_stop), Some("gopher_enough_stop_words"));
        let digits = "1234 5678 and the ".repeat(30);
        assert_eq!(q.check(&digits), Some("gopher_below_alpha_threshold"));
    }

    #[test]
    fn quality_in_chinese_counts_characters() {
        let zh =
            "今天的天气很好，我们在公园里散步，看见了很多人。这是一个美好的周末，大家都很开心。"
                .repeat(3);
        assert_eq!(GopherQuality::chinese().check(&zh), None);
        assert_eq!(
            GopherQuality::chinese().check("你好世界"),
            Some("gopher_short_doc")
        );
        assert_eq!(
            GopherQuality::default().check(&zh),
            Some("gopher_below_avg_threshold")
        );
    }

    #[test]
    fn repetition_matches_datatrove_cases() {
        let r = GopherRepetition::default();
        // Cases checked against datatrove 0.10.1: a lone 2-gram is 100% of the text.
        assert_eq!(r.check("hello world").as_deref(), Some("top_2_gram"));
        assert_eq!(r.check("\nabc\n").as_deref(), Some("dup_line_frac"));
        assert_eq!(r.check("").as_deref(), Some("empty"));
        let para = "A paragraph that says one thing.\n\n";
        let doc = format!("{para}{para}{para}Something else entirely here.");
        assert_eq!(r.check(&doc).as_deref(), Some("dup_para_frac"));
    }

    #[test]
    fn duplicate_helpers() {
        assert_eq!(find_duplicates(["a", "bb", "a", "bb", "bb"]), (3, 5));
        let dup = |w: &[&str], n| all_duplicate(&Grams::new(w), n);
        let top = |w: &[&str], n| top_duplicate(w, &Grams::new(w), n);
        assert_eq!(dup(&["a", "b", "a", "b", "a", "b"], 2), 4);
        assert_eq!(dup(&["a", "b", "c", "a", "b", "c", "d"], 3), 3);
        assert_eq!(dup(&["a", "b"], 3), 0);
        assert_eq!(top(&["x", "y", "x", "y"], 2), 6);
        assert_eq!(top(&["中", "国", "中", "国"], 2), 4);
        assert_eq!(top(&["p", "q", "r", "s"], 2), 3);
        assert_eq!(split_paragraphs("a\n\n\nb\nc"), ["a", "b\nc"]);
        assert_eq!(split_newline_runs("\na\n\nb"), ["", "a", "b"]);
    }
}
