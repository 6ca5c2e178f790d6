//! Parity with Hugging Face `transformers`: its randomly initialised LlamaForCausalLM
//! checkpoints (GQA with an untied head, MHA with a tied one) load in ours with the same fp32
//! logits, and what we save loads back in `transformers` with the same logits
//! (`scripts/hf_reference.py`). Runs where `cargo xtask test` prepared Python (FLAGOPEN_PYCHECK).

mod common;

use flagscale::model::Llama;
use tch::Tensor;

#[test]
fn transformers_checkpoints_give_the_same_logits_both_ways() {
    let Ok(pythonpath) = std::env::var("FLAGOPEN_PYCHECK") else {
        eprintln!("skipped: FLAGOPEN_PYCHECK is not set (cargo xtask test sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::python(
        &pythonpath,
        "hf_reference.py",
        &["make", dir.path().to_str().unwrap()],
    );
    for name in ["gqa-untied", "mha-tied"] {
        let model_dir = dir.path().join(name);
        let model = Llama::load(&model_dir, flagcore::DType::F32, tch::Device::Cpu).unwrap();
        let reference = flagcore::torch::load_safetensors(
            &model_dir.join("reference.safetensors"),
            None,
            tch::Device::Cpu,
        )
        .unwrap();
        let get = |n: &str| {
            reference
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, t)| t.shallow_clone())
                .unwrap()
        };
        let (ids, want) = (get("ids"), get("logits"));
        let got = model.forward(&ids).unwrap();
        let diff = (&got - &want).abs().max().double_value(&[]);
        eprintln!("{name}: transformers -> flagscale max abs logit diff {diff:.2e}");
        assert!(diff < 1e-4, "{name}: {diff}");

        // Ours saved, read by transformers.
        let saved = dir.path().join(format!("{name}-saved"));
        model.save(&saved, flagcore::DType::F32).unwrap();
        std::fs::copy(
            model_dir.join("reference.safetensors"),
            saved.join("reference.safetensors"),
        )
        .unwrap();
        let out = common::python(
            &pythonpath,
            "hf_reference.py",
            &["check", saved.to_str().unwrap()],
        );
        let back: f64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
        eprintln!("{name}: flagscale -> transformers max abs logit diff {back:.2e}");
        assert!(back < 1e-4, "{name}: {back}");
    }
}

#[test]
fn mismatched_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = r#"{"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "vocab_size": 11, "tie_word_embeddings": true}"#;
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let t = |shape: &[i64]| Tensor::zeros(shape, (tch::Kind::Float, tch::Device::Cpu));
    let mut tensors = vec![
        ("model.embed_tokens.weight", t(&[11, 8])),
        ("model.layers.0.input_layernorm.weight", t(&[8])),
        ("model.layers.0.self_attn.q_proj.weight", t(&[8, 8])),
        ("model.layers.0.self_attn.k_proj.weight", t(&[8, 8])),
        ("model.layers.0.self_attn.v_proj.weight", t(&[8, 8])),
        ("model.layers.0.self_attn.o_proj.weight", t(&[8, 8])),
        ("model.layers.0.post_attention_layernorm.weight", t(&[8])),
        ("model.layers.0.mlp.gate_proj.weight", t(&[16, 8])),
        ("model.layers.0.mlp.up_proj.weight", t(&[16, 8])),
        ("model.layers.0.mlp.down_proj.weight", t(&[8, 16])),
        ("model.norm.weight", t(&[8])),
    ];
    let save = |tensors: &[(&str, Tensor)]| {
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        flagcore::torch::save_safetensors(&dir.path().join("model.safetensors"), &refs, None, None)
            .unwrap();
    };
    save(&tensors);
    let m = Llama::load(dir.path(), flagcore::DType::F32, tch::Device::Cpu).unwrap();
    assert_eq!(
        m.forward(&Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]))
            .unwrap()
            .size(),
        [1, 3, 11]
    );
    let err = m
        .forward(&Tensor::from_slice(&[1i64, 11]).view([1, 2]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("token ids must lie in 0..11"), "{err}");

    tensors[2].1 = t(&[6, 8]);
    save(&tensors);
    let err = Llama::load(dir.path(), flagcore::DType::F32, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "`model.layers.0.self_attn.q_proj.weight`: shape [6, 8], the config needs [8, 8]"
        ),
        "{err}"
    );

    tensors[2].1 = t(&[8, 8]);
    tensors.push(("model.layers.1.mlp.up_proj.weight", t(&[16, 8])));
    save(&tensors);
    let err = Llama::load(dir.path(), flagcore::DType::F32, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`model.layers.1.mlp.up_proj.weight`: not part of this model"),
        "{err}"
    );

    std::fs::write(dir.path().join("model.safetensors"), b"truncated").unwrap();
    let err = Llama::load(dir.path(), flagcore::DType::F32, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}
