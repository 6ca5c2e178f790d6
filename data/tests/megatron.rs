//! Megatron-LM reads what we write: People's Daily paragraphs tokenized with Aquila's real
//! vocabulary (int32 tokens) and with a small trained BPE (uint16 tokens) are read back by
//! megatron-core's `IndexedDataset` (scripts/check_megatron.py), which must see exactly the
//! token ids Hugging Face `tokenizers` gives for each document, plus the end-of-document token.
//! Runs where `cargo xtask test` has prepared the Python side (FLAGOPEN_PYCHECK).

mod common;

use flagdata::pipeline::output::DocWriter;
use flagdata::tokenize::{self, BpeSettings};
use flagdata::Document;
use std::path::Path;

fn check(script_env: &str, prefix: &Path, docs: &Path, tokenizer: &Path, eod: u32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_megatron.py");
    let stdout = flagcore::python::run_ok(
        flagcore::python::test_script(&script)
            .args([
                "--prefix",
                prefix.to_str().unwrap(),
                "--docs",
                docs.to_str().unwrap(),
            ])
            .args([
                "--tokenizer",
                tokenizer.to_str().unwrap(),
                "--eod",
                &eod.to_string(),
            ])
            .env("PYTHONPATH", script_env),
    );
    eprintln!("{}", stdout.trim());
    assert!(stdout.contains("identical"), "{stdout}");
}

#[test]
fn megatron_core_reads_our_datasets() {
    let Ok(pycheck) = std::env::var("FLAGOPEN_PYCHECK") else {
        eprintln!("skipped: FLAGOPEN_PYCHECK is not set (cargo xtask test sets it)");
        return;
    };
    let Some(paragraphs) = common::peoples_daily() else {
        return;
    };
    let Some(models) = common::asset("llama-cpp-python-0.3.36") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs/pd.jsonl.zst");
    let mut w = DocWriter::create(&docs).unwrap();
    for (i, p) in paragraphs.iter().take(3000).enumerate() {
        w.write(&Document::new(i.to_string(), p.as_str())).unwrap();
    }
    w.finish().unwrap();
    let files = vec![docs.clone()];

    let aquila = tokenize::from_gguf(
        &models.join("vendor/llama.cpp/models/ggml-vocab-aquila.gguf"),
        None,
    )
    .unwrap();
    let aquila_json = dir.path().join("aquila.json");
    aquila.save(&aquila_json, false).unwrap();
    let eod = tokenize::token_id(&aquila, "</s>").unwrap();
    let s = tokenize::tokenize_documents(&aquila, &files, &dir.path().join("aquila"), Some(eod))
        .unwrap();
    assert_eq!(s.dtype, flagdata::indexed::TokenDType::I32);
    check(
        &pycheck,
        &dir.path().join("aquila"),
        &docs,
        &aquila_json,
        eod,
    );

    let bpe = tokenize::train_bpe(
        &files,
        &BpeSettings {
            vocab_size: 8000,
            min_frequency: 2,
            special_tokens: vec!["<|endoftext|>".into()],
        },
    )
    .unwrap();
    let bpe_json = dir.path().join("bpe.json");
    bpe.save(&bpe_json, false).unwrap();
    let eod = tokenize::token_id(&bpe, "<|endoftext|>").unwrap();
    let s = tokenize::tokenize_documents(&bpe, &files, &dir.path().join("bpe"), Some(eod)).unwrap();
    assert_eq!(s.dtype, flagdata::indexed::TokenDType::U16);
    check(&pycheck, &dir.path().join("bpe"), &docs, &bpe_json, eod);
}
