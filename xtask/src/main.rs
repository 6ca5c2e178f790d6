//! `cargo xtask`: the project's automation, written in Rust so that it needs nothing but cargo.
//!
//! Commands: `setup` installs and wires the pinned libtorch, `test` runs everything CI runs.
//! Every command other than `setup` runs setup first when libtorch is missing.

mod assets;
mod bench;
mod browser;
#[allow(dead_code)]
#[path = "../../flagcore/src/cache.rs"]
mod cache;
mod cmd;
mod libtorch;
mod pycheck;
// Shared with flagcore's build scripts (by path: xtask must build before anything links
// libtorch); xtask uses only its version reader.
#[allow(dead_code)]
#[path = "../../flagcore/src/libtorch_link.rs"]
mod libtorch_link;
mod test;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup [--force]   install libtorch 2.11.0 (from PyPI's torch==2.11.0) into the per-user cache
                    and point this checkout at it; --force reinstalls
  bench             flagdata's stages per core on the real corpus, against datatrove 0.10.1
                    (installed into a cache virtualenv on first use)
  assets            fetch the pinned public data (../shared/ASSETS.md) into the cache, verified
  test              setup and assets if needed, then cargo fmt --check, clippy -D warnings,
                    cargo test
  help              this text

environment:
  LIBTORCH          use this libtorch 2.11.0 instead of the cached one (checked, never changed)
  FLAGOPEN_CACHE    cache folder (default: $XDG_CACHE_HOME/flagopen or ~/.cache/flagopen)
  PYTHON            interpreter used to install libtorch (default: python3)";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("setup") => {
            let force = match &args[1..] {
                [] => false,
                [flag] if flag == "--force" => true,
                other => anyhow::bail!("setup: unexpected argument(s) {other:?}\n\n{USAGE}"),
            };
            let lt = libtorch::setup(&root, force)?;
            println!("libtorch {} ready at {}", lt.version, lt.root.display());
            Ok(())
        }
        Some("assets") => {
            if args.len() > 1 {
                anyhow::bail!("assets: unexpected argument(s) {:?}\n\n{USAGE}", &args[1..]);
            }
            assets::fetch_all()
        }
        Some("bench") => {
            if args.len() > 1 {
                anyhow::bail!("bench: unexpected argument(s) {:?}\n\n{USAGE}", &args[1..]);
            }
            bench::run(&root)
        }
        Some("test") => {
            if args.len() > 1 {
                anyhow::bail!("test: unexpected argument(s) {:?}\n\n{USAGE}", &args[1..]);
            }
            test::run(&root)
        }
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root: xtask lives one folder below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}
