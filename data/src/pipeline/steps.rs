//! The steps a pipeline YAML lists, and how each one acts on a document.
//!
//! In YAML a step is its name (`- nfkc`) or a one-key mapping of name to settings
//! (`- gopher_quality: {min_doc_words: 20}`).

use crate::clean::{self, RemovePii, RemovePiiConfig};
use crate::filter::basic::{check_language, check_length, LanguageConfig, LengthConfig};
use crate::filter::c4::{self, C4Config};
use crate::filter::decontaminate::{DecontaminateConfig, Decontaminator};
use crate::filter::fineweb::{self, FineWebConfig};
use crate::filter::gopher::{GopherQuality, GopherRepetition};
use crate::{Document, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Settings for `normalize_whitespace`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhitespaceConfig {
    pub max_newlines: usize,
}

impl Default for WhitespaceConfig {
    fn default() -> Self {
        WhitespaceConfig { max_newlines: 2 }
    }
}

/// Empty settings for steps that take none.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Gopher quality with a language preset (`zh` switches to [`GopherQuality::chinese`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GopherQualityStep {
    #[serde(default)]
    pub language: Option<String>,
    #[serde(flatten)]
    pub overrides: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    Nfkc(NoConfig),
    FullwidthToHalfwidth(NoConfig),
    RemoveControlChars(NoConfig),
    NormalizeWhitespace(WhitespaceConfig),
    RemovePii(RemovePiiConfig),
    Length(LengthConfig),
    GopherQuality(GopherQualityStep),
    GopherRepetition(GopherRepetition),
    C4(C4Config),
    Fineweb(FineWebConfig),
    Language(LanguageConfig),
    Decontaminate(DecontaminateConfig),
}

/// Accepts `name` or `{name: settings}`.
pub fn parse_step(v: &Value) -> std::result::Result<StepSpec, String> {
    let v = match v {
        Value::String(name) => serde_json::json!({ name: {} }),
        Value::Object(m) if m.len() == 1 && m.values().next().is_some_and(Value::is_null) => {
            let name = m.keys().next().cloned().unwrap_or_default();
            serde_json::json!({ name: {} })
        }
        other => other.clone(),
    };
    serde_json::from_value(v).map_err(|e| e.to_string())
}

