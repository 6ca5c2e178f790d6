//! Operations on the JSON tree every config format is read into.

use serde_json::Value;

/// Deep merge: mappings merge key by key, anything else replaces.
pub fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (k, v) in top {
                match base.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

/// Dotted paths of every leaf (and of every empty mapping or list).
pub fn leaf_paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Value::Object(m) if !m.is_empty() => m.iter().for_each(|(k, v)| walk(v, &join(k), out)),
            Value::Array(a) if !a.is_empty() => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, &join(&i.to_string()), out)),
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

pub fn count_leaves(v: &Value) -> usize {
    leaf_paths(v).len()
}

/// Follows a dotted path (list entries by index).
pub fn get_mut<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |node, seg| match node {
        Value::Object(m) => m.get_mut(seg),
        Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Replaces the number or bool at `path` by its text; false when there is none to replace.
pub fn stringify_scalar(v: &mut Value, path: &str) -> bool {
    match get_mut(v, path) {
        Some(slot @ (Value::Number(_) | Value::Bool(_))) => {
            *slot = Value::String(slot.to_string());
            true
        }
        _ => false,
    }
}

/// What a value is, in words, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
