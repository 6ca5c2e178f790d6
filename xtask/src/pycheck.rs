//! The Python side of cross-checks against peer tools, installed once per user into the
//! cache with pinned versions: megatron-core reads our Megatron datasets
//! (`data/scripts/check_megatron.py`); transformers runs the reference models of
//! `flagscale/scripts/{hf,gguf}_reference.py` (GGUF through gguf + accelerate). torch comes
//! from the libtorch install itself. lm-eval (for the check that it scores through
//! `flagscale serve`) gets a folder of its own, from `flagscale/scripts/lmeval_requirements.txt`.

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

/// Installs lm-eval's pinned packages (without their declared dependencies, which would pull
/// a second torch) into a folder named by the requirements' hash; returns it.
pub fn ensure_lmeval(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_pinned(root, "flagscale/scripts/lmeval_requirements.txt", "lmeval")
}

/// sentence-transformers (pinned, `--no-deps`) for bge's reference checks.
pub fn ensure_st(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_pinned(root, "bge/scripts/st_requirements.txt", "st")
}

/// The packages of a pinned requirements file, installed `--no-deps` into
/// `<cache>/<prefix>-<hash of the file>`.
fn ensure_pinned(root: &Path, requirements: &str, prefix: &str) -> anyhow::Result<PathBuf> {
    let reqs = root.join(requirements);
    let text = std::fs::read(&reqs).with_context(|| format!("reading {}", reqs.display()))?;
    // FNV-1a: a changed pin list gets a fresh folder.
    let hash = text.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let dir = crate::libtorch::cache_root()?.join(format!("{prefix}-{:012x}", hash >> 16));
    if !dir.join("READY").is_file() {
        let reqs_arg = reqs.to_str().context("checkout path is not UTF-8")?;
        pip_into(&dir, &[&["--no-deps", "-r", reqs_arg]], &text)?;
    }
    Ok(dir)
}

fn install(dir: &Path) -> anyhow::Result<()> {
    let mut no_deps = vec!["--no-deps"];
    no_deps.extend(NO_DEPS);
    let ready = [PACKAGES, NO_DEPS].concat().join("\n");
    pip_into(dir, &[PACKAGES, &no_deps], ready.as_bytes())
}

/// One `pip install --target` per argument list into a scratch folder, which gets a READY
/// file (`ready`) and is renamed to `dir`: an interrupted install is never taken for done.
fn pip_into(dir: &Path, installs: &[&[&str]], ready: &[u8]) -> anyhow::Result<()> {
    let scratch = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let target = scratch.to_str().context("cache path is not UTF-8")?;
    for extra in installs {
        let mut args = vec![
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            "--target",
            target,
        ];
        args.extend_from_slice(extra);
        crate::cmd::run(Path::new("."), &py, &args)?;
    }
    std::fs::write(scratch.join("READY"), ready)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&scratch, dir)
        .with_context(|| format!("moving {} into place", dir.display()))?;
    Ok(())
}
