//! safetensors files of named tensors, with dtype conversion on load and save.

use crate::fsutil::write_atomic_with;
use crate::{DType, Error, Result};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

fn st_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Safetensors {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Loads every tensor of a file, sorted by name, converted to `dtype` (floating-point tensors
/// only; integer tensors keep theirs) and moved to `device`. The file is memory-mapped.
pub fn load_safetensors(
    path: &Path,
    dtype: Option<DType>,
    device: tch::Device,
) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and dropped before return; a file truncated underneath us
    // by another process is outside what any reader can defend against.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&mmap).map_err(|e| st_error(path, e.to_string()))?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let stored = DType::from_safetensors(view.dtype()).ok_or_else(|| {
            st_error(
                path,
                format!("tensor `{name}` has unsupported dtype {:?}", view.dtype()),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let mut t = Tensor::f_from_data_size(view.data(), &shape, stored.into())?;
        if let Some(target) = dtype.filter(|t| t.is_float() && stored.is_float()) {
            if target != stored {
                t = t.f_to_kind(target.into())?;
            }
        }
        if device != tch::Device::Cpu {
            t = t.f_to_device(device)?;
        }
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Saves named tensors (any device, any strides), converting floating-point ones to `dtype`,
/// with optional string metadata; written atomically, so a crash never leaves a torn file.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    dtype: Option<DType>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    struct Owned {
        dtype: DType,
        shape: Vec<usize>,
        bytes: Vec<u8>,
    }
    impl safetensors::View for &Owned {
        fn dtype(&self) -> safetensors::Dtype {
            self.dtype.to_safetensors()
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.bytes)
        }
        fn data_len(&self) -> usize {
            self.bytes.len()
        }
    }
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let stored = DType::try_from(t.f_kind()?)?;
        let target = dtype
            .filter(|d| d.is_float() && stored.is_float())
            .unwrap_or(stored);
        let t = t
            .f_to_device(tch::Device::Cpu)?
            .f_to_kind(target.into())?
            .f_contiguous()?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * target.size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        owned.push((
            name.to_string(),
            Owned {
                dtype: target,
                shape,
                bytes,
            },
        ));
    }
    let views: Vec<(&str, &Owned)> = owned.iter().map(|(n, o)| (n.as_str(), o)).collect();
    let bytes =
        safetensors::serialize(views, metadata).map_err(|e| st_error(path, e.to_string()))?;
    write_atomic_with(path, |f| std::io::Write::write_all(f, &bytes))
}
