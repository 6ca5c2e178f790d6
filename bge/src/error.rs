//! One error type for the crate: every variant names the file, tensor or input at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("weights: {0}")]
    Weights(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Reads and parses a JSON file, naming it in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Builds the folder `out` (which must not exist or be empty) through `fill`, which writes
/// into a temporary folder beside it renamed into place at the end: a failure or crash leaves
/// nothing half-written under `out`.
pub fn write_dir(
    out: &std::path::Path,
    fill: impl FnOnce(&std::path::Path) -> Result<()>,
) -> Result<()> {
    let io = |p: &std::path::Path, error: std::io::Error| Error::Io {
        path: p.to_path_buf(),
        error,
    };
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| io(out, e))?
            .next()
            .is_some()
    {
        return Err(Error::File {
            path: out.to_path_buf(),
            message: "the output folder exists and is not empty".into(),
        });
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".bge-");
    // A temporary folder is owner-only; the finished model or index should read like any
    // other output.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755));
    let tmp = builder.tempdir_in(parent).map_err(|e| io(parent, e))?;
    fill(tmp.path())?;
    if out.exists() {
        std::fs::remove_dir(out).map_err(|e| io(out, e))?;
    }
    std::fs::rename(tmp.keep(), out).map_err(|e| io(out, e))
}
