//! One error type: every variant names the argument at fault.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{arg}`: {message}")]
    Shape { arg: &'static str, message: String },
    #[error("`sm_scale` must be finite and positive, not {0}")]
    Scale(f32),
    #[error("`dropout_p` must lie in [0, 1), not {0}")]
    Dropout(f32),
    #[error("head dim {0} is not supported (16 to 256)")]
    HeadDim(usize),
    #[error("`{arg}`: {message}")]
    Tensor { arg: &'static str, message: String },
    #[error("query heads ({hq}) must be a multiple of key/value heads ({hk})")]
    Heads { hq: usize, hk: usize },
}

impl Error {
    /// A [`Error::Shape`] naming `arg`.
    pub(crate) fn shape(arg: &'static str, message: impl Into<String>) -> Error {
        Error::Shape {
            arg,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
