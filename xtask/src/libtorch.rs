//! libtorch: install the pinned 2.11.0 into a per-user cache and point the checkout at it.
//!
//! tch 0.24.0 is built against libtorch 2.11.0 exactly. PyPI's `torch==2.11.0` wheel carries
//! that libtorch (headers, `lib/`, and the CUDA 13 runtime as `nvidia-*` wheels beside it), so
//! we install it with pip into `<cache>/torch-2.11.0/site` once per user and symlink
//! `<checkout>/.libtorch` to `site/torch`. `.cargo/config.toml` sets `LIBTORCH` to that link
//! (unforced, so a user's own `LIBTORCH` wins), and `flagcore::libtorch_link` bakes an rpath
//! into every binary that links libtorch: nothing needs an environment variable afterwards.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::libtorch_link::TORCH_VERSION;
const READY_MARKER: &str = "READY";

#[derive(Debug)]
pub struct Libtorch {
    /// The folder holding `lib/` and `include/`.
    pub root: PathBuf,
    pub version: String,
}

/// Installs (when missing or `force`) and links the pinned libtorch, or checks the user's own.
pub fn setup(ws_root: &Path, force: bool) -> anyhow::Result<Libtorch> {
    if let Some(user) = user_libtorch(ws_root) {
        let lt = inspect(&user).with_context(|| format!("LIBTORCH={}", user.display()))?;
        eprintln!(
            "using your LIBTORCH={} (libtorch {}); the cached copy is not touched",
            user.display(),
            lt.version
        );
        return Ok(lt);
    }
    let dir = pinned_dir()?;
    if force || !dir.join(READY_MARKER).is_file() {
        install(&dir)?;
    }
    let torch = dir.join("site").join("torch");
    let lt = inspect(&torch)?;
    link(&torch, &ws_root.join(".libtorch"))?;
    Ok(lt)
}

/// Runs setup only when the checkout is not wired to a usable libtorch yet.
pub fn ensure(ws_root: &Path) -> anyhow::Result<Libtorch> {
    let configured = user_libtorch(ws_root).unwrap_or_else(|| ws_root.join(".libtorch"));
    match inspect(&configured) {
        Ok(lt) => Ok(lt),
        Err(why) if user_libtorch(ws_root).is_some() => Err(why),
        Err(_) => {
            eprintln!("libtorch is not set up for this checkout yet: running `cargo xtask setup`");
            setup(ws_root, false)
        }
    }
}

/// `LIBTORCH` when the user set it; cargo's `[env]` default (our `.libtorch` link) does not count.
fn user_libtorch(ws_root: &Path) -> Option<PathBuf> {
    let value = PathBuf::from(std::env::var_os("LIBTORCH")?);
    (value != ws_root.join(".libtorch")).then_some(value)
}

pub fn cache_root() -> anyhow::Result<PathBuf> {
    crate::cache::cache_root()
        .context("neither FLAGOPEN_CACHE, XDG_CACHE_HOME nor HOME is set: no place for the cache")
}

fn pinned_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_root()?.join(format!("torch-{TORCH_VERSION}")))
}

/// Checks that `root` is a libtorch of the pinned version with its library files present.
pub fn inspect(root: &Path) -> anyhow::Result<Libtorch> {
    if !root.is_dir() {
        bail!("no libtorch at {}", root.display());
    }
    let version = read_version(root)?;
    let release = version.split('+').next().unwrap_or_default();
    if release != TORCH_VERSION {
        bail!(
            "{} holds libtorch {version}, but tch 0.24.0 needs libtorch {TORCH_VERSION}: \
             point LIBTORCH at libtorch {TORCH_VERSION}, or unset it and run `cargo xtask setup`",
            root.display()
        );
    }
    for needed in ["lib/libtorch_cpu.so", "lib/libc10.so", "include/torch"] {
        if !root.join(needed).exists() {
            bail!("{} is incomplete: {needed} is missing", root.display());
        }
    }
    Ok(Libtorch {
        root: root.to_path_buf(),
        version,
    })
}

