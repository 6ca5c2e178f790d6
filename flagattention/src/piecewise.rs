//! Piecewise attention, FlagAttention's operator for Aquila2's long-context position
//! encoding: two (q, k) pairs score the same values, q1·k1 for nearby keys and q2·k2 for
//! distant ones: query i uses q2·k2 for key j when i + (N − M) − j ≥ `dist_threshold` (the
//! signed distance, bottom-right aligned), else q1·k1. Forward and backward, with everything
//! [`crate::flash_attention`] has (causal mask, GQA, dropout, total attention).

use crate::backward::backward;
use crate::dtype::Float;
use crate::forward::{forward, Attention, Options};
use crate::mask::Band;
use crate::shape::{check, Dims};
use crate::{Error, Result};
use flagcore::TensorView;

/// Gradients in the inputs' type, row-major: dq1 and dq2 (B, Hq, M, D), dk1, dk2 and dv
/// (B, Hk, N, D).
#[derive(Clone, Debug)]
pub struct PiecewiseGrads<T> {
    pub dq1: Vec<T>,
    pub dk1: Vec<T>,
    pub dq2: Vec<T>,
    pub dk2: Vec<T>,
    pub dv: Vec<T>,
}

/// Both pairs checked against v and each other.
fn dims<T: Float>(
    q1: &TensorView<'_, T>,
    k1: &TensorView<'_, T>,
    q2: &TensorView<'_, T>,
    k2: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    opts: &Options,
) -> Result<Dims> {
    let dims = check(q1, k1, v, opts)?;
    for (arg, a, b) in [("q2", q2, q1), ("k2", k2, k1)] {
        if a.shape() != b.shape() {
            return Err(Error::shape(
                arg,
                format!("shape {:?} differs from {:?}", a.shape(), b.shape()),
            ));
        }
    }
    Ok(dims)
}

/// Attention of q1/q2 (B, Hq, M, D) over k1/k2 and v (B, Hk, N, D).
pub fn piecewise_attention<T: Float>(
    q1: &TensorView<'_, T>,
    k1: &TensorView<'_, T>,
    q2: &TensorView<'_, T>,
    k2: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    dist_threshold: i64,
    opts: Options,
) -> Result<Attention<T>> {
    let dims = dims(q1, k1, q2, k2, v, &opts)?;
    let band = Band::new(dist_threshold, dims.m, dims.n);
    Ok(forward(&[(q1, k1), (q2, k2)], v, dims, Some(band), opts, 1))
}

/// The gradients of `fwd` (the forward of the same inputs, threshold and options) given
/// `d_o`, the gradient of its output.
#[allow(clippy::too_many_arguments)]
pub fn piecewise_attention_backward<T: Float>(
    q1: &TensorView<'_, T>,
    k1: &TensorView<'_, T>,
    q2: &TensorView<'_, T>,
    k2: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    fwd: &Attention<T>,
    d_o: &TensorView<'_, T>,
    dist_threshold: i64,
    opts: Options,
) -> Result<PiecewiseGrads<T>> {
    let dims = dims(q1, k1, q2, k2, v, &opts)?;
    let band = Band::new(dist_threshold, dims.m, dims.n);
    let pairs = [(q1, k1), (q2, k2)];
    let (mut dq, mut dk, dv) = backward(&pairs, v, fwd, d_o, dims, Some(band), opts)?;
    let (dq2, dk2) = (dq.remove(1), dk.remove(1));
    Ok(PiecewiseGrads {
        dq1: dq.remove(0),
        dk1: dk.remove(0),
        dq2,
        dk2,
        dv,
    })
}
