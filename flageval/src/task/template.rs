//! `doc_to_text`, `doc_to_choice` and `doc_to_target` as lm-eval reads them: a field name
//! (the document's value), a literal (list or number), or a Jinja template rendered with the
//! document's fields (minijinja, with Python's string methods).

use serde_json::Value;

#[derive(Debug)]
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    pub fn new() -> Self {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(python_methods);
        // Jinja2 keeps a template's text as written; undefined fields are errors, not "".
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("regex_replace", regex_replace);
        Templates { env }
    }

    /// Renders `source` with the document's fields.
    pub fn render(&self, source: &str, doc: &Value) -> Result<String, String> {
        self.env
            .render_str(source, doc)
            .map_err(|e| format!("template `{source}`: {e}"))
    }

    /// A field's value when `spec` names one, else the rendered template.
    pub fn text(&self, spec: &Value, doc: &Value) -> Result<String, String> {
        match spec {
            Value::String(s) => match doc.get(s) {
                Some(Value::String(v)) => Ok(v.clone()),
                Some(v) => Ok(v.to_string()),
                None => self.render(s, doc),
            },
            Value::Number(n) => Ok(n.to_string()),
            other => Err(format!("expected a field name or template, not {other}")),
        }
    }

    /// The answer options: a literal list, a list-valued field, or a template rendering to a
    /// list literal (`['a', 'b']`, as lm-eval evaluates with Python's literal_eval).
    pub fn choices(&self, spec: &Value, doc: &Value) -> Result<Vec<String>, String> {
        let list = match spec {
            Value::Array(items) => items.clone(),
            Value::String(s) => match doc.get(s) {
                Some(Value::Array(items)) => items.clone(),
                Some(other) => return Err(format!("field `{s}` is {other}, not a list")),
                None => parse_list(&self.render(s, doc)?)?,
            },
            other => {
                return Err(format!(
                    "doc_to_choice must be a list or a template, not {other}"
                ))
            }
        };
        Ok(list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect())
    }

    /// The gold answer's index: an integer, or a text found among `choices`.
    pub fn target(&self, spec: &Value, doc: &Value, choices: &[String]) -> Result<usize, String> {
        let raw = match spec {
            Value::Number(n) => n.to_string(),
            _ => self.text(spec, doc)?,
        };
        let raw = raw.trim();
        if let Ok(i) = raw.parse::<usize>() {
            if i < choices.len() || choices.is_empty() {
                return Ok(i);
            }
        }
        choices
            .iter()
            .position(|c| c == raw)
            .ok_or_else(|| format!("answer `{raw}` is neither an index nor one of {choices:?}"))
    }
}

/// `text | regex_replace(pattern, replacement)`: every match replaced (Rust regex syntax) —
/// what lm-eval tasks do in a Python `process_docs`, here in the template (e.g. dropping the
/// part-of-speech tags of a tagged corpus).
fn regex_replace(text: &str, pattern: &str, replacement: &str) -> Result<String, minijinja::Error> {
    let re = regex::Regex::new(pattern).map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("regex_replace: {e}"),
        )
    })?;
    Ok(re.replace_all(text, replacement).into_owned())
}

/// Python's methods on values, as Jinja2 templates call them: `list.index` and `list.count`
/// (lm-eval's BIG-bench templates use `.index(1)`), then minijinja-contrib's string and dict
/// methods.
fn python_methods(
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> Result<minijinja::Value, minijinja::Error> {
    use minijinja::{Error, ErrorKind, Value as V};
    if value.kind() != minijinja::value::ValueKind::Seq || !matches!(method, "index" | "count") {
        return minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args);
    }
    let [needle] = args else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("list.{method} takes one argument"),
        ));
    };
    let mut items = value.try_iter()?;
    if method == "count" {
        return Ok(V::from(items.filter(|v| v == needle).count()));
    }
    items
        .position(|v| &v == needle)
        .map(V::from)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{needle} is not in list"),
            )
        })
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// A Python/JSON list literal of strings and numbers.
fn parse_list(text: &str) -> Result<Vec<Value>, String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
        return Ok(items);
    }
    // Python's repr uses single quotes: read quoted items by hand.
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("`{text}` is not a list"))?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(q) = chars.next() else { break };
        if q != '\'' && q != '"' {
            return Err(format!("`{text}`: expected a quoted string"));
        }
        let mut s = String::new();
        loop {
            match chars.next() {
                Some('\\') => s.extend(chars.next()),
                Some(c) if c == q => break,
                Some(c) => s.push(c),
                None => return Err(format!("`{text}`: unterminated string")),
            }
        }
        items.push(Value::String(s));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_literals_and_templates() {
        let t = Templates::new();
        let doc =
            json!({"问题": "光阴与岁月？", "a": "近义", "answer": "B", "n": 2, "opts": ["x", "y"]});
        assert_eq!(t.text(&json!("问题"), &doc).unwrap(), "光阴与岁月？");
        assert_eq!(
            t.text(&json!("Q: {{问题}}\nA. {{a}}\n答案："), &doc)
                .unwrap(),
            "Q: 光阴与岁月？\nA. 近义\n答案："
        );
        let abcd = t.choices(&json!(["A", "B", "C", "D"]), &doc).unwrap();
        assert_eq!(t.target(&json!("{{answer}}"), &doc, &abcd).unwrap(), 1);
        assert_eq!(t.target(&json!("n"), &doc, &abcd).unwrap(), 2);
        assert_eq!(t.choices(&json!("opts"), &doc).unwrap(), ["x", "y"]);
        assert_eq!(
            t.choices(&json!("['{{a}}', \"z\"]"), &doc).unwrap(),
            ["近义", "z"]
        );
        assert!(t.target(&json!("{{answer}}"), &doc, &["X".into()]).is_err());
        assert!(t.text(&json!("{{missing}}"), &doc).is_err());
        assert_eq!(
            t.text(
                &json!("{{ t | regex_replace('/[a-z]+|\\][a-z]+|\\[|\\s+', '') }}"),
                &json!({"t": "[中央/n  人民/n]nt  广播/vn"})
            )
            .unwrap(),
            "中央人民广播"
        );
        // BIG-bench's target_scores: options in file order, the gold by `.index(1)`.
        let bb = json!({"target_scores": {"two": 0, "four": 1, "six": 0}});
        let opts = t
            .choices(&json!("{{ target_scores.keys() | list | tojson }}"), &bb)
            .unwrap();
        assert_eq!(opts, ["two", "four", "six"]);
        let spec = json!("{{ (target_scores.values() | list).index(1) }}");
        assert_eq!(t.target(&spec, &bb, &opts).unwrap(), 1);
        let none = json!({"target_scores": {"a": 0, "b": 0}});
        assert!(t.target(&spec, &none, &opts).is_err());
    }
}
