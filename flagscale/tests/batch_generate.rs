//! Batched generation with SmolLM2: prompts of different lengths, left-padded into one batch
//! with per-row positions and padding masks, decode the same tokens as each prompt alone —
//! greedy and seeded sampling, rows that stop early included.

mod common;

use flagscale::generate::{generate, generate_batch, BatchRequest, SamplingParams};

type Sink<'a> = Box<dyn FnMut(&str) -> bool + 'a>;

#[test]
fn a_batch_decodes_what_each_prompt_decodes_alone() {
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let (model, tok) = common::smollm2_model(&gguf);
    let eos = flagscale::generate::eos_ids(&tok);
    let prompts = [
        "The capital of France is",
        "Once upon a time, in a small village by the sea, there lived",
        "1, 2, 3,",
        "Water boils at",
    ];
    let params = [
        SamplingParams {
            max_new_tokens: 12,
            eos: eos.clone(),
            ..Default::default()
        },
        SamplingParams {
            max_new_tokens: 10,
            temperature: 0.8,
            top_k: Some(40),
            seed: 7,
            eos: eos.clone(),
            ..Default::default()
        },
        SamplingParams {
            max_new_tokens: 16,
            stop: vec![" 7".into()],
            eos: eos.clone(),
            ..Default::default()
        },
        SamplingParams {
            max_new_tokens: 3,
            eos,
            ..Default::default()
        },
    ];
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| tok.encode(*p, false).unwrap().get_ids().to_vec())
        .collect();
    let alone: Vec<_> = ids
        .iter()
        .zip(&params)
        .map(|(i, p)| generate(&model, &tok, i, p).unwrap())
        .collect();
    let mut streamed = vec![String::new(); prompts.len()];
    let mut sinks: Vec<Sink<'_>> = streamed
        .iter_mut()
        .map(|s| {
            Box::new(move |piece: &str| {
                s.push_str(piece);
                true
            }) as Box<dyn FnMut(&str) -> bool>
        })
        .collect();
    let mut requests: Vec<BatchRequest<'_>> = ids
        .iter()
        .zip(&params)
        .zip(sinks.iter_mut())
        .map(|((i, p), s)| BatchRequest {
            prompt: i,
            params: p,
            on_text: &mut **s,
        })
        .collect();
    let together = generate_batch(&model, &tok, &mut requests).unwrap();
    drop(requests);
    drop(sinks);
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        eprintln!("{i}: {:?} | {:?}", a.text, b.text);
        assert_eq!(a.tokens, b.tokens, "prompt {i}");
        assert_eq!(a.finish_reason, b.finish_reason, "prompt {i}");
        assert_eq!(streamed[i], b.text, "prompt {i}: streamed pieces add up");
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < 1e-3, "prompt {i}: {x} vs {y}");
        }
    }
    assert_eq!(
        together[2].finish_reason,
        flagscale::generate::FinishReason::Stop
    );
    assert_eq!(together[3].tokens.len(), 3);
}
