//! GGUF vocabularies converted to `tokenizer.json` reproduce llama.cpp's test vectors exactly
//! (ids from the Hugging Face tokenizers, in `ggml-vocab-<name>.gguf.inp/.out` of the
//! llama-cpp-python 0.3.36 sdist). Runs where `cargo xtask assets` has cached the sdist.

use flagdata::tokenize::{convert::load_test_vectors, from_gguf, gguf::Metadata};
use std::path::PathBuf;

fn models() -> Option<PathBuf> {
    let dir =
        flagcore::cache::asset_dir("llama-cpp-python-0.3.36")?.join("vendor/llama.cpp/models");
    dir.is_dir().then_some(dir)
}

#[test]
fn converted_vocabularies_match_llama_cpp_test_vectors() {
    let Some(dir) = models() else {
        eprintln!("skipped: llama-cpp-python sdist not cached (run `cargo xtask assets`)");
        return;
    };
    let names = [
        "gpt-2",
        "llama-bpe",
        "qwen2",
        "qwen35",
        "starcoder",
        "refact",
        "command-r",
        "falcon",
        "deepseek-coder",
        "deepseek-llm",
        "mpt",
        "llama-spm",
        "phi-3",
    ];
    let mut report = Vec::new();
    for name in names {
        let path = dir.join(format!("ggml-vocab-{name}.gguf"));
        let tok = from_gguf(&path, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cases = load_test_vectors(&path).unwrap();
        assert!(cases.len() >= 46, "{name}: {} cases", cases.len());
        let failed: Vec<&str> = cases
            .iter()
            .filter(|(text, want)| {
                tok.encode(text.as_str(), false).unwrap().get_ids() != want.as_slice()
            })
            .map(|(text, _)| text.as_str())
            .collect();
        report.push(format!(
            "{name}: {}/{}",
            cases.len() - failed.len(),
            cases.len()
        ));
        assert!(
            failed.is_empty(),
            "{name}: {} of {} differ, e.g. {:?}",
            failed.len(),
            cases.len(),
            &failed[..failed.len().min(3)]
        );
    }
    eprintln!("{}", report.join(", "));
}

#[test]
fn aquila_vocabulary_converts_and_round_trips_chinese() {
    let Some(dir) = models() else {
        eprintln!("skipped: llama-cpp-python sdist not cached (run `cargo xtask assets`)");
        return;
    };
    let path = dir.join("ggml-vocab-aquila.gguf");
    let meta = Metadata::read(&path).unwrap();
    assert_eq!(meta.version, 2);
    assert_eq!(
        meta.strings("tokenizer.ggml.tokens").unwrap().len(),
        100_008
    );
    assert_eq!(meta.strings("tokenizer.ggml.merges").unwrap().len(), 99_743);
    assert!(
        meta.get("tokenizer.ggml.pre").is_none(),
        "aquila's file names no pre-tokenizer"
    );
    for pre in [None, Some("hf-gpt2")] {
        let tok = from_gguf(&path, pre).unwrap();
        assert_eq!(tok.get_vocab_size(true), 100_008);
        let text = "北京智源人工智能研究院发布了悟道·天鹰（Aquila）语言大模型。Hello, 2023!";
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        assert!(
            ids.len() < text.chars().count(),
            "{pre:?}: no merges applied ({} ids)",
            ids.len()
        );
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        assert_eq!(tok.token_to_id("</s>"), Some(100_007));
    }
}

#[test]
fn damaged_gguf_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.gguf");
    std::fs::write(
        &p,
        b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00",
    )
    .unwrap();
    let err = Metadata::read(&p).unwrap_err().to_string();
    assert!(err.contains("x.gguf") && err.contains("truncated"), "{err}");
    std::fs::write(&p, b"GGML").unwrap();
    assert!(Metadata::read(&p)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    let mut v4 = b"GGUF\x04\x00\x00\x00".to_vec();
    v4.extend([0u8; 16]);
    std::fs::write(&p, v4).unwrap();
    assert!(Metadata::read(&p)
        .unwrap_err()
        .to_string()
        .contains("version 4"));
}
