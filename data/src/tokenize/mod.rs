//! Tokenizers: train a byte-level BPE, load any `tokenizer.json`, and turn documents into a
//! Megatron indexed dataset (one sequence per document, an end-of-document token appended).

pub mod convert;
mod deepseek_llm_regex;
pub mod gguf;

use crate::indexed::{IndexedWriter, TokenDType};
use crate::pipeline::output::read_docs;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

pub fn load(path: &Path) -> Result<Tokenizer> {
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no tokenizer file"),
        ));
    }
    Tokenizer::from_file(path).map_err(|e| Error::format(path, "tokenizer.json", e.to_string()))
}

/// Documents in `.jsonl[.zst|.gz]` files or folders of them (what pipelines write).
pub fn document_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let spec = crate::read::SourceSpec {
        name: "input".into(),
        format: crate::read::Format::Jsonl,
        paths: inputs.to_vec(),
        text_fields: None,
        id_field: None,
        metadata_fields: None,
        known_fields: None,
    };
    let files = spec.files()?;
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "no .jsonl, .jsonl.gz or .jsonl.zst files in {inputs:?}"
        )));
    }
    Ok(files)
}

/// Settings of a byte-level BPE (GPT-2 style: bytes as the base alphabet, no unknown token).
#[derive(Clone, Debug)]
pub struct BpeSettings {
    pub vocab_size: usize,
    pub min_frequency: u64,
    pub special_tokens: Vec<String>,
}

/// Trains a byte-level BPE on the documents of `files`.
pub fn train_bpe(files: &[PathBuf], settings: &BpeSettings) -> Result<Tokenizer> {
    let mut texts = Vec::new();
    for f in files {
        read_docs(f, |doc| {
            texts.push(doc.text);
            Ok(())
        })?;
    }
    let trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(settings.vocab_size)
        .min_frequency(settings.min_frequency)
        .special_tokens(
            settings
                .special_tokens
                .iter()
                .map(|t| AddedToken::from(t.clone(), true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = tokenizers::models::TrainerWrapper::from(trainer);
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.with_post_processor(Some(ByteLevel::new(false, true, true)));
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(tok_err)?;
    Ok(tokenizer)
}

/// What `tokenize_documents` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizeSummary {
    pub documents: usize,
    pub tokens: u64,
    pub dtype: TokenDType,
}

/// Encodes every document of `files` into `<prefix>.bin/.idx`, appending `eod` when given.
pub fn tokenize_documents(
    tokenizer: &Tokenizer,
    files: &[PathBuf],
    prefix: &Path,
    eod: Option<u32>,
) -> Result<TokenizeSummary> {
    tokenize_documents_progress(tokenizer, files, prefix, eod, false)
}

/// [`tokenize_documents`] with a progress bar over the input files on stderr.
pub fn tokenize_documents_progress(
    tokenizer: &Tokenizer,
    files: &[PathBuf],
    prefix: &Path,
    eod: Option<u32>,
    progress: bool,
) -> Result<TokenizeSummary> {
    let vocab = tokenizer.get_vocab_size(true);
    let dtype = TokenDType::for_vocab(vocab);
    let mut writer = IndexedWriter::create(prefix, dtype)?;
    let mut batch: Vec<String> = Vec::with_capacity(512);
    let flush = |batch: &mut Vec<String>, writer: &mut IndexedWriter| -> Result<()> {
        let encodings = tokenizer
            .encode_batch(std::mem::take(batch), false)
            .map_err(tok_err)?;
        for enc in encodings {
            let mut ids = enc.get_ids().to_vec();
            ids.extend(eod);
            writer.add_document(&ids)?;
        }
        Ok(())
    };
    let bar = if progress {
        flagcore::telemetry::progress_bar(files.len() as u64, "tokenize")
    } else {
        indicatif::ProgressBar::hidden()
    };
    for f in files {
        read_docs(f, |doc| {
            batch.push(doc.text);
            if batch.len() == 512 {
                flush(&mut batch, &mut writer)?;
            }
            Ok(())
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    flush(&mut batch, &mut writer)?;
    let summary = TokenizeSummary {
        documents: writer.documents(),
        tokens: writer.tokens(),
        dtype,
    };
    writer.finish()?;
    Ok(summary)
}

/// Converts a GGUF vocabulary into a `tokenizer.json` tokenizer (see [`convert`]).
pub fn from_gguf(path: &Path, pre: Option<&str>) -> Result<Tokenizer> {
    let meta = gguf::Metadata::read(path)?;
    let json = convert::to_tokenizer_json(&meta, pre)?;
    let text = serde_json::to_string(&json).map_err(|e| Error::Tokenizer(e.to_string()))?;
    text.parse::<Tokenizer>()
        .map_err(|e| Error::format(path, "conversion", e.to_string()))
}

/// The id of a token that must exist (the end-of-document marker, typically).
pub fn token_id(tokenizer: &Tokenizer, token: &str) -> Result<u32> {
    tokenizer
        .token_to_id(token)
        .ok_or_else(|| Error::Tokenizer(format!("token `{token}` is not in the vocabulary")))
}
