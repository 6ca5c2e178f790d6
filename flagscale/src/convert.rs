//! Conversion to a Hugging Face folder: GGUF (dequantised, query/key rows reordered to the
//! halves rotary layout `transformers` uses, tokenizer and chat template carried over), and
//! Hugging Face or flagscale training checkpoints (shards merged, dtype changed, optimizer
//! state dropped). The output appears complete or not at all.

use crate::source::{is_gguf, load_model};
use crate::{Error, Result};
use std::path::Path;

/// Files of a Hugging Face folder that describe the tokenizer and generation defaults.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
];

/// `tokenizer_config.json` for a GGUF: its chat template and special tokens.
fn gguf_tokenizer_config(
    meta: &flagdata::tokenize::gguf::Metadata,
    context: usize,
) -> serde_json::Value {
    let tokens = meta.strings("tokenizer.ggml.tokens").unwrap_or_default();
    let token = |key: &str| {
        meta.get(key)
            .and_then(|v| v.as_u64())
            .and_then(|i| tokens.get(i as usize).cloned())
    };
    let mut cfg = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": context,
        "clean_up_tokenization_spaces": false,
    });
    for (field, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(t) = token(key) {
            cfg[field] = t.into();
        }
    }
    if let Some(t) = meta.get("tokenizer.chat_template").and_then(|v| v.as_str()) {
        cfg["chat_template"] = t.into();
    }
    cfg
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Invalid(e.to_string()))?;
    flagcore::fsutil::write_atomic(path, &bytes)?;
    Ok(())
}

fn fill(input: &Path, scratch: &Path, dtype: flagcore::DType) -> Result<()> {
    let gguf = is_gguf(input);
    if !gguf && !input.join("config.json").is_file() {
        return Err(Error::Invalid(format!(
            "{} is neither a .gguf file nor a folder with config.json",
            input.display()
        )));
    }
    let mut model = load_model(input, flagcore::DType::F32, tch::Device::Cpu)?;
    model.use_half_rope();
    model.save(scratch, dtype)?;
    if gguf {
        let tok = flagdata::tokenize::from_gguf(input, None)?;
        tok.save(scratch.join("tokenizer.json"), true)
            .map_err(|e| Error::Invalid(format!("writing tokenizer.json: {e}")))?;
        let meta = flagdata::tokenize::gguf::Metadata::read(input)?;
        write_json(
            &scratch.join("tokenizer_config.json"),
            &gguf_tokenizer_config(&meta, model.config.max_position_embeddings),
        )?;
        return Ok(());
    }
    for f in TOKENIZER_FILES {
        let src = input.join(f);
        if src.is_file() {
            std::fs::copy(&src, scratch.join(f)).map_err(|e| Error::Io {
                path: src.clone(),
                error: e,
            })?;
        }
    }
    Ok(())
}

/// Converts `input` (a .gguf file or a model folder) into the folder `output`, written in a
/// scratch folder beside it and renamed into place; an existing `output` is replaced only
/// with `force`.
pub fn to_hf(input: &Path, output: &Path, dtype: flagcore::DType, force: bool) -> Result<()> {
    if !input.exists() {
        return Err(Error::Invalid(format!(
            "{}: no such file or folder",
            input.display()
        )));
    }
    if output.exists() && !force {
        return Err(Error::Invalid(format!(
            "{} exists; pass --force to replace it",
            output.display()
        )));
    }
    let name = output
        .file_name()
        .ok_or_else(|| Error::Invalid("the output needs a folder name".into()))?
        .to_string_lossy();
    let scratch = output.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| Error::Io {
        path: scratch.clone(),
        error: e,
    })?;
    if let Err(e) = fill(input, &scratch, dtype) {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e);
    }
    let io = |e: std::io::Error| Error::Io {
        path: output.to_path_buf(),
        error: e,
    };
    if output.exists() {
        std::fs::remove_dir_all(output).map_err(io)?;
    }
    std::fs::rename(&scratch, output).map_err(io)
}
