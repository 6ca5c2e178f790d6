//! `cargo xtask test`: the one command CI runs (README's test command).

use crate::{cmd, libtorch};
use std::path::Path;

pub fn run(root: &Path) -> anyhow::Result<()> {
    libtorch::ensure(root)?;
    cmd::run(root, "cargo", &["fmt", "--all", "--", "--check"])?;
    let clippy = [
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ];
    cmd::run(root, "cargo", &clippy)?;
    cmd::run(root, "cargo", &["test", "--workspace", "--all-features"])?;
    eprintln!("xtask test: fmt, clippy and tests passed");
    Ok(())
}
