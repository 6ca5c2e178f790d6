//! Where a model comes from: a Hugging Face or flagscale checkpoint folder (`config.json`,
//! safetensors, `tokenizer.json`) or a llama.cpp GGUF file. One place decides which, so every
//! command and crate opens models the same way.

use crate::model::{Llama, LlamaConfig};
use crate::{Error, Result};
use std::path::Path;

/// A GGUF file (by extension), rather than a checkpoint folder.
pub fn is_gguf(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gguf")
}

/// The model's config; for GGUF the one [`load_model`] gives (llama.cpp's metadata).
pub fn load_config(path: &Path) -> Result<LlamaConfig> {
    if is_gguf(path) {
        let meta = flagdata::tokenize::gguf::Metadata::read(path)?;
        crate::gguf::config(&meta)
    } else {
        LlamaConfig::from_file(&path.join("config.json"))
    }
}

/// The weights, converted to `dtype` on `device` (GGUF dequantised).
pub fn load_model(path: &Path, dtype: flagcore::DType, device: tch::Device) -> Result<Llama> {
    if is_gguf(path) {
        crate::gguf::load(path, dtype, device)
    } else {
        Llama::load(path, dtype, device)
    }
}

/// The tokenizer: GGUF's embedded vocabulary, or the folder's `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer> {
    let tok = if is_gguf(path) {
        flagdata::tokenize::from_gguf(path, None)
    } else {
        flagdata::tokenize::load(&path.join("tokenizer.json"))
    };
    tok.map_err(|e| Error::Invalid(format!("{}: tokenizer: {e}", path.display())))
}
