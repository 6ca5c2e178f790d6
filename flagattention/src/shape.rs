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

fn four<T: Element>(arg: &'static str, v: &TensorView<'_, T>) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(v.shape()).map_err(|_| Error::Shape {
        arg,
        message: format!(
            "expected (batch, heads, length, head dim), got {:?}",
            v.shape()
        ),
    })
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
    if hq == 0 || hk == 0 || hq % hk != 0 {
        return Err(Error::Heads { hq, hk });
    }
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
            return Err(Error::Shape {
                arg,
                message: format!("{dims:?} is too large to address"),
            });
        }
    }
    if !(opts.sm_scale.is_finite() && opts.sm_scale > 0.0) {
        return Err(Error::Scale(opts.sm_scale));
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
        return Err(Error::Shape {
            arg,
            message: format!("expected shape {shape:?}, got {:?}", v.shape()),
        });
    }
    Ok(())
}
