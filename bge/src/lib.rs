//! bge: BGE (FlagEmbedding) and sentence-transformers embedding models on libtorch.
//!
//! [`Encoder::load`] reads a Hugging Face / sentence-transformers folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`, `modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`) and [`Encoder::encode`] turns texts into (normalised)
//! embeddings: BERT forward (`bert.rs`), CLS or mean pooling (`pooling.rs`), batches sorted by
//! length. `retrieval` holds exact top-k search and trec_eval's retrieval metrics.

pub mod bert;
pub mod config;
pub mod encoder;
pub mod error;
pub mod finetune;
mod fused;
pub mod m3;
mod mkl;
pub mod pooling;
pub mod rerank;
pub mod results;
pub mod retrieval;
pub mod serve;
pub mod sts;
pub mod torch_pickle;
mod workers;

pub use encoder::Encoder;
pub use error::{Error, Result};
