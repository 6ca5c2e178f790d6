//! The server's other routes: `/embed_all` (MiniLM's token states, whose mean is `/embed`'s
//! vector), bge-m3's `/embed_sparse` and `/embed_colbert` (equal to the library's outputs,
//! themselves checked against FlagEmbedding's formulas), `/rerank` (equal to the library's
//! cross-encoder, sorted, sigmoid unless raw), 404 for what a model does not serve, and
//! Prometheus latency histograms.

use serde_json::json;

mod common;
use common::{floats, post};

#[test]
fn minilm_token_states_and_metrics() {
    let Some(minilm) = common::minilm() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let enc = bge::Encoder::load(&minilm, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let want = enc.encode(&["dense retrieval"]).unwrap();
    let ids = enc.tokenize(&["dense retrieval"]).unwrap();
    let base = common::serve(&rt, enc, bge::serve::Options::default());
    let (code, v) = post(
        &format!("{base}/embed_all"),
        &json!({"inputs": "dense retrieval"}).to_string(),
        None,
    );
    assert_eq!(code, 200, "{v}");
    let tokens = v[0].as_array().unwrap();
    assert_eq!(tokens.len(), ids[0].len());
    // MiniLM pools by mean and normalises: the mean of the token states is /embed's vector.
    let dim = want[0].len();
    let mut mean = vec![0f64; dim];
    for t in tokens {
        for (m, x) in mean.iter_mut().zip(floats(t)) {
            *m += x / tokens.len() as f64;
        }
    }
    let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
    for (m, w) in mean.iter().zip(&want[0]) {
        assert!((m / norm - *w as f64).abs() < 1e-5);
    }
    for route in ["embed_sparse", "embed_colbert", "rerank"] {
        let (code, v) = post(
            &format!("{base}/{route}"),
            &json!({"inputs": "x", "query": "q", "texts": ["x"]}).to_string(),
            None,
        );
        assert_eq!(code, 404, "{route}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("does not serve"),
            "{v}"
        );
    }
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("bge_request_duration_seconds_count{route=\"/embed_all\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bge_request_duration_seconds_count{route=\"/rerank\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("bge_batch_size_count 1\n"), "{metrics}");
    assert!(metrics.contains("bge_errors_total 3\n"), "{metrics}");
}

/// A word-level tokenizer for the random bge-m3: "w4" … "w499" are ids 4 … 499, with
/// XLM-R's specials (<s> 0, <pad> 1, </s> 2, <unk> 3) around each text.
fn word_tokenizer(path: &std::path::Path) {
    use tokenizers::models::wordlevel::WordLevel;
    let mut vocab: std::collections::HashMap<String, u32> =
        [("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3)]
            .into_iter()
            .map(|(t, i)| (t.to_string(), i))
            .collect();
    vocab.extend((4..500).map(|i| (format!("w{i}"), i)));
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace {}));
    tok.with_post_processor(Some(
        tokenizers::processors::template::TemplateProcessing::builder()
            .try_single("<s> $A </s>")
            .unwrap()
            .special_tokens(vec![("<s>", 0), ("</s>", 2)])
            .build()
            .unwrap(),
    ));
    let special: Vec<tokenizers::AddedToken> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .map(|t| tokenizers::AddedToken::from(*t, true))
        .collect();
    tok.add_special_tokens(&special);
    tok.save(path, false).unwrap();
}

#[test]
fn m3_sparse_and_colbert_over_http() {
    let Some((tmp, _, _)) = common::random_model("m3_reference.py") else {
        return;
    };
    let dir = tmp.path().join("model");
    word_tokenizer(&dir.join("tokenizer.json"));
    let served = bge::serve::load_model(&dir, 512, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let lib = bge::Encoder::load(&dir, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let m3 = bge::m3::M3::load(&dir, vec![0, 1, 2, 3], tch::Kind::Float, tch::Device::Cpu).unwrap();
    let texts = ["w17 w250 w17 w9 nonsense", "w300 w77"];
    let ids = lib.tokenize(&texts).unwrap();
    assert_eq!(ids[0], [0, 17, 250, 17, 9, 3, 2]);
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let (i, m) = lib.batch(&rows);
    let want = m3.forward(&lib.bert, &i, &m).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = common::serve(&rt, served, bge::serve::Options::default());
    let (code, v) = post(
        &format!("{base}/embed_sparse"),
        &json!({"inputs": texts}).to_string(),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), want.len());
    for (got, w) in v.as_array().unwrap().iter().zip(&want) {
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), w.sparse.len(), "{got:?} vs {:?}", w.sparse);
        for e in got {
            let id = e["index"].as_u64().unwrap() as u32;
            assert!((e["value"].as_f64().unwrap() - w.sparse[&id] as f64).abs() < 1e-6);
        }
    }
    let (code, v) = post(
        &format!("{base}/embed_colbert"),
        &json!({"inputs": texts}).to_string(),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), want.len());
    for (got, w) in v.as_array().unwrap().iter().zip(&want) {
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), w.colbert.len());
        for (g, c) in got.iter().zip(&w.colbert) {
            assert_eq!(g.as_array().unwrap().len(), c.len());
            assert!(floats(g)
                .iter()
                .zip(c)
                .all(|(a, b)| (a - *b as f64).abs() < 1e-6));
        }
    }
    let (code, v) = post(
        &format!("{base}/embed"),
        &json!({"inputs": texts}).to_string(),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), want.len());
    for (got, w) in v.as_array().unwrap().iter().zip(&want) {
        assert!(floats(got)
            .iter()
            .zip(&w.dense)
            .all(|(a, b)| (a - *b as f64).abs() < 1e-6));
    }
}

