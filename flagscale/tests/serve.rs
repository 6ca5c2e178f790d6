//! The OpenAI-compatible server on loopback with SmolLM2: echo + logprobs return the prompt's
//! token log-probabilities (what lm-eval's local-completions scores choices with), the right
//! answer scores higher, auth and limits answer with the right statuses; chat through the
//! model's own template, streaming that adds up to the plain answer, concurrent scoring
//! batched without changing a number, and timeouts.

mod common;

use flagscale::serve::{AppState, ChatTemplate};
use std::io::{Read, Write};

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
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let (model, tokenizer) = common::smollm2_model(&gguf);
    let meta = flagdata::tokenize::gguf::Metadata::read(&gguf).unwrap();
    let mut state = AppState::new(model, tokenizer, "smollm2");
    state.api_key = Some("sekret".into());
    state.chat_template = ChatTemplate::from_gguf(&meta).unwrap();
    assert!(
        state.chat_template.is_some(),
        "SmolLM2's GGUF carries a template"
    );
    let (addr, _rt) = common::serve(state, 4096);

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

    // Chat: the template opens the assistant's turn; greedy answers are deterministic.
    let chat = serde_json::json!({"messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 12, "temperature": 0}).to_string();
    let (status, v) = http(addr, "/v1/chat/completions", &chat, Some("sekret"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let answer = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    eprintln!("chat answer: {answer:?}");
    assert!(answer.contains("Paris"), "{answer}");
    assert_eq!(
        http(
            addr,
            "/v1/chat/completions",
            r#"{"messages": []}"#,
            Some("sekret")
        )
        .0,
        422
    );

    // Streaming: the pieces add up to the same answer, then [DONE].
    let mut stream_req: serde_json::Value = serde_json::from_str(&chat).unwrap();
    stream_req["stream"] = true.into();
    let events = sse(
        addr,
        "/v1/chat/completions",
        &stream_req.to_string(),
        "sekret",
    );
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, answer);
    assert!(chunks.len() > 2, "one event per piece, not one at the end");
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
    let events = sse(
        addr,
        "/v1/completions",
        r#"{"prompt": "The capital of France is", "max_tokens": 3, "temperature": 0, "stream": true}"#,
        "sekret",
    );
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(text, " Paris.\n");

    // Concurrent scoring shares padded batches and changes no number.
    let texts: Vec<String> = (0..6)
        .map(|i| {
            format!(
                "Question {i}: the capital of France is Paris{}",
                " indeed".repeat(i)
            )
        })
        .collect();
    let alone: Vec<f64> = texts.iter().map(|t| score(t)).collect();
    let together: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = texts.iter().map(|t| s.spawn(|| score(t))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in alone.iter().zip(&together) {
        assert!((a - b).abs() < 1e-4, "{alone:?} vs {together:?}");
    }
    let body = serde_json::json!({"prompt": texts, "max_tokens": 0, "echo": true, "logprobs": 0})
        .to_string();
    let (status, v) = http(addr, "/v1/completions", &body, Some("sekret"));
    assert_eq!(status, 200);
    assert_eq!(v["choices"].as_array().unwrap().len(), 6);

    // Concurrent generation shares batches and changes no answer.
    let complete = |p: &str| {
        let body = serde_json::json!({"prompt": p, "max_tokens": 8, "temperature": 0}).to_string();
        let (status, v) = http(addr, "/v1/completions", &body, Some("sekret"));
        assert_eq!(status, 200, "{v}");
        v["choices"][0]["text"].as_str().unwrap().to_string()
    };
    let asks = [
        "The capital of Italy is",
        "Two plus two is",
        "The sky is",
        "My favourite food, by far, is",
    ];
    let one_by_one: Vec<String> = asks.iter().map(|p| complete(p)).collect();
    let at_once: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = asks.iter().map(|p| s.spawn(|| complete(p))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("{one_by_one:?}");
    assert_eq!(one_by_one, at_once);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer sekret\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    let counter = |name: &str| -> u64 {
        page.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {page}"))
    };
    eprintln!(
        "generation: {} rows in {} batches; scoring: {} rows in {} batches",
        counter("flagscale_generation_rows_total"),
        counter("flagscale_generation_batches_total"),
        counter("flagscale_scoring_rows_total"),
        counter("flagscale_scoring_batches_total")
    );
    assert!(counter("flagscale_generation_rows_total") >= 8);
    assert!(counter("flagscale_requests_total") > 20);
    assert!(counter("flagscale_request_errors_total") >= 4);

    // Token-id prompts (lm-eval's default `tokenized_requests`) score the same.
    let (_, t) = http(
        addr,
        "/tokenize",
        &serde_json::json!({"prompt": texts[0]}).to_string(),
        Some("sekret"),
    );
    let body =
        serde_json::json!({"prompt": [t["tokens"]], "max_tokens": 0, "echo": true, "logprobs": 1});
    let (status, v) = http(addr, "/v1/completions", &body.to_string(), Some("sekret"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["text"], texts[0]);
    let last = v["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_f64()
        .unwrap();
    assert!((last - alone[0]).abs() < 1e-6, "{last} vs {}", alone[0]);
    let (status, v) = http(
        addr,
        "/v1/completions",
        r#"{"prompt": [[1, 99999999]], "max_tokens": 0}"#,
        Some("sekret"),
    );
    assert_eq!(status, 422);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("vocabulary"));
}

/// The `data:` payloads of a server-sent-event response.
fn sse(addr: std::net::SocketAddr, path: &str, body: &str, key: &str) -> Vec<String> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("text/event-stream"), "{out}");
    out.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(String::from)
        .collect()
}

#[test]
fn generation_past_the_timeout_answers_504() {
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let (model, tokenizer) = common::smollm2_model(&gguf);
    let mut state = AppState::new(model, tokenizer, "smollm2");
    state.timeout = std::time::Duration::from_millis(300);
    let (addr, _rt) = common::serve(state, 4096);
    // Far more tokens than 300 ms allow on any CPU; the server stops generating and says so.
    let body = r#"{"prompt": "Once upon a time", "max_tokens": 1500, "temperature": 0}"#;
    let start = std::time::Instant::now();
    let (status, v) = http(addr, "/v1/completions", body, None);
    assert_eq!(status, 504, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("timeout"));
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // Without a chat template, chat says what is missing.
    let (status, v) = http(
        addr,
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
        None,
    );
    assert_eq!(status, 400, "{v}");
}
