//! lm-eval's filters on generated text: a named pipeline of steps (`regex` extraction with
//! `group_select` and `fallback`, `take_first`, `lowercase`, `uppercase`,
//! `remove_whitespace`). Each pipeline gives its own set of metrics, reported as
//! `metric,pipeline`; without a `filter_list` the pipeline is `none` (the text as generated).

use crate::task::config::{FilterPipeline, FilterStep};
use crate::{Error, Result};

#[derive(Debug)]
enum Step {
    Regex {
        re: regex::Regex,
        group: i64,
        fallback: String,
    },
    Lower,
    Upper,
    TrimStart,
    Identity,
}

#[derive(Debug)]
pub struct Pipeline {
    pub name: String,
    steps: Vec<Step>,
}

impl Pipeline {
    pub fn none() -> Self {
        Pipeline {
            name: "none".into(),
            steps: vec![],
        }
    }

    pub fn build(spec: &FilterPipeline, task: &str) -> Result<Self> {
        let fail = |m: String| Error::Task {
            task: task.into(),
            message: format!("filter `{}`: {m}", spec.name),
        };
        let steps = spec
            .filter
            .iter()
            .map(|s: &FilterStep| {
                Ok(match s.function.as_str() {
                    "regex" => {
                        // lm-eval's default pattern: a GSM8K-style "#### 42" answer.
                        let pattern = s
                            .regex_pattern
                            .as_deref()
                            .unwrap_or(r"#### (\-?[0-9\.\,]+)");
                        Step::Regex {
                            re: regex::Regex::new(pattern)
                                .map_err(|e| fail(format!("regex_pattern: {e}")))?,
                            group: s.group_select.unwrap_or(0),
                            fallback: s.fallback.clone().unwrap_or_else(|| "[invalid]".into()),
                        }
                    }
                    "take_first" => Step::Identity,
                    "lowercase" => Step::Lower,
                    "uppercase" => Step::Upper,
                    "remove_whitespace" => Step::TrimStart,
                    other => return Err(fail(format!("unknown function `{other}`"))),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Pipeline {
            name: spec.name.clone(),
            steps,
        })
    }

    pub fn apply(&self, text: &str) -> String {
        let mut s = text.to_string();
        for step in &self.steps {
            s = match step {
                Step::Regex {
                    re,
                    group,
                    fallback,
                } => regex_pick(re, *group, fallback, &s),
                Step::Lower => s.to_lowercase(),
                Step::Upper => s.to_uppercase(),
                Step::TrimStart => s.trim_start().to_string(),
                Step::Identity => s,
            };
        }
        s
    }
}

/// Python's `re.findall` then lm-eval's selection: the `group`-th match (negative counts from
/// the end); a pattern with several groups yields its first non-empty group; stripped; the
/// fallback when nothing matched. Differences from Python: Rust's regex syntax (no
/// look-around), and an out-of-range `group_select` gives the fallback where lm-eval raises.
fn regex_pick(re: &regex::Regex, group: i64, fallback: &str, text: &str) -> String {
    let found: Vec<String> = re
        .captures_iter(text)
        .map(|c| {
            if c.len() == 1 {
                c[0].to_string()
            } else {
                (1..c.len())
                    .filter_map(|g| c.get(g).map(|m| m.as_str()))
                    .find(|m| !m.is_empty())
                    .unwrap_or("")
                    .to_string()
            }
        })
        .collect();
    let n = found.len() as i64;
    let at = if group < 0 { n + group } else { group };
    match found.get(at.max(0) as usize).filter(|_| at >= 0 && at < n) {
        // One group: Python's findall gives its text, empty or not; several: the first
        // non-empty one, else the fallback.
        Some(m) if !m.is_empty() || re.captures_len() <= 2 => m.trim().to_string(),
        Some(_) => fallback.to_string(),
        None => fallback.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(steps: Vec<FilterStep>) -> Pipeline {
        Pipeline::build(
            &FilterPipeline {
                name: "p".into(),
                filter: steps,
            },
            "t",
        )
        .unwrap()
    }

    fn step(function: &str, pattern: Option<&str>, group: Option<i64>) -> FilterStep {
        FilterStep {
            function: function.into(),
            regex_pattern: pattern.map(str::to_string),
            group_select: group,
            fallback: None,
        }
    }

    #[test]
    fn regex_selection_follows_lm_eval() {
        let strict = pipeline(vec![
            step("regex", None, None),
            step("take_first", None, None),
        ]);
        assert_eq!(strict.apply("so 6 * 7 = 42\n#### 42"), "42");
        assert_eq!(strict.apply("the answer is 42"), "[invalid]");
        let last = pipeline(vec![step(
            "regex",
            Some(r"(-?[$0-9.,]{2,})|(-?[0-9]+)"),
            Some(-1),
        )]);
        assert_eq!(last.apply("3 apples and 12 pears make 15"), "15");
        let upper = pipeline(vec![
            step("remove_whitespace", None, None),
            step("uppercase", None, None),
        ]);
        assert_eq!(upper.apply("  b) yes"), "B) YES");
        assert!(Pipeline::build(
            &FilterPipeline {
                name: "x".into(),
                filter: vec![step("majority", None, None)]
            },
            "t"
        )
        .is_err());
    }
}
