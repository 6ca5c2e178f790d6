//! flageval: language-model evaluation with lm-eval-harness's semantics (task YAMLs with
//! Jinja templates, the same request shapes and metrics) and FlagEval's capability taxonomy.
//!
//! A [`task::Task`] turns documents into requests; a [`model::Model`] answers them; an
//! [`evaluate`] run scores the answers into lm-eval's results layout.

pub mod error;
pub mod evaluate;
pub mod filter;
pub mod leaderboard;
pub mod metrics;
pub mod model;
pub mod serve;
pub mod task;

pub use error::{Error, Result};
