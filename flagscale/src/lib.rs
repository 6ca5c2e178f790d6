//! `flagscale`: Aquila-architecture language models (the LLaMA family: RMSNorm, rotary
//! embeddings, SwiGLU, grouped-query attention) on libtorch.
//!
//! This first part holds the model family: a config mirroring Hugging Face's `config.json`,
//! loading from a Hugging Face folder, and the forward pass. Training, checkpoints, generation
//! and serving build on it.

mod error;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod serve;
pub mod train;

pub use error::{Error, Result};
