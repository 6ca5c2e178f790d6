//! `flagscale serve`: load a model (Hugging Face folder or GGUF) with its tokenizer and chat
//! template, and serve the OpenAI-compatible API on loopback unless told otherwise.

use anyhow::Context;
use flagscale::serve::{AppState, ChatTemplate};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long, env = "FLAGSCALE_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "FLAGSCALE_PORT", default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer KEY`.
    #[arg(long, env = "FLAGSCALE_API_KEY")]
    api_key: Option<String>,
    /// Largest request body in bytes (413 above).
    #[arg(long, env = "FLAGSCALE_MAX_BODY", default_value_t = 2 << 20)]
    max_body: usize,
    /// Seconds a request may take, waiting for the model included (504 after).
    #[arg(long, env = "FLAGSCALE_REQUEST_TIMEOUT", default_value_t = 600.0)]
    request_timeout: f64,
    /// The name requests and answers use (default: the model's file or folder name).
    #[arg(long)]
    served_model_name: Option<String>,
    #[arg(long, default_value = "auto")]
    device: flagcore::Device,
}

pub fn run(a: &ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.request_timeout.is_finite() && a.request_timeout > 0.0,
        "--request-timeout must be a positive number of seconds"
    );
    let (model, tokenizer) = crate::load(&a.model, a.device.resolve_tch()?)?;
    let template = if flagscale::source::is_gguf(&a.model) {
        let meta = flagdata::tokenize::gguf::Metadata::read(&a.model)?;
        ChatTemplate::from_gguf(&meta)
    } else {
        ChatTemplate::from_hf_dir(&a.model)
    }
    .map_err(|m| anyhow::anyhow!(m))?;
    let name = a.served_model_name.clone().unwrap_or_else(|| {
        a.model
            .file_stem()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    let mut state = AppState::new(model, tokenizer, &name);
    state.api_key = a.api_key.clone();
    state.timeout = std::time::Duration::from_secs_f64(a.request_timeout);
    if template.is_none() {
        eprintln!("note: the model has no chat template: /v1/chat/completions answers 400");
    }
    state.chat_template = template;
    let state = std::sync::Arc::new(state);
    let rt = tokio::runtime::Runtime::new()?;
    let (host, port) = (a.host.as_str(), a.port);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .with_context(|| format!("binding {host}:{port}"))?;
        eprintln!(
            "serving {} on http://{}",
            a.model.display(),
            listener.local_addr()?
        );
        axum::serve(listener, flagscale::serve::router(state, a.max_body))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })
}
