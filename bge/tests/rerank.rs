//! Cross-encoder scores equal transformers' on random-weight XLM-R and BERT sequence
//! classifiers (scripts/rerank_reference.py) within 1e-5, with the same pair token ids and
//! types, sigmoid as FlagEmbedding's `normalize`, padded batches included, through the CPU
//! plan (and libtorch's path giving the same hidden states). Runs where
//! `cargo xtask test` set FLAGOPEN_PYCHECK and the pinned MiniLM asset (its tokenizer) is
//! cached.

use bge::rerank::Reranker;

mod common;

#[test]
fn reranker_scores_match_transformers() {
    let Some((tmp, r)) = common::rerank_models() else {
        return;
    };
    let max_length = r["max_length"].as_u64().unwrap() as usize;
    let pairs: Vec<(String, String)> = r["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect();
    for name in ["xlmr", "bert"] {
        let mut rr = Reranker::load(
            &tmp.path().join(name),
            max_length,
            tch::Kind::Float,
            tch::Device::Cpu,
        )
        .unwrap();
        for (pair, want) in pairs.iter().zip(r[name].as_array().unwrap()) {
            let e = rr
                .tokenizer
                .encode((pair.0.as_str(), pair.1.as_str()), true)
                .unwrap();
            let ids: Vec<u64> = e.get_ids().iter().map(|&i| i as u64).collect();
            let types: Vec<u64> = e.get_type_ids().iter().map(|&i| i as u64).collect();
            let want_ids: Vec<u64> = want["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let want_types: Vec<u64> = want["types"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(ids, want_ids, "{name}: ids of {pair:?}");
            assert_eq!(types, want_types, "{name}: types of {pair:?}");
        }
        let want: Vec<f64> = r[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["logit"].as_f64().unwrap())
            .collect();
        // One padded batch of all pairs, then one pair per batch: both equal the reference.
        for batch in [32, 1] {
            rr.batch_size = batch;
            let got = rr.score(&pairs, false).unwrap();
            let sig = rr.score(&pairs, true).unwrap();
            assert_eq!((got.len(), sig.len()), (want.len(), want.len()));
            for ((g, s), w) in got.iter().zip(&sig).zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5, "{name} logit {g} vs {w}");
                let ws = 1.0 / (1.0 + (-w).exp());
                assert!((*s as f64 - ws).abs() < 1e-6, "{name} sigmoid {s} vs {ws}");
            }
        }
        // Padding past the longest pair (what batches on CUDA carry: widths in steps of 16,
        // within max_length) is masked: the logits stay those of the tight batch.
        let enc: Vec<(Vec<u32>, Vec<u32>)> = pairs
            .iter()
            .map(|(q, p)| rr.tokenize_pair(q, p).map(|(i, t, _)| (i, t)).unwrap())
            .filter(|(i, _)| i.len() < rr.max_length)
            .collect();
        let ids: Vec<&[u32]> = enc.iter().map(|e| e.0.as_slice()).collect();
        let types: Vec<&[u32]> = enc.iter().map(|e| e.1.as_slice()).collect();
        let longest = ids.iter().map(|r| r.len()).max().unwrap();
        let pad = rr.bert.config.pad_token_id.unwrap_or(0);
        let logits = |width: usize| {
            let (i, m) = bge::bert::pad_rows_to(&ids, pad, tch::Device::Cpu, width);
            let t = bge::bert::pad_rows_to(&types, 0, tch::Device::Cpu, width).0;
            let t = if rr.bert.config.type_vocab_size > 1 {
                t
            } else {
                t.zeros_like()
            };
            Vec::<f32>::try_from(tch::no_grad(|| rr.logits(&i, &t, &m)).unwrap()).unwrap()
        };
        assert!(enc.len() >= 2, "{name}: pairs shorter than max_length");
        let (tight, wide) = (logits(longest), logits(rr.max_length));
        for (a, b) in tight.iter().zip(&wide) {
            assert!((a - b).abs() < 1e-5, "{name}: padded logit {b} vs {a}");
        }
        // The scores above ran through the CPU plan; libtorch's path (training, CUDA) takes
        // the token types too, and both give the same hidden states on the real tokens.
        let (i, m) = bge::bert::pad_rows_to(&ids, pad, tch::Device::Cpu, longest);
        let t = bge::bert::pad_rows_to(&types, 0, tch::Device::Cpu, longest).0;
        let t = if rr.bert.config.type_vocab_size > 1 {
            assert!(
                t.max().int64_value(&[]) == 1,
                "{name}: pairs of two segments"
            );
            t
        } else {
            t.zeros_like()
        };
        let plan = rr
            .bert
            .cpu_plan(true)
            .expect("an f32 GELU model on the CPU");
        let (planned, plain) = tch::no_grad(|| {
            (
                rr.bert.forward_planned(&plan, &i, Some(&t), &m).unwrap(),
                rr.bert.forward_t(&i, Some(&t), &m, false).unwrap(),
            )
        });
        let real = m.to_kind(tch::Kind::Bool).unsqueeze(-1);
        let worst = (planned - plain)
            .abs()
            .masked_fill(&real.logical_not(), 0.0)
            .max()
            .double_value(&[]);
        assert!(
            worst < 1e-5,
            "{name}: planned vs libtorch hidden states {worst}"
        );
    }
}
