//! `${...}` interpolation in string values, resolved after merging and overrides.
//!
//! `${env:VAR}` and `${env:VAR,default}` (also spelled `${oc.env:...}` as in OmegaConf) read the
//! environment; `${a.b.c}` copies another key of the config. A value that is one whole
//! interpolation takes the referenced value's type (`lr: ${env:LR}` becomes a number); one
//! embedded in text is spliced in as text. `\${` stands for a literal `${`.

use super::tree::kind;
use serde_json::Value;

const MAX_DEPTH: usize = 32;

type Failure = (String, String);

/// Resolves every interpolation in `root`; on failure, the dotted key and why.
pub fn resolve_all(root: &Value) -> Result<Value, Failure> {
    walk(root, root, "", 0)
}

fn walk(root: &Value, v: &Value, path: &str, depth: usize) -> Result<Value, Failure> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    Ok(match v {
        Value::String(s) => resolve_str(root, s, path, depth)?,
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), walk(root, v, &join(k), depth)?)))
                .collect::<Result<_, Failure>>()?,
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| walk(root, v, &join(&i.to_string()), depth))
                .collect::<Result<_, Failure>>()?,
        ),
        other => other.clone(),
    })
}

enum Piece<'a> {
    Text(String),
    Ref(&'a str),
}

fn split(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('\\') {
            text.push_str(&rest[..i - 1]);
            text.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        text.push_str(&rest[..i]);
        let close = rest[i..]
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Ref(&rest[i + 2..i + close]));
        rest = &rest[i + close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn resolve_str(root: &Value, s: &str, path: &str, depth: usize) -> Result<Value, Failure> {
    if !s.contains("${") {
        return Ok(Value::String(s.to_string()));
    }
    if depth > MAX_DEPTH {
        return Err((
            path.to_string(),
            format!("interpolation nests deeper than {MAX_DEPTH} (a cycle?)"),
        ));
    }
    let pieces = split(s).map_err(|m| (path.to_string(), m))?;
    if let [Piece::Ref(r)] = pieces.as_slice() {
        return lookup(root, r, path, depth, true);
    }
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(r) => match lookup(root, r, path, depth, false)? {
                Value::String(t) => out.push_str(&t),
                v @ (Value::Number(_) | Value::Bool(_) | Value::Null) => {
                    out.push_str(&v.to_string())
                }
                v => {
                    return Err((
                        path.to_string(),
                        format!("`${{{r}}}` is {} and cannot be spliced into text", kind(&v)),
                    ))
                }
            },
        }
    }
    Ok(Value::String(out))
}

/// The value `${reference}` stands for; environment text is typed only when it is the whole
/// value (`whole`), so text spliced into a string stays exactly as the environment has it.
fn lookup(
    root: &Value,
    reference: &str,
    path: &str,
    depth: usize,
    whole: bool,
) -> Result<Value, Failure> {
    let reference = reference.trim();
    let fail = |m: String| (path.to_string(), m);
    if let Some(spec) = reference
        .strip_prefix("env:")
        .or_else(|| reference.strip_prefix("oc.env:"))
    {
        let (name, default) = match spec.split_once(',') {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (spec.trim(), None),
        };
        let text = match (std::env::var(name), default) {
            (Ok(v), _) => v,
            (Err(_), Some(d)) => d.to_string(),
            (Err(_), None) => {
                return Err(fail(format!(
                "environment variable {name} is not set (give a default: ${{env:{name},default}})"
            )))
            }
        };
        return Ok(if whole {
            typed_scalar(text)
        } else {
            Value::String(text)
        });
    }
    if let Some((resolver, _)) = reference.split_once(':') {
        return Err(fail(format!(
            "unknown resolver `{resolver}` in `${{{reference}}}` (known: env)"
        )));
    }
    let mut node = root;
    for seg in reference.split('.') {
        node = match node {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| {
            fail(format!(
                "`${{{reference}}}` refers to a key that does not exist"
            ))
        })?;
    }
    walk(root, node, path, depth + 1)
}

/// Environment text read as a YAML scalar, so numbers and booleans keep their type; anything
/// that is not a plain scalar stays text.
fn typed_scalar(text: String) -> Value {
    if text.trim().is_empty() {
        return Value::String(text);
    }
    match super::parse::from_yaml(&text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_and_node_references() {
        std::env::set_var("FLAGCORE_TEST_LR", "3e-4");
        std::env::set_var("FLAGCORE_TEST_NAME", "run7");
        std::env::set_var("FLAGCORE_TEST_VER", "3.10");
        let v = json!({
            "lr": "${env:FLAGCORE_TEST_LR}",
            "dir": "/out/${oc.env:FLAGCORE_TEST_NAME}/${model.size}",
            "model": {"size": 7, "copy": "${model.size}"},
            "fallback": "${env:FLAGCORE_TEST_UNSET_VAR, 12}",
            "literal": "\\${env:HOME}",
            "chain": "${model.copy}",
            "spliced": "/opt/python${env:FLAGCORE_TEST_VER}",
        });
        let r = resolve_all(&v).unwrap();
        assert_eq!(r["lr"], json!(3e-4));
        assert_eq!(r["dir"], json!("/out/run7/7"));
        assert_eq!(r["model"]["copy"], json!(7));
        assert_eq!(r["fallback"], json!(12));
        assert_eq!(r["literal"], json!("${env:HOME}"));
        assert_eq!(r["chain"], json!(7));
        assert_eq!(r["spliced"], json!("/opt/python3.10"));
    }

    #[test]
    fn failures_name_the_key() {
        let cases = [
            (
                json!({"a": {"b": "${env:FLAGCORE_TEST_NEVER_SET}"}}),
                "a.b",
                "FLAGCORE_TEST_NEVER_SET is not set",
            ),
            (json!({"a": "${nope.x}"}), "a", "does not exist"),
            (json!({"a": "${b}", "b": "${a}"}), "a", "a cycle?"),
            (
                json!({"a": "x${b}", "b": {"c": 1}}),
                "a",
                "cannot be spliced",
            ),
            (json!({"a": "${foo:bar}"}), "a", "unknown resolver `foo`"),
            (json!({"a": "${b"}), "a", "unclosed"),
        ];
        for (v, key, want) in cases {
            let (k, m) = resolve_all(&v).unwrap_err();
            assert_eq!(k, key);
            assert!(m.contains(want), "{m}");
        }
    }
}
