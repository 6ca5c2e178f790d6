//! Argument checks shared by every operator: (B, H, T, D) views that agree with each other.

use crate::{Error, Result};
use flagcore::TensorView;

/// The problem's sizes: batch, query heads, key/value heads, query rows, keys, head dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub b: usize,
    pub hq: usize,
    pub hk: usize,
    pub m: usize,
    pub n: usize,
    pub d: usize,
}

impl Dims {
    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.hq / self.hk
    }
}

fn four(arg: &'static str, v: &TensorView<'_, f32>) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(v.shape()).map_err(|_| Error::Shape {
        arg,
        message: format!(
            "expected (batch, heads, length, head dim), got {:?}",
            v.shape()
        ),
    })
}

/// Checks q (B, Hq, M, D), k and v (B, Hk, N, D) and the scale.
pub fn check(
    q: &TensorView<'_, f32>,
    k: &TensorView<'_, f32>,
    v: &TensorView<'_, f32>,
    sm_scale: f32,
) -> Result<Dims> {
    let [b, hq, m, d] = four("q", q)?;
    let kk = four("k", k)?;
    let vv = four("v", v)?;
    if kk != vv {
        return Err(Error::Shape {
            arg: "v",
            message: format!("shape {vv:?} differs from k's {kk:?}"),
        });
    }
    let [kb, hk, n, kd] = kk;
    if kb != b || kd != d {
        return Err(Error::Shape {
            arg: "k",
            message: format!("shape {kk:?} does not fit q's {:?}", q.shape()),
        });
    }
    if !(16..=256).contains(&d) {
        return Err(Error::HeadDim(d));
    }
    if hk == 0 || hq % hk != 0 {
        return Err(Error::Heads { hq, hk });
    }
    if !(sm_scale.is_finite() && sm_scale > 0.0) {
        return Err(Error::Scale(sm_scale));
    }
    Ok(Dims { b, hq, m, n, d, hk })
}

/// Checks that `v` has exactly `shape`.
pub fn expect(arg: &'static str, v: &TensorView<'_, f32>, shape: &[usize]) -> Result<()> {
    if v.shape() != shape {
        return Err(Error::Shape {
            arg,
            message: format!("expected shape {shape:?}, got {:?}", v.shape()),
        });
    }
    Ok(())
}

/// One head's rows `start..start + len` (each `d` long) copied out contiguously, whatever the
/// view's strides.
pub fn rows(
    v: &TensorView<'_, f32>,
    b: usize,
    h: usize,
    start: usize,
    len: usize,
    out: &mut Vec<f32>,
) {
    let s = v.strides();
    let data = v.data();
    let d = v.shape()[3];
    out.clear();
    out.reserve(len * d);
    for r in start..start + len {
        let base = b * s[0] + h * s[1] + r * s[2];
        if s[3] == 1 {
            out.extend_from_slice(&data[base..base + d]);
        } else {
            out.extend((0..d).map(|c| data[base + c * s[3]]));
        }
    }
}