fn read_version(root: &Path) -> anyhow::Result<String> {
    crate::libtorch_link::version(root).with_context(|| {
        format!(
            "cannot tell the libtorch version at {}: neither build-version nor version.py with __version__ is there",
            root.display()
        )
    })
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// pip-installs torch into a scratch folder, checks it imports and computes, then renames it
/// into place: an interrupted install never looks finished.
fn install(dir: &Path) -> anyhow::Result<()> {
    let py = python();
    let pip_ok = Command::new(&py)
        .args(["-m", "pip", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !pip_ok {
        bail!("installing libtorch needs `{py} -m pip` (Python 3 with pip); set PYTHON to another interpreter, or LIBTORCH to an existing libtorch {TORCH_VERSION}");
    }
    let parent = dir.parent().context("cache folder has no parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create the cache folder {}", parent.display()))?;
    let scratch = parent.join(format!(
        "torch-{TORCH_VERSION}.partial-{}",
        std::process::id()
    ));
    remove_dir_if_present(&scratch)?;
    let site = scratch.join("site");
    eprintln!(
        "installing torch=={TORCH_VERSION} (libtorch, ~4.6 GB) into {}",
        dir.display()
    );
    let result = pip_install(&py, &site).and_then(|()| verify_import(&py, &site));
    if let Err(err) = result {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(err);
    }
    std::fs::write(scratch.join(READY_MARKER), format!("{TORCH_VERSION}\n"))?;
    remove_dir_if_present(dir)?;
    std::fs::rename(&scratch, dir)
        .with_context(|| format!("cannot move {} to {}", scratch.display(), dir.display()))?;
    Ok(())
}

fn pip_install(py: &str, site: &Path) -> anyhow::Result<()> {
    let site = site.to_str().context("cache path is not UTF-8")?;
    let spec = format!("torch=={TORCH_VERSION}");
    crate::cmd::run(
        Path::new("."),
        py,
        &[
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            site,
            &spec,
        ],
    )
}

/// Imports the fresh install and runs one tensor op: proves the shared libraries load.
fn verify_import(py: &str, site: &Path) -> anyhow::Result<()> {
    let out = Command::new(py)
        .args([
            "-c",
            "import torch; assert float(torch.ones(3).sum()) == 3.0; print(torch.__version__)",
        ])
        .env("PYTHONPATH", site)
        .env("PYTHONNOUSERSITE", "1")
        .output()
        .with_context(|| format!("could not start `{py}`"))?;
    if !out.status.success() {
        bail!(
            "the installed torch does not load:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if version.split('+').next() != Some(TORCH_VERSION) {
        bail!("pip installed torch {version}, expected {TORCH_VERSION}");
    }
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
}

/// Points `link` at `target`, replacing an older link atomically (symlink, then rename).
fn link(target: &Path, link: &Path) -> anyhow::Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    if link.exists() && std::fs::symlink_metadata(link)?.is_dir() {
        bail!(
            "{} is a real folder, not the link setup manages: move it away",
            link.display()
        );
    }
    let tmp = link.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("cannot create the link {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("cannot replace {}", link.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_libtorch(version_py: &str) -> tempdir::TempDir {
        let dir = tempdir::TempDir::new();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::create_dir_all(dir.path().join("include/torch")).unwrap();
        std::fs::write(dir.path().join("lib/libtorch_cpu.so"), b"").unwrap();
        std::fs::write(dir.path().join("lib/libc10.so"), b"").unwrap();
        std::fs::write(dir.path().join("version.py"), version_py).unwrap();
        dir
    }

    #[test]
    fn accepts_the_pinned_version_with_a_local_tag() {
        let dir = fake_libtorch("__version__ = '2.11.0+cu130'\ngit_version = 'abc'\n");
        assert_eq!(inspect(dir.path()).unwrap().version, "2.11.0+cu130");
    }

    #[test]
    fn rejects_another_version_with_a_clear_message() {
        let dir = fake_libtorch("__version__ = '2.5.1+cpu'\n");
        let msg = format!("{:#}", inspect(dir.path()).unwrap_err());
        assert!(
            msg.contains("2.5.1+cpu") && msg.contains("needs libtorch 2.11.0"),
            "{msg}"
        );
    }

    #[test]
    fn build_version_file_wins_and_missing_libs_are_named() {
        let dir = fake_libtorch("__version__ = '2.11.0'\n");
        std::fs::write(dir.path().join("build-version"), "2.10.0+cpu\n").unwrap();
        assert!(format!("{:#}", inspect(dir.path()).unwrap_err()).contains("2.10.0+cpu"));
        std::fs::remove_file(dir.path().join("build-version")).unwrap();
        std::fs::remove_file(dir.path().join("lib/libc10.so")).unwrap();
        let msg = format!("{:#}", inspect(dir.path()).unwrap_err());
        assert!(msg.contains("lib/libc10.so is missing"), "{msg}");
    }

    /// A throwaway folder without pulling a crate into xtask.
    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct TempDir(PathBuf);

        impl TempDir {
            pub fn new() -> Self {
                static N: AtomicUsize = AtomicUsize::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let dir =
                    std::env::temp_dir().join(format!("xtask-test-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                Self(dir)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
