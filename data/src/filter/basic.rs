//! Length bounds and language identification.

use serde::{Deserialize, Serialize};

/// Bounds on characters (Unicode scalar values) and words; unset bounds do not apply.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LengthConfig {
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
    pub min_words: Option<usize>,
    pub max_words: Option<usize>,
}

pub fn check_length(cfg: &LengthConfig, text: &str) -> Option<&'static str> {
    let chars = text.chars().count();
    if cfg.min_chars.is_some_and(|m| chars < m) {
        return Some("too_short");
    }
    if cfg.max_chars.is_some_and(|m| chars > m) {
        return Some("too_long");
    }
    if cfg.min_words.is_some() || cfg.max_words.is_some() {
        let words = super::text::words(text).len();
        if cfg.min_words.is_some_and(|m| words < m) {
            return Some("too_few_words");
        }
        if cfg.max_words.is_some_and(|m| words > m) {
            return Some("too_many_words");
        }
    }
    None
}

/// Keep documents whose detected language is listed, detected with enough confidence.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LanguageConfig {
    /// ISO 639-1 codes (`zh`, `en`) or 639-3 (`cmn`, `eng`); empty keeps every language.
    pub languages: Vec<String>,
    pub min_confidence: f64,
    /// Characters looked at (detection cost grows with text length; the start is enough).
    pub max_chars: usize,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        LanguageConfig {
            languages: vec![],
            min_confidence: 0.65,
            max_chars: 4000,
        }
    }
}

/// The detected language as a short code (`zh` for Mandarin, else ISO 639-3) and confidence.
pub fn detect(text: &str, max_chars: usize) -> Option<(String, f64)> {
    let end = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(i, _)| i);
    let info = whatlang::detect(&text[..end])?;
    let code = match info.lang() {
        whatlang::Lang::Cmn => "zh".to_string(),
        whatlang::Lang::Eng => "en".to_string(),
        other => other.code().to_string(),
    };
    Some((code, info.confidence()))
}

/// ISO 639-1 codes and the ISO 639-3 codes whatlang reports (Mandarin reported as `zh`).
const ISO_639_1: [(&str, &str); 30] = [
    ("en", "eng"),
    ("fr", "fra"),
    ("de", "deu"),
    ("es", "spa"),
    ("pt", "por"),
    ("it", "ita"),
    ("ru", "rus"),
    ("uk", "ukr"),
    ("pl", "pol"),
    ("nl", "nld"),
    ("sv", "swe"),
    ("da", "dan"),
    ("fi", "fin"),
    ("cs", "ces"),
    ("tr", "tur"),
    ("ar", "arb"),
    ("fa", "pes"),
    ("he", "heb"),
    ("hi", "hin"),
    ("bn", "ben"),
    ("ja", "jpn"),
    ("ko", "kor"),
    ("vi", "vie"),
    ("th", "tha"),
    ("id", "ind"),
    ("ms", "zlm"),
    ("el", "ell"),
    ("hu", "hun"),
    ("ro", "ron"),
    ("ta", "tam"),
];

/// A configured language code in the form [`detect`] reports, or `None` if unknown.
pub fn canonical(code: &str) -> Option<String> {
    let c = code.trim().to_ascii_lowercase();
    if matches!(
        c.as_str(),
        "zh" | "cmn" | "zho" | "chi" | "zh-cn" | "zh_hans"
    ) {
        return Some("zh".into());
    }
    if let Some((_, three)) = ISO_639_1
        .iter()
        .find(|(two, three)| *two == c || *three == c)
    {
        return Some(if *three == "eng" {
            "en".into()
        } else {
            three.to_string()
        });
    }
    whatlang::Lang::from_code(&c).map(|l| l.code().to_string())
}

/// Returns the language found (to record in metadata) and a drop reason if it does not pass.
pub fn check_language(cfg: &LanguageConfig, text: &str) -> (Option<(String, f64)>, Option<String>) {
    let found = detect(text, cfg.max_chars);
    let reason = match &found {
        None => Some("language_unknown".to_string()),
        Some((_, score)) if *score < cfg.min_confidence => {
            Some("language_low_confidence".to_string())
        }
        Some((lang, _))
            if !cfg.languages.is_empty()
                && !cfg
                    .languages
                    .iter()
                    .any(|l| canonical(l).as_deref() == Some(lang.as_str())) =>
        {
            Some(format!("language_{lang}"))
        }
        _ => None,
    };
    (found, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds() {
        let cfg = LengthConfig {
            min_chars: Some(3),
            max_chars: Some(5),
            ..Default::default()
        };
        assert_eq!(check_length(&cfg, "中文"), Some("too_short"));
        assert_eq!(check_length(&cfg, "中文中文"), None);
        assert_eq!(check_length(&cfg, "abcdef"), Some("too_long"));
    }

    #[test]
    fn language_codes_in_either_iso_form() {
        assert_eq!(canonical("fr").as_deref(), Some("fra"));
        assert_eq!(canonical("FRA").as_deref(), Some("fra"));
        assert_eq!(canonical("eng").as_deref(), Some("en"));
        assert_eq!(canonical("cmn").as_deref(), Some("zh"));
        assert_eq!(canonical("xx"), None);
        let cfg = LanguageConfig {
            languages: vec!["fr".into()],
            ..Default::default()
        };
        let fr = "Le petit chat est assis sur le tapis et regarde les oiseaux dans le jardin tous les matins.";
        assert_eq!(check_language(&cfg, fr).1, None);
    }

    #[test]
    fn language_identification() {
        let cfg = LanguageConfig {
            languages: vec!["zh".into()],
            ..Default::default()
        };
        let zh = "中华人民共和国成立以来，经济社会发展取得了举世瞩目的成就，人民生活水平不断提高。";
        let (found, reason) = check_language(&cfg, zh);
        assert_eq!(found.unwrap().0, "zh");
        assert_eq!(reason, None);
        let en = "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest.";
        assert_eq!(check_language(&cfg, en).1.as_deref(), Some("language_en"));
    }
}
