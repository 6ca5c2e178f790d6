//! flagattention: memory-efficient attention (Dao et al., 2022, "FlashAttention: Fast and
//! Memory-Efficient Exact Attention with IO-Awareness"; Dao, 2023, "FlashAttention-2") with
//! FlagAttention's semantics, on the CPU, depending on `flagcore` only (libtorch only behind
//! the `tch` feature).
//!
//! Layout (B, H, T, D) through [`flagcore::TensorView`] (any strides), f32, bf16 or f16
//! computed in f32. [`flash_attention`] runs blocked over query rows and key blocks with an
//! online softmax, so nothing of size M×N is ever held; it returns the output, the
//! log-sum-exp that [`flash_attention_backward`] uses to recompute probabilities block by
//! block, and on request the total attention per key. GQA/MQA (`Hq % Hk == 0`), a causal mask
//! aligned bottom-right (query i sees key j when i + (N − M) ≥ j; a row that sees no key
//! outputs 0), dropout from a counter-based generator. [`piecewise_attention`] scores with
//! two (q, k) pairs split by distance; [`flash_attention_split_kv`] and [`paged_attention`]
//! serve decoding.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod backward;
mod cpu;
mod dropout;
mod dtype;
mod error;
mod forward;
mod mask;
mod matmul;
mod output;
mod pack;
mod paged;
mod piecewise;
mod scores;
mod scratch;
mod shape;
mod split_kv;
#[cfg(feature = "tch")]
pub mod torch;
mod total;
mod vexp;

pub use backward::{flash_attention_backward, Grads};
pub use dropout::Dropout;
pub use dtype::Float;
pub use error::{Error, Result};
pub use forward::{flash_attention, Attention, Options};
pub use half::{bf16, f16};
pub use paged::paged_attention;
pub use piecewise::{piecewise_attention, piecewise_attention_backward, PiecewiseGrads};
pub use shape::Dims;
pub use split_kv::flash_attention_split_kv;
#[cfg(target_arch = "x86_64")]
pub use vexp::avx2 as vexp_avx2;
pub use vexp::{exp_affine, madd};