impl StepSpec {
    pub fn name(&self) -> &'static str {
        match self {
            StepSpec::Nfkc(_) => "nfkc",
            StepSpec::FullwidthToHalfwidth(_) => "fullwidth_to_halfwidth",
            StepSpec::RemoveControlChars(_) => "remove_control_chars",
            StepSpec::NormalizeWhitespace(_) => "normalize_whitespace",
            StepSpec::RemovePii(_) => "remove_pii",
            StepSpec::Length(_) => "length",
            StepSpec::GopherQuality(_) => "gopher_quality",
            StepSpec::GopherRepetition(_) => "gopher_repetition",
            StepSpec::C4(_) => "c4",
            StepSpec::Fineweb(_) => "fineweb",
            StepSpec::Language(_) => "language",
            StepSpec::Decontaminate(_) => "decontaminate",
        }
    }

    /// Builds the runnable step (loads evaluation sets, compiles patterns).
    pub fn build(&self) -> std::result::Result<Step, String> {
        Ok(match self {
            StepSpec::Nfkc(_) => Step::Nfkc,
            StepSpec::FullwidthToHalfwidth(_) => Step::Fullwidth,
            StepSpec::RemoveControlChars(_) => Step::Control,
            StepSpec::NormalizeWhitespace(c) => Step::Whitespace(c.max_newlines),
            StepSpec::RemovePii(c) => Step::Pii(RemovePii::new(c)),
            StepSpec::Length(c) => Step::Length(c.clone()),
            StepSpec::GopherQuality(c) => {
                let base = match c
                    .language
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("zh" | "cmn" | "zho") => GopherQuality::chinese(),
                    None | Some("en" | "eng") => GopherQuality::default(),
                    Some(other) => {
                        return Err(format!(
                            "gopher_quality: no preset for language `{other}` (zh or en)"
                        ))
                    }
                };
                let mut merged = serde_json::to_value(base).map_err(|e| e.to_string())?;
                if let Value::Object(m) = &mut merged {
                    for (k, v) in &c.overrides {
                        if !m.contains_key(k) {
                            return Err(format!("gopher_quality: unknown setting `{k}`"));
                        }
                        m.insert(k.clone(), v.clone());
                    }
                }
                Step::GopherQuality(
                    serde_json::from_value(merged).map_err(|e| format!("gopher_quality: {e}"))?,
                )
            }
            StepSpec::GopherRepetition(c) => Step::GopherRepetition(c.clone()),
            StepSpec::C4(c) => Step::C4(c.clone()),
            StepSpec::Fineweb(c) => Step::FineWeb(c.clone()),
            StepSpec::Language(c) => {
                if let Some(bad) = c
                    .languages
                    .iter()
                    .find(|l| crate::filter::basic::canonical(l).is_none())
                {
                    return Err(format!("language: unknown language code `{bad}` (ISO 639-1 like zh, en, fr or 639-3 like cmn, eng)"));
                }
                if !(0.0..=1.0).contains(&c.min_confidence) {
                    return Err("language: min_confidence must lie between 0 and 1".into());
                }
                Step::Language(c.clone())
            }
            StepSpec::Decontaminate(c) => {
                Step::Decontaminate(Decontaminator::load(c).map_err(|e| e.to_string())?)
            }
        })
    }
}

/// A ready-to-run step.
#[derive(Debug)]
pub enum Step {
    Nfkc,
    Fullwidth,
    Control,
    Whitespace(usize),
    Pii(RemovePii),
    Length(LengthConfig),
    GopherQuality(GopherQuality),
    GopherRepetition(GopherRepetition),
    C4(C4Config),
    FineWeb(FineWebConfig),
    Language(LanguageConfig),
    Decontaminate(Decontaminator),
}

impl Step {
    /// Runs the step: cleaners rewrite `doc.text`; filters return `Some(reason)` to drop it.
    pub fn apply(&self, doc: &mut Document) -> Result<Option<String>> {
        let reason = match self {
            Step::Nfkc => {
                doc.text = clean::nfkc(&doc.text);
                None
            }
            Step::Fullwidth => {
                doc.text = clean::fullwidth_to_halfwidth(&doc.text);
                None
            }
            Step::Control => {
                doc.text = clean::remove_control_chars(&doc.text);
                None
            }
            Step::Whitespace(n) => {
                doc.text = clean::normalize_whitespace(&doc.text, *n);
                None
            }
            Step::Pii(p) => {
                doc.text = p.apply(&doc.text);
                None
            }
            Step::Length(c) => check_length(c, &doc.text).map(String::from),
            Step::GopherQuality(g) => g.check(&doc.text).map(String::from),
            Step::GopherRepetition(g) => g.check(&doc.text),
            Step::C4(c) => match c4::apply(c, &doc.text) {
                Ok(text) => {
                    doc.text = text;
                    None
                }
                Err(reason) => Some(reason.to_string()),
            },
            Step::FineWeb(c) => fineweb::check(c, &doc.text).map(String::from),
            Step::Language(c) => {
                let (found, reason) = check_language(c, &doc.text);
                if let Some((lang, score)) = found {
                    doc.metadata.insert("language".into(), lang.into());
                    doc.metadata.insert(
                        "language_score".into(),
                        serde_json::json!((score * 1000.0).round() / 1000.0),
                    );
                }
                reason
            }
            Step::Decontaminate(d) => d
                .contaminated(&doc.text)
                .then(|| "contaminated".to_string()),
        };
        Ok(reason)
    }
}
