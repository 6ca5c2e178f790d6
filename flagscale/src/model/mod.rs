//! The model family: [`LlamaConfig`] and [`Llama`].

mod config;
mod llama;
mod rope;

pub use config::LlamaConfig;
pub use llama::{KvCache, Llama};
pub use rope::Rope;
