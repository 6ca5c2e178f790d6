//! `cargo xtask test`: the one command CI runs (README's test command).

use crate::{cmd, libtorch};
use std::path::Path;

pub fn run(root: &Path) -> anyhow::Result<()> {
    let lt = libtorch::ensure(root)?;
    // Tests on real corpora and vocabularies run only where these are cached.
    crate::assets::fetch_all()?;
    let pycheck = crate::pycheck::ensure(&lt.root)?;
    crate::browser::ensure();
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
    // FLAGOPEN_PYCHECK switches on the cross-checks against megatron-core.
    // FLAGOPEN_LMEVAL adds lm-eval scoring through `flagscale serve`.
    if let Some(path) = pycheck {
        std::env::set_var("FLAGOPEN_PYCHECK", path);
        let lmeval = crate::pycheck::ensure_lmeval(root)?;
        std::env::set_var("FLAGOPEN_LMEVAL", lmeval);
        // FLAGOPEN_ST: sentence-transformers, bge's reference.
        let st = crate::pycheck::ensure_st(root)?;
        std::env::set_var("FLAGOPEN_ST", st);
    }
    cmd::run(root, "cargo", &["test", "--workspace", "--all-features"])?;
    eprintln!("xtask test: fmt, clippy and tests passed");
    Ok(())
}