#[test]
fn rerank_over_http() {
    let Some((tmp, _)) = common::rerank_models() else {
        return;
    };
    let dir = tmp.path().join("xlmr");
    let lib = bge::rerank::Reranker::load(&dir, 512, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let served = bge::serve::load_model(&dir, 512, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let texts = [
        "dense vectors",
        "a cat sat on the mat",
        "北京是首都",
        "retrieval",
    ];
    let pairs: Vec<(&str, &str)> = texts.iter().map(|t| ("what is retrieval", *t)).collect();
    let logits = lib.score(&pairs, false).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = common::serve(&rt, served, bge::serve::Options::default());
    for raw in [false, true] {
        let body = json!({"query": "what is retrieval", "texts": texts, "raw_scores": raw, "return_text": true});
        let (code, v) = post(&format!("{base}/rerank"), &body.to_string(), None);
        assert_eq!(code, 200, "{v}");
        let got = v.as_array().unwrap();
        assert_eq!(got.len(), texts.len());
        let scores: Vec<f64> = got.iter().map(|r| r["score"].as_f64().unwrap()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best first: {scores:?}"
        );
        for r in got {
            let i = r["index"].as_u64().unwrap() as usize;
            assert_eq!(r["text"], texts[i]);
            let l = logits[i] as f64;
            let want = if raw { l } else { 1.0 / (1.0 + (-l).exp()) };
            assert!((r["score"].as_f64().unwrap() - want).abs() < 1e-6);
        }
    }
    // The random reranker's positions allow 32 tokens: a longer pair is refused unless cut.
    let long = "retrieval ".repeat(60);
    let (code, v) = post(
        &format!("{base}/rerank"),
        &json!({"query": "q", "texts": [long]}).to_string(),
        None,
    );
    assert_eq!(code, 413, "{v}");
    let (code, v) = post(
        &format!("{base}/rerank"),
        &json!({"query": "q", "texts": [long], "truncate": true}).to_string(),
        None,
    );
    assert_eq!(code, 200, "{v}");
    let (code, _) = post(
        &format!("{base}/rerank"),
        &json!({"texts": ["x"]}).to_string(),
        None,
    );
    assert_eq!(code, 422);
    let (code, _) = post(
        &format!("{base}/embed"),
        &json!({"inputs": ["x"]}).to_string(),
        None,
    );
    assert_eq!(code, 404);
}
