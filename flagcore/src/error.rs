//! The one error type of the `flagcore` library, and its `Result`.

use crate::DType;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure `flagcore` reports. Each renders as one line naming the file, key or argument.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // The cause is part of the message (not a `source`), so `{:#}` chains print it once.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A config file (or merged config) that does not fit: `key` is the dotted path, possibly empty.
    #[error("{}", located(file, key, message))]
    Config {
        file: String,
        key: String,
        message: String,
    },
    /// A bad command-line override (`key=value`).
    #[error("override `{arg}`: {message}")]
    Override { arg: String, message: String },
    #[error(
        "unknown dtype `{0}` (expected one of: f32, f16, bf16, f64, i64, i32, i16, i8, u8, bool)"
    )]
    ParseDType(String),
    #[error("unknown device `{0}` (expected cpu, cuda, cuda:N or auto)")]
    ParseDevice(String),
    #[error("dtype mismatch: expected {expected}, got {actual}")]
    DTypeMismatch { expected: DType, actual: DType },
    #[error("{0}")]
    Shape(String),
    #[error("tensor is not contiguous (shape {shape:?}, strides {strides:?})")]
    NotContiguous {
        shape: Vec<usize>,
        strides: Vec<usize>,
    },
    #[error("tensor is on {0}; only CPU tensors can be viewed in host memory")]
    NotOnCpu(String),
    #[error("{}: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },
    #[error("CUDA is unavailable: {0}")]
    CudaUnavailable(String),
    #[error("{context}: {error}")]
    Json {
        context: String,
        error: serde_json::Error,
    },
    #[error("telemetry: {0}")]
    Telemetry(String),
    /// A Python peer (see `python.rs`) that exited with an error.
    #[error("{script} ({status}):\n{output}")]
    Python {
        script: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[cfg(feature = "torch")]
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}

fn located(file: &str, key: &str, message: &str) -> String {
    match (file.is_empty(), key.is_empty()) {
        (false, false) => format!("{file}: `{key}`: {message}"),
        (false, true) => format!("{file}: {message}"),
        (true, false) => format!("`{key}`: {message}"),
        (true, true) => message.to_string(),
    }
}
