//! `flagcore`: the types every flagopen crate shares.
//!
//! - [`DType`], [`Device`]: parsed from the strings configs use, with `Display` and serde.
//! - [`TensorView`], [`TensorViewMut`]: strided borrowed tensors, what kernel crates take so
//!   that they need no libtorch; with the `torch` feature, conversions to and from `tch::Tensor`.
//! - [`config`]: YAML/JSON/TOML configs with dotted overrides and `${env:VAR}` interpolation.
//! - [`manifest`]: the provenance record written beside every artifact.
//! - [`python`]: running the Python reference implementations tests and benches compare with.
//! - [`rng`]: SplitMix64, the seeded generator samples and shuffles use.
//! - [`telemetry`]: tracing, progress bars and JSON-lines metrics for binaries.
//! - [`Error`] / [`Result`]: this library's one error type.

pub mod cache;
pub mod config;
#[cfg(feature = "cuda")]
pub mod cuda;
mod device;
mod dtype;
mod element;
mod error;
pub mod fsutil;
mod layout;
pub mod libtorch_link;
pub mod manifest;
pub mod python;
pub mod rng;
mod serde_str;
pub mod telemetry;
#[cfg(feature = "torch")]
pub mod torch;
mod view;

pub use device::Device;
pub use dtype::DType;
pub use element::Element;
pub use error::{Error, Result};
pub use layout::Layout;
pub use manifest::Manifest;
pub use view::{TensorView, TensorViewMut};

/// Re-exported so dependents name exactly the `half` types views use.
pub use half::{bf16, f16};
