//! Running child processes with the command line echoed, so CI logs show what ran.

use anyhow::{bail, Context};
use std::path::Path;
use std::process::Command;

/// Runs `program args...` in `dir`, inheriting stdout/stderr; fails unless it exits 0.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("could not start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
