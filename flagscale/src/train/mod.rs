//! Training: samples from Megatron indexed datasets blended by weight, AdamW with warmup and
//! cosine decay, gradient clipping and accumulation, and checkpoints that resume the exact
//! loss curve.

mod blend;
pub mod config;
mod data;
mod optim;
mod trainer;

pub use blend::blending_indices;
pub use data::{split_documents, GptDataset};
pub use optim::{AdamW, LrSchedule};
pub use trainer::{init_model, Precision, QueuedStep, StepStats, TrainConfig, Trainer, Validation};
