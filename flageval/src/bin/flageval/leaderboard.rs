//! `flageval leaderboard RESULTS… --output PAGE.html`: one self-contained page.

use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Results files or folders holding them (searched recursively for results.json).
    #[arg(required = true)]
    results: Vec<PathBuf>,
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value = "flageval leaderboard")]
    title: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let board = flageval::leaderboard::build(&a.results, None)?;
    if board.entries.is_empty() {
        anyhow::bail!("no results.json under {:?}", a.results);
    }
    let html = flageval::leaderboard::render(&board, &a.title);
    flagcore::fsutil::write_atomic(&a.output, html.as_bytes())
        .with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!(
        "{}: {} rows, {} tasks",
        a.output.display(),
        board.entries.len(),
        board.columns.len()
    );
    Ok(())
}
