//! The one error type of the `flagdata` library, and its `Result`.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Core(#[from] flagcore::Error),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A malformed input file, with where in it.
    #[error("{}: {at}: {message}", path.display())]
    Format {
        path: PathBuf,
        at: String,
        message: String,
    },
    /// A pipeline description that cannot run; `key` is the dotted path in the YAML.
    #[error("{}: `{key}`: {message}", path.display())]
    Pipeline {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    pub fn format(
        path: impl Into<PathBuf>,
        at: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Format {
            path: path.into(),
            at: at.into(),
            message: message.into(),
        }
    }
}
