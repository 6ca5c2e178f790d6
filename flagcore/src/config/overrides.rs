//! Hydra-style command-line overrides: `a.b=value`, `+a.b=value`, `++a.b=value`, `~a.b`.
//!
//! Values are YAML flow scalars or collections (`3e-4`, `true`, `null`, `[1,2]`, `{k: v}`,
//! `'quoted'`); `key=` sets the empty string. Whether a key exists in the typed config is
//! checked when the tree is parsed, so `+` and `++` are accepted as plain sets.

use super::tree::{self, kind};
use crate::{Error, Result};
use serde_json::Value;

fn fail(arg: &str, message: impl Into<String>) -> Error {
    Error::Override {
        arg: arg.to_string(),
        message: message.into(),
    }
}

/// Applies one override to `root`; returns the dotted key it touched.
pub fn apply(root: &mut Value, arg: &str) -> Result<String> {
    if let Some(rest) = arg.strip_prefix('~') {
        let (key, expected) = match rest.split_once('=') {
            Some((k, v)) => (k, Some(parse_value(arg, v)?)),
            None => (rest, None),
        };
        let key = check_key(arg, key)?;
        delete(root, arg, &key, expected)?;
        return Ok(key);
    }
    let body = arg.trim_start_matches('+');
    let (key, raw) = body
        .split_once('=')
        .ok_or_else(|| fail(arg, "expected key=value (or ~key to delete a key)"))?;
    let key = check_key(arg, key)?;
    let value = parse_value(arg, raw)?;
    set(root, arg, &key, value)?;
    Ok(key)
}

fn check_key(arg: &str, key: &str) -> Result<String> {
    let key = key.trim();
    let ok_seg = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '@' || c == '/')
    };
    if !key.split('.').all(ok_seg) {
        return Err(fail(
            arg,
            format!("`{key}` is not a dotted key (letters, digits, _ and - between dots)"),
        ));
    }
    Ok(key.to_string())
}

fn parse_value(arg: &str, raw: &str) -> Result<Value> {
    if raw.trim().is_empty() {
        return Ok(Value::String(String::new()));
    }
    super::parse::from_yaml(raw).map_err(|e| fail(arg, format!("value `{raw}`: {e}")))
}

fn set(root: &mut Value, arg: &str, key: &str, value: Value) -> Result<()> {
    let segs: Vec<&str> = key.split('.').collect();
    let (last, parents) = segs.split_last().expect("keys have at least one segment");
    let mut node = root;
    let mut walked = String::new();
    for seg in parents {
        walked = if walked.is_empty() {
            seg.to_string()
        } else {
            format!("{walked}.{seg}")
        };
        node = match node {
            Value::Object(m) => m
                .entry(seg.to_string())
                .or_insert_with(|| Value::Object(Default::default())),
            Value::Array(a) => {
                let len = a.len();
                seg.parse::<usize>()
                    .ok()
                    .and_then(|i| a.get_mut(i))
                    .ok_or_else(|| {
                        fail(
                            arg,
                            format!("`{walked}`: no entry {seg} in a list of {len}"),
                        )
                    })?
            }
            other => {
                return Err(fail(
                    arg,
                    format!(
                        "cannot set `{key}`: `{walked}` is {}, not a mapping",
                        kind(other)
                    ),
                ))
            }
        };
    }
    match node {
        Value::Object(m) => {
            m.insert(last.to_string(), value);
        }
        Value::Array(a) => {
            let len = a.len();
            let slot = last
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get_mut(i))
                .ok_or_else(|| fail(arg, format!("no entry {last} in a list of {len}")))?;
            *slot = value;
        }
        other => {
            return Err(fail(
                arg,
                format!(
                    "cannot set `{key}`: `{walked}` is {}, not a mapping",
                    kind(other)
                ),
            ))
        }
    }
    Ok(())
}

fn delete(root: &mut Value, arg: &str, key: &str, expected: Option<Value>) -> Result<()> {
    let (parent, last) = key.rsplit_once('.').unwrap_or(("", key));
    let missing = || fail(arg, format!("cannot delete `{key}`: no such key"));
    let map = match tree::get_mut(root, parent) {
        Some(Value::Object(m)) => m,
        _ => return Err(missing()),
    };
    let current = map.get(last).ok_or_else(missing)?;
    if let Some(expected) = expected {
        if *current != expected {
            return Err(fail(
                arg,
                format!("`{key}` is {current}, not {expected}: nothing deleted"),
            ));
        }
    }
    map.remove(last);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_nested_keys_with_yaml_types() {
        let mut v = json!({"train": {"lr": 0.1}, "layers": [1, 2]});
        apply(&mut v, "train.lr=3e-4").unwrap();
        apply(&mut v, "model.layers=4").unwrap();
        apply(&mut v, "+model.name='007'").unwrap();
        apply(&mut v, "model.act=silu").unwrap();
        apply(&mut v, "model.dims=[1, 2]").unwrap();
        apply(&mut v, "layers.1=5").unwrap();
        apply(&mut v, "flag=true").unwrap();
        apply(&mut v, "empty=").unwrap();
        assert_eq!(
            v,
            json!({"train": {"lr": 3e-4}, "layers": [1, 5], "flag": true, "empty": "",
                   "model": {"layers": 4, "name": "007", "act": "silu", "dims": [1, 2]}})
        );
        apply(&mut v, "~model.dims").unwrap();
        assert!(v["model"].get("dims").is_none());
    }

    #[test]
    fn bad_overrides_name_the_argument() {
        let mut v = json!({"train": {"lr": 0.1}, "layers": [1]});
        let cases = [
            ("train.lr", "expected key=value"),
            ("train..lr=1", "not a dotted key"),
            ("=1", "not a dotted key"),
            ("train.lr.x=1", "`train.lr` is a number"),
            ("layers.3=1", "no entry 3 in a list of 1"),
            ("~nope", "no such key"),
            ("~train.lr=0.2", "nothing deleted"),
            ("a=[1,", "not valid YAML"),
        ];
        for (arg, want) in cases {
            let msg = apply(&mut v, arg).unwrap_err().to_string();
            assert!(msg.starts_with(&format!("override `{arg}`")), "{msg}");
            assert!(msg.contains(want), "{arg}: {msg}");
        }
    }
}
