//! One error type for the crate: every variant names the task, file, row or field at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] flagcore::Error),
    #[error(transparent)]
    Model(#[from] flagscale::Error),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("task {task}: {message}")]
    Task { task: String, message: String },
    #[error("task {task}, document {row}: {message}")]
    Row {
        task: String,
        row: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;
