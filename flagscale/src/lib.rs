//! `flagscale`: Aquila-architecture language models (the LLaMA family: RMSNorm, rotary
//! embeddings, SwiGLU, grouped-query attention) on libtorch.
//!
//! `model` holds the family (a config mirroring Hugging Face's `config.json`, loading, the
//! forward pass); `gguf` reads llama.cpp files; `train`, `generate`, `serve` and `convert`
//! build on it.

pub mod convert;
mod error;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod serve;
pub mod source;
pub mod train;

pub use error::{Error, Result};
