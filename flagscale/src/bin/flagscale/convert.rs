//! `flagscale convert`: GGUF → Hugging Face folder (dequantised, query/key rows reordered to
//! the halves rotary layout `transformers` uses, tokenizer and chat template carried over), and
//! Hugging Face or flagscale training checkpoints → a clean Hugging Face folder (shards merged,
//! dtype changed, optimizer state dropped). The output appears complete or not at all.

use anyhow::Context;
use flagscale::model::Llama;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// A .gguf file or a model folder (`config.json` + safetensors).
    input: PathBuf,
    /// The folder to write (must not exist unless --force).
    output: PathBuf,
    /// Weights dtype of the output: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: flagcore::DType,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

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

fn write_json(path: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    flagcore::fsutil::write_atomic(path, &serde_json::to_vec_pretty(v)?)?;
    Ok(())
}

fn fill(input: &Path, scratch: &Path, dtype: flagcore::DType) -> anyhow::Result<()> {
    if crate::is_gguf(input) {
        let mut model = flagscale::gguf::load(input, flagcore::DType::F32, tch::Device::Cpu)?;
        model.use_half_rope();
        model.save(scratch, dtype)?;
        let tok = flagdata::tokenize::from_gguf(input, None)?;
        tok.save(scratch.join("tokenizer.json"), true)
            .map_err(|e| anyhow::anyhow!("writing tokenizer.json: {e}"))?;
        let meta = flagdata::tokenize::gguf::Metadata::read(input)?;
        write_json(
            &scratch.join("tokenizer_config.json"),
            &gguf_tokenizer_config(&meta, model.config.max_position_embeddings),
        )?;
    } else {
        anyhow::ensure!(
            input.join("config.json").is_file(),
            "{} is neither a .gguf file nor a folder with config.json",
            input.display()
        );
        let mut model = Llama::load(input, flagcore::DType::F32, tch::Device::Cpu)?;
        model.use_half_rope();
        model.save(scratch, dtype)?;
        for f in TOKENIZER_FILES {
            let src = input.join(f);
            if src.is_file() {
                std::fs::copy(&src, scratch.join(f))
                    .with_context(|| format!("copying {}", src.display()))?;
            }
        }
    }
    Ok(())
}

pub fn run(a: &ConvertArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.input.exists(),
        "{}: no such file or folder",
        a.input.display()
    );
    if a.output.exists() && !a.force {
        anyhow::bail!("{} exists; pass --force to replace it", a.output.display());
    }
    let name = a
        .output
        .file_name()
        .context("the output needs a folder name")?
        .to_string_lossy();
    let scratch = a
        .output
        .with_file_name(format!(".{name}.partial-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    if let Err(e) = fill(&a.input, &scratch, a.dtype) {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e);
    }
    if a.output.exists() {
        std::fs::remove_dir_all(&a.output)
            .with_context(|| format!("removing {}", a.output.display()))?;
    }
    std::fs::rename(&scratch, &a.output)
        .with_context(|| format!("moving {} into place", a.output.display()))?;
    println!("wrote {}", a.output.display());
    Ok(())
}
