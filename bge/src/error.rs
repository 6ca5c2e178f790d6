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
