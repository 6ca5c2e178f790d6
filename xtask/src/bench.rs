//! `cargo xtask bench`: prepares the peer (datatrove 0.10.1 with spaCy, in a virtual
//! environment in the cache) and runs `flagdata bench` in release mode against it.

use anyhow::Context;
use std::path::Path;

const PEER: &[&str] = &["datatrove[processing]==0.10.1", "spacy==3.8.18"];

pub fn run(root: &Path) -> anyhow::Result<()> {
    crate::libtorch::ensure(root)?;
    crate::assets::fetch_all()?;
    let venv = crate::libtorch::cache_root()?.join("datatrove-0.10.1-venv");
    let python = venv.join("bin/python");
    if !venv.join("READY").is_file() {
        let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
        let _ = std::fs::remove_dir_all(&venv);
        let v = venv.to_str().context("cache path is not UTF-8")?;
        crate::cmd::run(root, &py, &["-m", "venv", v])?;
        let p = python.to_str().context("cache path is not UTF-8")?;
        let mut args = vec![
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ];
        args.extend(PEER);
        crate::cmd::run(root, p, &args)?;
        std::fs::write(venv.join("READY"), PEER.join("\n"))?;
    }
    let p = python.to_str().context("cache path is not UTF-8")?;
    crate::cmd::run(
        root,
        "cargo",
        &[
            "run",
            "--release",
            "-p",
            "flagdata",
            "--",
            "bench",
            "--datatrove-python",
            p,
        ],
    )
}
