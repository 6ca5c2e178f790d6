//! Tokenizers: a byte-level BPE trained on documents tokenizes them into a Megatron dataset
//! that decodes back to the same text.

use flagdata::indexed::IndexedDataset;
use flagdata::pipeline::output::DocWriter;
use flagdata::tokenize::{self, BpeSettings};
use flagdata::Document;

#[test]
fn train_tokenize_and_decode_back() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs/part.jsonl.zst");
    let mut w = DocWriter::create(&docs).unwrap();
    let texts = [
        "人民日报一九九八年一月一日社论：迎接新的一年。",
        "The quick brown fox jumps over the lazy dog.",
        "深化改革，扩大开放，促进经济发展和社会全面进步。",
        "To be, or not to be, that is the question.",
    ];
    for (i, t) in texts.iter().cycle().take(40).enumerate() {
        w.write(&Document::new(i.to_string(), *t)).unwrap();
    }
    w.finish().unwrap();
    let files = tokenize::document_files(&[dir.path().join("docs")]).unwrap();
    let settings = BpeSettings {
        vocab_size: 400,
        min_frequency: 2,
        special_tokens: vec!["<|endoftext|>".into()],
    };
    let tok = tokenize::train_bpe(&files, &settings).unwrap();
    assert!(tok.get_vocab_size(true) > 256 && tok.get_vocab_size(true) <= 400);
    let eod = tokenize::token_id(&tok, "<|endoftext|>").unwrap();
    assert!(tokenize::token_id(&tok, "<nope>").is_err());

    let prefix = dir.path().join("shards/zh_en");
    let summary = tokenize::tokenize_documents(&tok, &files, &prefix, Some(eod)).unwrap();
    assert_eq!(summary.documents, 40);
    let ds = IndexedDataset::open(&prefix).unwrap();
    assert_eq!(ds.total_tokens(), summary.tokens);
    for (i, want) in texts.iter().enumerate() {
        let ids: Vec<u32> = ds.get(i).unwrap().into_iter().map(|t| t as u32).collect();
        assert_eq!(*ids.last().unwrap(), eod);
        let text = tok.decode(&ids[..ids.len() - 1], false).unwrap();
        assert_eq!(text, *want);
    }
    // Saved and reloaded, the tokenizer encodes identically.
    let path = dir.path().join("tokenizer.json");
    tok.save(&path, false).unwrap();
    let again = tokenize::load(&path).unwrap();
    assert_eq!(
        again.encode(texts[0], false).unwrap().get_ids(),
        tok.encode(texts[0], false).unwrap().get_ids()
    );
}

#[test]
fn pipeline_stats_count_tokens_with_a_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in/docs.jsonl");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let texts = [
        "深化改革，扩大开放。",
        "The quick brown fox jumps over the lazy dog.",
        "短",
    ];
    let body: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}\n", serde_json::json!({"id": i, "text": t})))
        .collect();
    std::fs::write(&input, body).unwrap();
    let docs = dir.path().join("docs/part.jsonl.zst");
    let mut w = DocWriter::create(&docs).unwrap();
    for (i, t) in texts.iter().cycle().take(30).enumerate() {
        w.write(&Document::new(i.to_string(), *t)).unwrap();
    }
    w.finish().unwrap();
    let tok = tokenize::train_bpe(
        &[docs],
        &BpeSettings {
            vocab_size: 300,
            min_frequency: 2,
            special_tokens: vec![],
        },
    )
    .unwrap();
    let tok_path = dir.path().join("tok.json");
    tok.save(&tok_path, false).unwrap();
    let yaml = format!(
        "name: t\ninputs: [{{name: s, format: jsonl, paths: [{}]}}]\noutput: {{dir: {}}}\nstats_tokenizer: {}\nsteps: [{{length: {{min_chars: 2}}}}]\n",
        input.display(),
        dir.path().join("out").display(),
        tok_path.display()
    );
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, yaml).unwrap();
    let s = flagdata::pipeline::Pipeline::load(&p, &[])
        .unwrap()
        .run(false)
        .unwrap()
        .stats;
    let count = |t: &str| tok.encode(t, false).unwrap().len() as u64;
    assert_eq!(s.tokens_in, texts.iter().map(|t| count(t)).sum::<u64>());
    assert_eq!(s.tokens_out, count(texts[0]) + count(texts[1]));
}
