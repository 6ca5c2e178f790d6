//! Running a Python peer: the reference implementations tests and benches compare against
//! (transformers, sentence-transformers, lm-eval, gguf-py, Megatron's tools, PyTorch), each
//! importing what the caller's `PYTHONPATH` pins and never the user's site-packages, so a
//! package installed outside the pins cannot answer in their place.

use crate::{Error, Result};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output};

/// The interpreter tests use: `PYTHON` when set, else `python3`.
fn interpreter() -> OsString {
    std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into())
}

/// `python script` with the user's site-packages off; arguments and environment (such as
/// `PYTHONPATH`) are the caller's to add.
pub fn script(python: impl AsRef<OsStr>, script: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(script.as_ref()).env("PYTHONNOUSERSITE", "1");
    cmd
}

/// [`script`] run by the interpreter tests use (`PYTHON`, else `python3`).
pub fn test_script(path: impl AsRef<Path>) -> Command {
    script(interpreter(), path)
}

/// Runs `cmd` to completion: its output when it exits with 0, else [`Error::Python`] with its
/// stderr (and stdout, where scripts print their findings).
pub fn run(cmd: &mut Command) -> Result<Output> {
    let program = cmd.get_program().to_owned();
    let out = cmd.output().map_err(|e| Error::io(&program, e))?;
    if out.status.success() {
        return Ok(out);
    }
    let mut args = cmd.get_args();
    let script = args
        .next()
        .unwrap_or(&program)
        .to_string_lossy()
        .into_owned();
    Err(Error::Python {
        script,
        status: out.status,
        output: [&out.stderr, &out.stdout]
            .iter()
            .map(|s| String::from_utf8_lossy(s).trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// [`run`] for tests: the script's stdout, or a panic with its output.
pub fn run_ok(cmd: &mut Command) -> String {
    match run(cmd) {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_script_is_named_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fails.py");
        std::fs::write(
            &path,
            "import sys\nprint('found 3')\nsys.exit('bad input')\n",
        )
        .unwrap();
        let err = run(&mut test_script(&path)).unwrap_err().to_string();
        assert!(err.contains("fails.py"), "{err}");
        assert!(
            err.contains("bad input") && err.contains("found 3"),
            "{err}"
        );
        let ok = dir.path().join("ok.py");
        std::fs::write(&ok, "import sys\nprint(sys.flags.no_user_site)\n").unwrap();
        assert_eq!(run_ok(&mut test_script(&ok)).trim(), "1");
    }

    #[test]
    fn a_missing_interpreter_is_an_error_naming_it() {
        let err = run(&mut script("/nonexistent/python", "x.py")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/python"), "{err}");
    }
}
