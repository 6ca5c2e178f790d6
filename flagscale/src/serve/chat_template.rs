//! Chat templates: the Jinja template a model ships (`chat_template` in Hugging Face's
//! `tokenizer_config.json`, `tokenizer.chat_template` in GGUF) rendered with minijinja under
//! the settings `transformers` renders with (trim_blocks, lstrip_blocks, loop controls,
//! Python string methods, `raise_exception`), so a conversation becomes the same prompt.

use serde_json::Value;
use std::path::Path;

#[derive(Debug)]
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// A special token as `tokenizer_config.json` writes it: a string or `{"content": ...}`.
fn token_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// Compiles `source`; an error names what the template gets wrong.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, String> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| format!("chat template: {e}"))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The template of a Hugging Face model folder, if its `tokenizer_config.json` has one
    /// (a list of named templates picks `default`).
    pub fn from_hf_dir(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join("tokenizer_config.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let cfg: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let source = match cfg.get("chat_template") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(String::from)
                .ok_or_else(|| format!("{}: no `default` chat template", path.display()))?,
            _ => return Ok(None),
        };
        Self::new(
            &source,
            &token_string(cfg.get("bos_token")),
            &token_string(cfg.get("eos_token")),
        )
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The template a GGUF file carries, with its BOS/EOS tokens' text.
    pub fn from_gguf(meta: &flagdata::tokenize::gguf::Metadata) -> Result<Option<Self>, String> {
        let Some(source) = meta.get("tokenizer.chat_template").and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let tokens = meta.strings("tokenizer.ggml.tokens").unwrap_or_default();
        let token = |key: &str| {
            meta.get(key)
                .and_then(|v| v.as_u64())
                .and_then(|i| tokens.get(i as usize).cloned())
                .unwrap_or_default()
        };
        Self::new(
            source,
            &token("tokenizer.ggml.bos_token_id"),
            &token("tokenizer.ggml.eos_token_id"),
        )
        .map(Some)
    }

    /// The prompt for `messages` (OpenAI's `[{"role", "content"}, ...]`), ending with the
    /// assistant's turn opened when `add_generation_prompt`.
    pub fn render(
        &self,
        messages: &[Value],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let tmpl = self.env.get_template("chat").map_err(|e| e.to_string())?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| {
            let mut msg = format!("chat template: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            msg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_transformers_whitespace_rules() {
        // Block tags on their own lines leave no blank lines behind (trim + lstrip blocks).
        let t = ChatTemplate::new(
            "{% for m in messages %}\n  {% if m.role == 'user' %}\n<u>{{ m.content.strip() }}</u>\n  {% endif %}\n{% endfor %}\n{% if add_generation_prompt %}<a>{% endif %}",
            "<s>",
            "</s>",
        )
        .unwrap();
        let msgs = [serde_json::json!({"role": "user", "content": " hi "})];
        assert_eq!(t.render(&msgs, true).unwrap(), "<u>hi</u>\n<a>");
        let bad = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        assert!(bad
            .render(&msgs, false)
            .unwrap_err()
            .contains("no system role"));
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }
}
