//! Reading the metadata of a GGUF file (llama.cpp's model format, versions 2 and 3): enough to
//! get the `tokenizer.ggml.*` keys of a vocabulary. Little-endian throughout: magic `GGUF`,
//! u32 version, u64 tensor count, u64 key count, then keys (u64-length UTF-8 strings), each
//! with a u32 type code and a value; arrays carry an element type and a u64 count.

use crate::{Error, Result};
use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::U64(v) => i64::try_from(*v).ok(),
            Value::I64(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            Value::U64(v) => Some(*v as f64),
            Value::I64(v) => Some(*v as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A GGUF file's header and key-value metadata.
#[derive(Clone, Debug)]
pub struct Metadata {
    pub path: PathBuf,
    pub version: u32,
    pub tensor_count: u64,
    pub kv: BTreeMap<String, Value>,
    /// Tensor directory, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Where tensor data starts: the end of the directory, rounded up to `general.alignment`.
    pub data_offset: u64,
}

/// One tensor's entry in the directory. `dims` are GGML's order (innermost first), the
/// reverse of PyTorch's shape; `offset` counts from [`Metadata::data_offset`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

struct Reader<R> {
    inner: R,
    pos: u64,
    path: PathBuf,
}

// Caps that reject corrupt lengths before allocating for them.
const MAX_STRING: u64 = 1 << 26;
const MAX_ARRAY: u64 = 1 << 28;

impl<R: Read> Reader<R> {
    fn fail(&self, m: impl Into<String>) -> Error {
        Error::format(&self.path, format!("byte {}", self.pos), m)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| self.fail(format!("truncated GGUF ({e})")))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.u64()?;
        if n > MAX_STRING {
            return Err(self.fail(format!("string length {n} is implausible")));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| self.fail(format!("truncated GGUF ({e})")))?;
        self.pos += n;
        String::from_utf8(buf).map_err(|e| self.fail(format!("string is not UTF-8: {e}")))
    }

    fn value(&mut self, ty: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U64(u8::from_le_bytes(self.bytes()?) as u64),
            1 => Value::I64(i8::from_le_bytes(self.bytes()?) as i64),
            2 => Value::U64(u16::from_le_bytes(self.bytes()?) as u64),
            3 => Value::I64(i16::from_le_bytes(self.bytes()?) as i64),
            4 => Value::U64(self.u32()? as u64),
            5 => Value::I64(i32::from_le_bytes(self.bytes()?) as i64),
            6 => Value::F64(f32::from_le_bytes(self.bytes()?) as f64),
            7 => Value::Bool(self.bytes::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                let elem = self.u32()?;
                let n = self.u64()?;
                if n > MAX_ARRAY || elem == 9 {
                    return Err(self.fail(format!(
                        "array of {n} elements of type {elem} is not supported"
                    )));
                }
                let mut out = Vec::with_capacity(n.min(1 << 20) as usize);
                for _ in 0..n {
                    out.push(self.value(elem)?);
                }
                Value::Array(out)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.bytes()?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes()?)),
            other => return Err(self.fail(format!("unknown GGUF value type {other}"))),
        })
    }
}

impl Metadata {
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut r = Reader {
            inner: BufReader::with_capacity(1 << 20, file),
            pos: 0,
            path: path.to_path_buf(),
        };
        if &r.bytes::<4>()? != b"GGUF" {
            return Err(r.fail("not a GGUF file (magic `GGUF` missing)"));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.fail(format!("GGUF version {version} (2 and 3 are supported)")));
        }
        let tensor_count = r.u64()?;
        let n_kv = r.u64()?;
        let mut kv = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let v = r.value(ty)?;
            kv.insert(key, v);
        }
        if tensor_count > MAX_ARRAY {
            return Err(r.fail(format!("{tensor_count} tensors is implausible")));
        }
        let mut tensors = Vec::with_capacity(tensor_count.min(1 << 16) as usize);
        for _ in 0..tensor_count {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims > 8 {
                return Err(r.fail(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = kv
            .get("general.alignment")
            .and_then(Value::as_u64)
            .unwrap_or(32)
            .max(1);
        let data_offset = r.pos.div_ceil(alignment) * alignment;
        Ok(Metadata {
            tensors,
            data_offset,
            path: path.to_path_buf(),
            version,
            tensor_count,
            kv,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.get(key)
    }

    /// A key that must be there, with a message naming it and the file otherwise.
    pub fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| Error::format(&self.path, "metadata", format!("key `{key}` is missing")))
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        let arr = self
            .require(key)?
            .as_array()
            .ok_or_else(|| self.bad(key, "an array"))?;
        arr.iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| self.bad(key, "an array of strings"))
            })
            .collect()
    }

    pub fn bad(&self, key: &str, want: &str) -> Error {
        Error::format(&self.path, "metadata", format!("key `{key}` is not {want}"))
    }
}
