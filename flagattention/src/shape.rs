//! Argument checks shared by every operator: (B, H, T, D) views that agree with each other.

use crate::{Error, Options, Result};
use flagcore::{Element, TensorView};

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

    /// The key/value head (batch·Hk + head) that query head `bh` (batch·Hq + head) reads.
    pub fn kv_head(&self, bh: usize) -> usize {
        (bh / self.hq) * self.hk + (bh % self.hq) / self.group()
    }
}

/// `v`'s shape as exactly R sizes; `what` names them for the error.
pub(crate) fn sizes<const R: usize, T: Element>(
    arg: &'static str,
    v: &TensorView<'_, T>,
    what: &str,
) -> Result<[usize; R]> {
    <[usize; R]>::try_from(v.shape())
        .map_err(|_| Error::shape(arg, format!("expected {what}, got {:?}", v.shape())))
}

fn four<T: Element>(arg: &'static str, v: &TensorView<'_, T>) -> Result<[usize; 4]> {
    sizes(arg, v, "(batch, heads, length, head dim)")
}

/// The checks every operator shares: head dim, head counts and scale.
pub(crate) fn heads_and_scale(d: usize, hq: usize, hk: usize, sm_scale: f32) -> Result<()> {
    if !(16..=256).contains(&d) {
        return Err(Error::HeadDim(d));
    }
    if hq == 0 || hk == 0 || !hq.is_multiple_of(hk) {
        return Err(Error::Heads { hq, hk });
    }
    if !(sm_scale.is_finite() && sm_scale > 0.0) {
        return Err(Error::Scale(sm_scale));
    }
    Ok(())
}

/// Checks q (B, Hq, M, D), k and v (B, Hk, N, D) and the options.
pub fn check<T: Element>(
    q: &TensorView<'_, T>,
    k: &TensorView<'_, T>,
    v: &TensorView<'_, T>,
    opts: &Options,
) -> Result<Dims> {
    let [b, hq, m, d] = four("q", q)?;
    let kk = four("k", k)?;
    let vv = four("v", v)?;
    if kk != vv {
        return Err(Error::shape(
            "v",
            format!("shape {vv:?} differs from k's {kk:?}"),
        ));
    }
    let [kb, hk, n, kd] = kk;
    if kb != b || kd != d {
        return Err(Error::shape(
            "k",
            format!("shape {kk:?} does not fit q's {:?}", q.shape()),
        ));
    }
    heads_and_scale(d, hq, hk, opts.sm_scale)?;
    // Every buffer and every dropout counter position must be addressable: the views may
    // have zero strides, so their data can be far smaller than their shapes say.
    let fits = |dims: &[usize]| {
        dims.iter()
            .try_fold(1usize, |a, &x| a.checked_mul(x))
            .is_some_and(|total| total <= isize::MAX as usize / 8)
    };
    for (arg, dims) in [
        ("q", [b, hq, m, d]),
        ("k", [b, hk, n, d]),
        ("k", [b, hq, m, n]),
    ] {
        if !fits(&dims) {
            return Err(Error::shape(
                arg,
                format!("{dims:?} is too large to address"),
            ));
        }
    }
    if let Some(p) = opts.dropout.map(|d| d.p) {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Dropout(p));
        }
    }
    Ok(Dims { b, hq, m, n, d, hk })
}

/// Checks that `v` has exactly `shape`.
pub fn expect<T: Element>(arg: &'static str, v: &TensorView<'_, T>, shape: &[usize]) -> Result<()> {
    if v.shape() != shape {
        return Err(Error::shape(
            arg,
            format!("expected shape {shape:?}, got {:?}", v.shape()),
        ));
    }
    Ok(())
}
