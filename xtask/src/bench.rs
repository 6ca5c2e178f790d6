//! `cargo xtask bench`: prepares the peers (datatrove 0.10.1 with spaCy, in a virtual
//! environment in the cache; PyTorch from the libtorch install) and runs `flagdata bench` and
//! `flagscale bench` in release mode against them.

use anyhow::Context;
use std::path::Path;

const PEER: &[&str] = &["datatrove[processing]==0.10.1", "spacy==3.8.18"];

pub fn run(root: &Path) -> anyhow::Result<()> {
    let lt = crate::libtorch::ensure(root)?;
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
    let flagdata = [
        "run",
        "--release",
        "-p",
        "flagdata",
        "--",
        "bench",
        "--datatrove-python",
        p,
    ];
    crate::cmd::run(root, "cargo", &flagdata)?;
    // PyTorch eager from the same libtorch install: `<site>/torch` is the libtorch root.
    let torch_dir = lt.root.canonicalize().unwrap_or(lt.root.clone());
    let flagscale = ["run", "--release", "-p", "flagscale", "--", "bench"];
    match torch_dir
        .parent()
        .filter(|site| site.join("torch/__init__.py").is_file())
    {
        Some(site) => {
            std::env::set_var("PYTHONPATH", site);
            let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
            let mut args = flagscale.to_vec();
            args.extend(["--python", py.as_str()]);
            crate::cmd::run(root, "cargo", &args)
        }
        None => {
            eprintln!("note: libtorch is not a PyPI torch install: flagscale bench runs without its PyTorch reference");
            crate::cmd::run(root, "cargo", &flagscale)
        }
    }
}
