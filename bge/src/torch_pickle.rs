//! Reads the state dicts `torch.save` writes (a zip archive holding `data.pkl`, a pickle of
//! tensors whose storages are the archive's `data/<key>` entries) without Python: enough of
//! the pickle machine for dicts of tensors — FlagEmbedding ships bge-m3's sparse and ColBERT
//! heads this way (`sparse_linear.pt`, `colbert_linear.pt`). Anything else in the pickle (an
//! unknown global, an unsupported opcode) is an error naming the file, never code run.

use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

#[derive(Clone, Debug)]
enum Value {
    None,
    /// A bool or float: read past, never needed for weights.
    Scalar,
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `module.name` of a GLOBAL.
    Global(String),
    /// A storage: its archive key and element kind.
    Storage(String, Kind),
    Tensor {
        storage: String,
        kind: Kind,
        offset: i64,
        size: Vec<i64>,
        stride: Vec<i64>,
    },
    Mark,
}

fn storage_kind(name: &str) -> Option<Kind> {
    Some(match name.rsplit('.').next()? {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

fn ints(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Tuple(t) | Value::List(t) => t
            .iter()
            .map(|x| match x {
                Value::Int(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Runs the pickle program of `data` far enough to return its top value.
fn unpickle(data: &[u8]) -> std::result::Result<Value, String> {
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
        let s = data.get(*pos..*pos + n).ok_or("the pickle ends early")?;
        *pos += n;
        Ok(s)
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| "stack underflow".to_string());
    let pop_mark = |stack: &mut Vec<Value>| -> std::result::Result<Vec<Value>, String> {
        let at = stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("no mark")?;
        let items = stack.split_off(at + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = take(&mut pos, 1)?[0];
        match op {
            0x80 => {
                take(&mut pos, 1)?; // PROTO
            }
            0x95 => {
                take(&mut pos, 8)?; // FRAME
            }
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 | 0x89 => stack.push(Value::Scalar),
            b'J' => {
                let b = take(&mut pos, 4)?;
                stack.push(Value::Int(
                    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
                ));
            }
            b'K' => stack.push(Value::Int(take(&mut pos, 1)?[0] as i64)),
            b'M' => {
                let b = take(&mut pos, 2)?;
                stack.push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = take(&mut pos, 1)?[0] as usize;
                let b = take(&mut pos, n)?;
                if n > 8 {
                    return Err("an integer wider than 64 bits".into());
                }
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate() {
                    v |= (x as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                take(&mut pos, 8)?;
                stack.push(Value::Scalar);
            }
            b'X' | 0x8c => {
                let n = if op == b'X' {
                    u32_at(take(&mut pos, 4)?) as usize
                } else {
                    take(&mut pos, 1)?[0] as usize
                };
                let s = std::str::from_utf8(take(&mut pos, n)?).map_err(|e| e.to_string())?;
                stack.push(Value::Str(s.to_string()));
            }
            b'c' => {
                let mut line = || -> std::result::Result<String, String> {
                    let end = data[pos..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .ok_or("an unterminated GLOBAL")?;
                    let s = String::from_utf8_lossy(&data[pos..pos + end]).into_owned();
                    pos += end + 1;
                    Ok(s)
                };
                let (module, name) = (line()?, line()?);
                stack.push(Value::Global(format!("{module}.{name}")));
            }
            0x93 => {
                // STACK_GLOBAL
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(format!("{m}.{n}"))),
                    _ => return Err("STACK_GLOBAL of non-strings".into()),
                }
            }
            b')' => stack.push(Value::Tuple(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::List(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("stack underflow".into());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'q' => {
                let k = take(&mut pos, 1)?[0] as u32;
                memo.insert(k, stack.last().cloned().ok_or("stack underflow")?);
            }
            b'r' => {
                let k = u32_at(take(&mut pos, 4)?);
                memo.insert(k, stack.last().cloned().ok_or("stack underflow")?);
            }
            0x94 => {
                let k = memo.len() as u32; // MEMOIZE
                memo.insert(k, stack.last().cloned().ok_or("stack underflow")?);
            }
            b'h' | b'j' => {
                let k = if op == b'h' {
                    take(&mut pos, 1)?[0] as u32
                } else {
                    u32_at(take(&mut pos, 4)?)
                };
                stack.push(
                    memo.get(&k)
                        .cloned()
                        .ok_or("a memo key that was never set")?,
                );
            }
            b'a' => {
                let v = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.push(v),
                    _ => return Err("APPEND to a non-list".into()),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => return Err("APPENDS to a non-list".into()),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack)?
                };
                let Some(Value::Dict(d)) = stack.last_mut() else {
                    return Err("SETITEM(S) on a non-dict".into());
                };
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'Q' => {
                // BINPERSID: ('storage', storage type, key, location, numel)
                let pid = pop(&mut stack)?;
                let Value::Tuple(t) = pid else {
                    return Err("a persistent id that is not a tuple".into());
                };
                match (t.first(), t.get(1), t.get(2)) {
                    (Some(Value::Str(s)), Some(Value::Global(ty)), Some(Value::Str(key)))
                        if s == "storage" =>
                    {
                        let kind = storage_kind(ty).ok_or(format!("storage type {ty}"))?;
                        stack.push(Value::Storage(key.clone(), kind));
                    }
                    _ => return Err("a persistent id that is not a storage".into()),
                }
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let f = pop(&mut stack)?;
                let Value::Global(name) = f else {
                    return Err("REDUCE of a non-global".into());
                };
                let Value::Tuple(args) = args else {
                    return Err("REDUCE arguments are not a tuple".into());
                };
                stack.push(match name.as_str() {
                    "collections.OrderedDict" => Value::Dict(Vec::new()),
                    "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                        let (Some(Value::Storage(key, kind)), Some(Value::Int(offset))) =
                            (args.first(), args.get(1))
                        else {
                            return Err("a tensor without its storage".into());
                        };
                        let size = args
                            .get(2)
                            .and_then(ints)
                            .ok_or("a tensor without a size")?;
                        let stride = args
                            .get(3)
                            .and_then(ints)
                            .ok_or("a tensor without strides")?;
                        Value::Tensor {
                            storage: key.clone(),
                            kind: *kind,
                            offset: *offset,
                            size,
                            stride,
                        }
                    }
                    other => return Err(format!("the global `{other}` is not allowed")),
                });
            }
            b'b' => {
                pop(&mut stack)?; // BUILD: state of an OrderedDict (metadata), unused
            }
            other => return Err(format!("pickle opcode 0x{other:02x} is not supported")),
        }
    }
}

/// The tensors of a `torch.save`d state dict by name, as `kind` on `device` (floating-point
/// ones converted).
pub fn load_state_dict(
    path: &Path,
    kind: Kind,
    device: tch::Device,
) -> Result<HashMap<String, Tensor>> {
    let fail = |m: String| Error::File {
        path: path.to_path_buf(),
        message: m,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        fail(format!(
            "not a torch.save zip archive ({e}); legacy pickles are not read"
        ))
    })?;
    let pkl = (0..zip.len())
        .filter_map(|i| zip.by_index(i).ok().map(|f| f.name().to_string()))
        .find(|n| n.ends_with("/data.pkl") || n == "data.pkl")
        .ok_or_else(|| fail("no data.pkl in the archive".into()))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut read = |name: &str| -> Result<Vec<u8>> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| fail(format!("archive entry {name}: {e}")))?;
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out)
            .map_err(|e| fail(format!("archive entry {name}: {e}")))?;
        Ok(out)
    };
    let top = unpickle(&read(&pkl)?).map_err(|m| fail(format!("data.pkl: {m}")))?;
    let Value::Dict(items) = top else {
        return Err(fail("the pickle is not a dict of tensors".into()));
    };
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = HashMap::new();
    for (k, v) in items {
        let (
            Value::Str(name),
            Value::Tensor {
                storage,
                kind: stored,
                offset,
                size,
                stride,
            },
        ) = (k, v)
        else {
            continue; // non-tensor entries (metadata) are not weights
        };
        if !storages.contains_key(&storage) {
            let bytes = read(&format!("{prefix}data/{storage}"))?;
            storages.insert(storage.clone(), bytes);
        }
        let bytes = &storages[&storage];
        let width = stored.elt_size_in_bytes();
        let numel = (bytes.len() / width) as i64;
        // The furthest element the view reaches must lie inside the storage.
        let reach = size.iter().zip(&stride).try_fold(offset, |acc, (&s, &t)| {
            acc.checked_add((s - 1).max(0).checked_mul(t)?)
        });
        let signed = size.iter().chain(&stride).any(|&x| x < 0);
        let inside = size.contains(&0) || reach.is_some_and(|r| r < numel);
        if stride.len() != size.len() || offset < 0 || signed || !inside {
            return Err(fail(format!("tensor `{name}` reaches past its storage")));
        }
        let base = Tensor::f_from_data_size(&bytes[..numel as usize * width], &[numel], stored)?;
        let t = base
            .f_as_strided(&size, &stride, Some(offset))?
            .contiguous();
        let t = if t.is_floating_point() {
            t.to_kind(kind)
        } else {
            t
        };
        out.insert(name, t.to_device(device));
    }
    Ok(out)
}
