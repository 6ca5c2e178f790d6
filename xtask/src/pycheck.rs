//! The Python side of cross-checks against peer tools, installed once per user into the
//! cache with pinned versions: megatron-core reads our Megatron datasets
//! (`data/scripts/check_megatron.py`); transformers runs the reference models of
//! `flagscale/scripts/{hf,gguf}_reference.py` (GGUF through gguf + accelerate). torch comes
//! from the libtorch install itself.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Pinned, installed with their dependencies (none of these requires torch).
const PACKAGES: &[&str] = &[
    "transformers==5.24.0",
    "safetensors==0.8.0",
    "gguf==0.19.0",
    "numpy==2.4.6",
    "tokenizers==0.23.3",
    "packaging==26.4",
    "zstandard==0.25.0",
];
/// Pinned, installed without dependencies: theirs would pull a second torch.
const NO_DEPS: &[&str] = &["megatron-core==0.16.1", "accelerate==1.15.0"];

/// Installs the packages if missing; returns the `PYTHONPATH` the checks run with, or `None`
/// (with a note) when libtorch is not a PyPI torch install that Python can import.
pub fn ensure(libtorch_root: &Path) -> anyhow::Result<Option<String>> {
    // libtorch_root is `<site>/torch`: its parent is the site folder holding the torch package.
    let torch_dir: PathBuf = libtorch_root
        .canonicalize()
        .unwrap_or(libtorch_root.to_path_buf());
    let torch_site = torch_dir
        .parent()
        .context("libtorch folder has no parent")?;
    if !torch_site.join("torch/__init__.py").is_file() {
        eprintln!(
            "note: {} is not a PyPI torch install: the megatron-core cross-checks are skipped",
            torch_dir.display()
        );
        return Ok(None);
    }
    let dir = crate::libtorch::cache_root()?.join("pycheck-3");
    if !dir.join("READY").is_file() {
        install(&dir)?;
    }
    Ok(Some(format!("{}:{}", dir.display(), torch_site.display())))
}

fn install(dir: &Path) -> anyhow::Result<()> {
    let scratch = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let target = scratch.to_str().context("cache path is not UTF-8")?;
    let base = [
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-input",
        "--disable-pip-version-check",
        "--target",
        target,
    ];
    let mut args = base.to_vec();
    args.extend(PACKAGES);
    crate::cmd::run(Path::new("."), &py, &args)?;
    let mut args = base.to_vec();
    args.push("--no-deps");
    args.extend(NO_DEPS);
    crate::cmd::run(Path::new("."), &py, &args)?;
    std::fs::write(
        scratch.join("READY"),
        [PACKAGES, NO_DEPS].concat().join("\n"),
    )?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&scratch, dir)
        .with_context(|| format!("moving {} into place", dir.display()))?;
    Ok(())
}
