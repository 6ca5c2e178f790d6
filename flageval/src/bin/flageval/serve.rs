//! `flageval serve RESULTS_DIR`: the leaderboard and its JSON API, on loopback by default.

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The results folder (searched recursively for results.json).
    results: PathBuf,
    /// Address to bind: loopback unless told otherwise.
    #[arg(long, env = "FLAGEVAL_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long, env = "FLAGEVAL_PORT", default_value_t = 8090)]
    port: u16,
    #[arg(long, default_value = "flageval leaderboard")]
    title: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let root = a
        .results
        .canonicalize()
        .with_context(|| format!("results folder {}", a.results.display()))?;
    anyhow::ensure!(root.is_dir(), "{} is not a folder", root.display());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let addr = std::net::SocketAddr::new(a.host, a.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!("serving {} on http://{addr}", root.display());
        axum::serve(listener, flageval::serve::router(root, &a.title))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })
}
