//! Link wiring for libtorch, called from the build script of every package that links it.
//!
//! cargo applies `rustc-link-arg` only to the targets of the package whose build script emits
//! it, so `tch` cannot do this for us: every package that depends on `flagcore` or `tch` has a
//! `build.rs` that includes this file by path and calls [`emit`] when it links libtorch — when
//! it uses `tch` itself, or when `DEP_FLAGCORE_TORCH` says feature unification turned
//! `flagcore/torch` on (then libtorch is linked into its binaries too).
//! It bakes libtorch's `lib/` into the binaries' run path, so they start with no
//! `LD_LIBRARY_PATH`, and keeps `libtorch_cuda.so` in their `NEEDED` list: the linker's
//! `--as-needed` would drop it (no symbol of ours refers to it), and without it loaded libtorch
//! silently reports no CUDA on a GPU machine.

use std::path::{Path, PathBuf};

/// The libtorch release tch 0.24.0 is built against.
pub const TORCH_VERSION: &str = "2.11.0";

/// libtorch's library folder as torch-sys finds it: `LIBTORCH_LIB` or `LIBTORCH`, plus `lib/`.
pub fn lib_dir() -> Option<PathBuf> {
    let base = std::env::var_os("LIBTORCH_LIB").or_else(|| std::env::var_os("LIBTORCH"))?;
    let lib = PathBuf::from(base).join("lib");
    // Resolve `.libtorch` links so binaries keep working if the checkout moves.
    Some(lib.canonicalize().unwrap_or(lib))
}

/// The release of the libtorch at `root` (the folder holding `lib/`): `build-version` in
/// libtorch zips, `version.py` in PyPI wheels. `xtask` includes this file to share it.
pub fn version(root: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(root.join("build-version")) {
        return Some(text.trim().to_string());
    }
    let text = std::fs::read_to_string(root.join("version.py")).ok()?;
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("__version__")?.trim_start();
        let value = value.strip_prefix('=')?.trim();
        Some(value.trim_matches(|c| c == '\'' || c == '"').to_string())
    })
}

/// For crates that depend on `flagcore` without using `tch`: wires libtorch only when the
/// build links it anyway (`flagcore/torch` on through feature unification).
pub fn emit_if_flagcore_torch() {
    println!("cargo:rerun-if-env-changed=DEP_FLAGCORE_TORCH");
    if std::env::var_os("DEP_FLAGCORE_TORCH").is_some() {
        emit();
    }
}

/// Prints the cargo directives; call it from `build.rs`.
pub fn emit() {
    for var in ["LIBTORCH", "LIBTORCH_LIB", "LIBTORCH_BYPASS_VERSION_CHECK"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let Some(lib) = lib_dir() else {
        println!(
            "cargo:warning=LIBTORCH is not set: run `cargo xtask setup` once in this checkout"
        );
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // Run again once it appears: a build before `cargo xtask setup` made the `.libtorch` link
    // would otherwise keep binaries without CUDA (cargo reruns for a missing path each build).
    let cuda = lib.join("libtorch_cuda.so");
    println!("cargo:rerun-if-changed={}", cuda.display());
    if cuda.exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    println!("cargo:rustc-env=FLAGCORE_LIBTORCH_LIB={}", lib.display());
    if let Some(v) = lib.parent().and_then(version) {
        let bypass = std::env::var_os("LIBTORCH_BYPASS_VERSION_CHECK").is_some();
        if v.split('+').next() != Some(TORCH_VERSION) && !bypass {
            // torch-sys checks only libtorch zips (`build-version`); this catches wheels too.
            eprintln!(
                "error: {} is libtorch {v}, but tch 0.24.0 needs libtorch {TORCH_VERSION}: point \
                 LIBTORCH at libtorch {TORCH_VERSION}, or unset it and run `cargo xtask setup`",
                lib.display()
            );
            std::process::exit(1);
        }
        println!("cargo:rustc-env=FLAGCORE_LIBTORCH_VERSION={v}");
    }
}
