//! C4's line and document rules (Raffel et al. 2020, "Exploring the Limits of Transfer
//! Learning with a Unified Text-to-Text Transformer", section 2.2), with datatrove 0.10.1's
//! defaults. Lines failing a line rule are removed; some rules drop the whole document.

use super::text::{is_py_space, is_terminal_punctuation, splitlines};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C4Config {
    pub remove_citations: bool,
    pub filter_no_terminal_punct: bool,
    /// Sentences the kept lines must add up to; `None` disables.
    pub min_num_sentences: Option<usize>,
    pub min_words_per_line: Option<usize>,
    pub max_word_length: Option<usize>,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
    /// Also accept Chinese/Japanese sentence ends (`。！？…`) as terminal punctuation; C4 was
    /// English-only, where this changes nothing.
    pub cjk_terminal_punct: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        C4Config {
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: Some(5),
            min_words_per_line: Some(3),
            max_word_length: Some(1000),
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
            cjk_terminal_punct: true,
        }
    }
}

const END_PUNCT: [char; 5] = ['.', '?', '!', '"', '\''];
const CJK_END: [char; 6] = ['。', '！', '？', '”', '」', '…'];
const POLICY: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

fn citation() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\[\d*\]|\[edit\]|\[citation needed\]").expect("valid"))
}

/// Counts sentences the way spaCy's sentencizer does: a new one starts at the first
/// non-punctuation token after a sentence-ending mark.
pub fn count_sentences(text: &str) -> usize {
    let mut count = 1;
    let mut seen_end = false;
    for c in text.chars() {
        if is_terminal_punctuation(c) || CJK_END.contains(&c) {
            seen_end = true;
        } else if seen_end
            && !is_py_space(c)
            && !c.is_ascii_punctuation()
            && !matches!(c, '”' | '」' | '’')
        {
            count += 1;
            seen_end = false;
        }
    }
    count
}

/// The outcome of the C4 rules: the rewritten text, or a drop reason.
pub fn apply(cfg: &C4Config, text: &str) -> Result<String, &'static str> {
    let mut kept: Vec<String> = Vec::new();
    let mut sentences = 0usize;
    for raw in splitlines(text) {
        let line = raw.trim_matches(is_py_space);
        let words: Vec<&str> = line.split(is_py_space).filter(|w| !w.is_empty()).collect();
        if cfg
            .max_word_length
            .is_some_and(|m| words.iter().any(|w| w.chars().count() > m))
        {
            continue;
        }
        let line = if cfg.remove_citations {
            citation().replace_all(line, "").into_owned()
        } else {
            line.to_string()
        };
        if cfg.filter_no_terminal_punct {
            let ends =
                line.ends_with(END_PUNCT) || (cfg.cjk_terminal_punct && line.ends_with(CJK_END));
            if !ends || line.ends_with("...") {
                continue;
            }
        }
        // A CJK line has no spaces between words: count its characters as words.
        let n_words = if cfg.cjk_terminal_punct && line.chars().any(super::text::is_cjk) {
            super::text::words(&line).len()
        } else {
            words.len()
        };
        if cfg.min_words_per_line.is_some_and(|m| n_words < m) {
            continue;
        }
        let lower = line.to_lowercase();
        if cfg.filter_lorem_ipsum && lower.contains("lorem ipsum") {
            return Err("lorem_ipsum");
        }
        if cfg.filter_javascript && lower.contains("javascript") {
            continue;
        }
        if cfg.filter_curly_bracket && line.contains('{') {
            return Err("curly_bracket");
        }
        if cfg.filter_policy && POLICY.iter().any(|p| lower.contains(p)) {
            continue;
        }
        sentences += count_sentences(&line);
        kept.push(line);
    }
    if cfg.min_num_sentences.is_some_and(|m| sentences < m) {
        return Err("too_few_sentences");
    }
    Ok(kept.join("\n").trim_matches(is_py_space).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_lines_and_counts_sentences() {
        let text = "This is a proper sentence. And another one here.\n\
                    short\n\
                    Please enable JavaScript to view this page.\n\
                    A cited claim is here[1]. It has two sentences.\n\
                    Read our privacy policy today.\n\
                    The final line ends well! Truly it does.";
        let out = apply(&C4Config::default(), text).unwrap();
        assert_eq!(
            out,
            "This is a proper sentence. And another one here.\nA cited claim is here. It has two sentences.\nThe final line ends well! Truly it does."
        );
        assert_eq!(
            apply(&C4Config::default(), "One sentence only here."),
            Err("too_few_sentences")
        );
        let code = "Some text here and there. More text is here.\nfunction() { return 1; }.";
        assert_eq!(apply(&C4Config::default(), code), Err("curly_bracket"));
    }

    #[test]
    fn chinese_lines_end_with_chinese_marks() {
        let zh = "今天天气很好。我们去公园散步。\n大家都很开心！孩子们在草地上玩耍。\n晚上回家吃饭？是的。";
        assert_eq!(apply(&C4Config::default(), zh).as_deref(), Ok(zh));
        assert_eq!(count_sentences("一。二！三？"), 3);
    }
}
