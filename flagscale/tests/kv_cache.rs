//! The KV cache changes nothing: logits of a sequence run whole equal those of the same
//! sequence run in chunks (several tokens at a time, then one at a time) against the cache.

use flagscale::model::{KvCache, Llama, LlamaConfig};
use std::collections::HashMap;
use tch::{Kind, Tensor};

fn random_model(interleaved: bool) -> Llama {
    let cfg: LlamaConfig = serde_json::from_value(serde_json::json!({
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 50, "rope_interleaved": interleaved
    }))
    .unwrap();
    tch::manual_seed(3);
    let r = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, tch::Device::Cpu)) * 0.2;
    let mut t = HashMap::new();
    t.insert("model.embed_tokens.weight".to_string(), r(&[50, 32]));
    for i in 0..2 {
        for (n, s) in [
            ("input_layernorm.weight", vec![32]),
            ("self_attn.q_proj.weight", vec![32, 32]),
            ("self_attn.k_proj.weight", vec![16, 32]),
            ("self_attn.v_proj.weight", vec![16, 32]),
            ("self_attn.o_proj.weight", vec![32, 32]),
            ("post_attention_layernorm.weight", vec![32]),
            ("mlp.gate_proj.weight", vec![64, 32]),
            ("mlp.up_proj.weight", vec![64, 32]),
            ("mlp.down_proj.weight", vec![32, 64]),
        ] {
            t.insert(
                format!("model.layers.{i}.{n}"),
                r(&s) + if s.len() == 1 { 1.0 } else { 0.0 },
            );
        }
    }
    t.insert("model.norm.weight".to_string(), r(&[32]) + 1.0);
    t.insert("lm_head.weight".to_string(), r(&[50, 32]));
    Llama::from_tensors(cfg, t, std::path::Path::new("random")).unwrap()
}

#[test]
fn chunked_and_incremental_runs_equal_the_whole() {
    for interleaved in [false, true] {
        let model = random_model(interleaved);
        let ids: Vec<i64> = (0..11).map(|i| (i * 7 + 3) % 50).collect();
        let whole = model
            .forward(&Tensor::from_slice(&ids).view([1, -1]))
            .unwrap();
        let mut cache = KvCache::new();
        let mut parts = vec![model
            .forward_cached(
                &Tensor::from_slice(&ids[..4]).view([1, -1]),
                Some(&mut cache),
            )
            .unwrap()];
        parts.push(
            model
                .forward_cached(
                    &Tensor::from_slice(&ids[4..8]).view([1, -1]),
                    Some(&mut cache),
                )
                .unwrap(),
        );
        for &t in &ids[8..] {
            parts.push(
                model
                    .forward_cached(&Tensor::from_slice(&[t]).view([1, 1]), Some(&mut cache))
                    .unwrap(),
            );
        }
        assert_eq!(cache.len(), 11);
        let joined = Tensor::cat(&parts, 1);
        let diff = (&whole - &joined).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "interleaved={interleaved}: {diff}");
    }
}

#[test]
fn context_overflow_is_an_error() {
    let model = random_model(false);
    let ids = Tensor::zeros([1, 2049], (Kind::Int64, tch::Device::Cpu));
    let err = model.forward(&ids).unwrap_err().to_string();
    assert!(err.contains("exceed the model's context of 2048"), "{err}");
}
