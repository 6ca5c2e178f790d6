//! The one error type of the `flagscale` library, and its `Result`.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Core(#[from] flagcore::Error),
    #[error(transparent)]
    Data(#[from] flagdata::Error),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A model config that cannot describe a model: names the field.
    #[error("{}: `{field}`: {message}", path.display())]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// Checkpoint tensors that do not fit the config: names the tensor.
    #[error("{}: tensor `{name}`: {message}", path.display())]
    Checkpoint {
        path: PathBuf,
        name: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}
