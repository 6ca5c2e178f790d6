//! The TEI-compatible server on loopback with MiniLM: embeddings equal the library's,
//! OpenAI's layout, concurrent clients batched together with every answer still its own,
//! and bad requests answered with a JSON 4xx (too many inputs, too long, malformed, no key).

use serde_json::{json, Value};

mod common;
use common::post;

fn start(rt: &tokio::runtime::Runtime, opts: bge::serve::Options) -> String {
    let minilm = common::minilm().unwrap();
    let enc = bge::Encoder::load(&minilm, tch::Kind::Float, tch::Device::Cpu).unwrap();
    common::serve(rt, enc, opts)
}

#[test]
fn embeddings_over_http() {
    let Some(minilm) = common::minilm() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = start(&rt, bge::serve::Options::default());
    let lib = bge::Encoder::load(&minilm, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let texts = ["A man is playing a guitar.", "北京是中国的首都。"];
    let want = lib.encode(&texts).unwrap();
    let close = |a: &Value, b: &[f32]| {
        let a = common::floats(a);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(b).all(|(x, y)| (x - *y as f64).abs() < 1e-5));
    };

    let (code, v) = post(
        &format!("{base}/embed"),
        &json!({"inputs": texts}).to_string(),
        None,
    );
    assert_eq!(code, 200, "{v}");
    close(&v[0], &want[0]);
    close(&v[1], &want[1]);
    let (code, v) = post(
        &format!("{base}/v1/embeddings"),
        &json!({"input": texts[1], "model": "x"}).to_string(),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(v["object"], "list");
    close(&v["data"][0]["embedding"], &want[1]);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    // Concurrent clients: batched together in the backend, each gets its own answer.
    let answers: Vec<(usize, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let base = &base;
                s.spawn(move || {
                    let text = format!("sentence number {i} about topic {}", i % 3);
                    (
                        i,
                        post(
                            &format!("{base}/embed"),
                            &json!({"inputs": text}).to_string(),
                            None,
                        )
                        .1,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, v) in answers {
        let alone = lib
            .encode(&[format!("sentence number {i} about topic {}", i % 3)])
            .unwrap();
        close(&v[0], &alone[0]);
    }

    // Bad input: JSON errors, never a crash.
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let (code, v) = post(
        &format!("{base}/embed"),
        &json!({"inputs": many}).to_string(),
        None,
    );
    assert_eq!(code, 413);
    assert!(v["error"].as_str().unwrap().contains("33"));
    let long = "word ".repeat(400);
    let (code, v) = post(
        &format!("{base}/embed"),
        &json!({"inputs": long}).to_string(),
        None,
    );
    assert_eq!(code, 413, "{v}");
    let (code, _) = post(
        &format!("{base}/embed"),
        &json!({"inputs": long, "truncate": true}).to_string(),
        None,
    );
    assert_eq!(code, 200);
    for bad in ["{", "[]", "{\"inputs\": 3}", "{\"inputs\": []}"] {
        let (code, v) = post(&format!("{base}/embed"), bad, None);
        assert_eq!(code, 422, "{bad}: {v}");
        assert!(v["error"].is_string(), "{bad}: {v}");
    }
    let (code, v) = post(
        &format!("{base}/tokenize"),
        &json!({"inputs": "hello world"}).to_string(),
        None,
    );
    assert_eq!(code, 200);
    let ids: Vec<u64> = v[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [101, 7592, 2088, 102]);
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let counter = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // The 413 and the four 422 answers above are among the errors counted.
    assert!(counter("bge_errors_total") >= 5, "{metrics}");
    assert!(
        counter("bge_requests_total") > counter("bge_errors_total"),
        "{metrics}"
    );
    let info: Value = ureq::get(&format!("{base}/info"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(info["max_input_length"], 256);
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");

    // With an API key: refused without it, served with it; /health stays open.
    let locked = start(
        &rt,
        bge::serve::Options {
            api_key: Some("s3cret".into()),
            ..Default::default()
        },
    );
    let body = json!({"inputs": "hi"}).to_string();
    assert_eq!(post(&format!("{locked}/embed"), &body, None).0, 401);
    assert_eq!(
        post(&format!("{locked}/embed"), &body, Some("wrong")).0,
        401
    );
    assert_eq!(
        post(&format!("{locked}/embed"), &body, Some("s3cret")).0,
        200
    );
    assert_eq!(
        ureq::get(&format!("{locked}/health"))
            .call()
            .unwrap()
            .status(),
        200
    );
}
