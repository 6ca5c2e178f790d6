//! The operators on `tch::Tensor` (CPU), for the model crates: f32, bf16 or f16 tensors in
//! (B, H, T, D), tensors of the same kind out. tch has no custom autograd, so the backward is
//! its own function and the caller passes the output's gradient.

use crate::{bf16, f16, Attention, Error, Float, Options, Result};
use flagcore::TensorView;
use tch::{Device, Kind, Tensor};

/// The forward's outputs: `o` (B, Hq, M, D) of the inputs' kind, `lse` (B, Hq, M) f32, and
/// `total` (B, Hq, N) f32 when the options ask for it.
#[derive(Debug)]
pub struct Forward {
    pub o: Tensor,
    pub lse: Tensor,
    pub total: Option<Tensor>,
}

/// [`crate::flash_attention`] on tensors.
pub fn flash_attention(q: &Tensor, k: &Tensor, v: &Tensor, opts: Options) -> Result<Forward> {
    match q.kind() {
        Kind::Float => forward::<f32>(q, k, v, opts),
        Kind::BFloat16 => forward::<bf16>(q, k, v, opts),
        Kind::Half => forward::<f16>(q, k, v, opts),
        kind => Err(unsupported("q", kind)),
    }
}

/// [`crate::flash_attention_backward`] on tensors: dq, dk, dv of the forward that gave `o` and
/// `lse` for these inputs and options, given `d_o`, the gradient of `o`.
pub fn flash_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    lse: &Tensor,
    d_o: &Tensor,
    opts: Options,
) -> Result<(Tensor, Tensor, Tensor)> {
    match q.kind() {
        Kind::Float => backward::<f32>(q, k, v, o, lse, d_o, opts),
        Kind::BFloat16 => backward::<bf16>(q, k, v, o, lse, d_o, opts),
        Kind::Half => backward::<f16>(q, k, v, o, lse, d_o, opts),
        kind => Err(unsupported("q", kind)),
    }
}

fn unsupported(arg: &'static str, kind: Kind) -> Error {
    Error::Tensor {
        arg,
        message: format!("kind {kind:?} is not supported (f32, bf16 or f16)"),
    }
}

/// A CPU tensor of `kind` as `T`, with its shape. It travels as f32 (exact for all three
/// kinds): tch 0.24 tags `half::bf16` slices as f16, so they cannot cross directly.
fn host<T: Float>(arg: &'static str, t: &Tensor, kind: Kind) -> Result<(Vec<T>, Vec<usize>)> {
    if t.device() != Device::Cpu {
        return Err(Error::Tensor {
            arg,
            message: format!("is on {:?}; these kernels run on the CPU", t.device()),
        });
    }
    if t.kind() != kind {
        return Err(Error::Tensor {
            arg,
            message: format!("kind {:?} differs from q's {kind:?}", t.kind()),
        });
    }
    let t = t.to_kind(Kind::Float).contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
    let numel = t.numel();
    let mut f = vec![0f32; numel];
    t.f_copy_data(&mut f, numel).map_err(|e| Error::Tensor {
        arg,
        message: e.to_string(),
    })?;
    let mut data = vec![T::from_f32(0.0); numel];
    T::rows_from_f32(&f, &mut data);
    Ok((data, shape))
}

/// A tensor of `kind` holding `data` (exactly: its values are of that kind).
fn tensor<T: Float>(data: &[T], shape: &[usize], kind: Kind) -> Tensor {
    let mut f = vec![0f32; data.len()];
    T::rows_to_f32(data, &mut f);
    let dims: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
    Tensor::from_slice(&f).view(dims.as_slice()).to_kind(kind)
}

fn view<'a, T: Float>(
    arg: &'static str,
    data: &'a [T],
    shape: &[usize],
) -> Result<TensorView<'a, T>> {
    TensorView::from_slice(data, shape).map_err(|e| Error::Tensor {
        arg,
        message: e.to_string(),
    })
}

fn forward<T: Float>(q: &Tensor, k: &Tensor, v: &Tensor, opts: Options) -> Result<Forward> {
    let kind = q.kind();
    let (qd, qs) = host::<T>("q", q, kind)?;
    let ((kd, ks), (vd, vs)) = (host::<T>("k", k, kind)?, host::<T>("v", v, kind)?);
    let out = crate::flash_attention(
        &view("q", &qd, &qs)?,
        &view("k", &kd, &ks)?,
        &view("v", &vd, &vs)?,
        opts,
    )?;
    let Attention {
        dims,
        o,
        lse,
        total,
        ..
    } = out;
    Ok(Forward {
        o: tensor(&o, &qs, kind),
        lse: tensor(&lse, &[dims.b, dims.hq, dims.m], Kind::Float),
        total: total.map(|t| tensor(&t, &[dims.b, dims.hq, dims.n], Kind::Float)),
    })
}

#[allow(clippy::too_many_arguments)]
fn backward<T: Float>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    lse: &Tensor,
    d_o: &Tensor,
    opts: Options,
) -> Result<(Tensor, Tensor, Tensor)> {
    let kind = q.kind();
    let (qd, qs) = host::<T>("q", q, kind)?;
    let ((kd, ks), (vd, vs)) = (host::<T>("k", k, kind)?, host::<T>("v", v, kind)?);
    let ((od, os), (dod, dos)) = (host::<T>("o", o, kind)?, host::<T>("do", d_o, kind)?);
    let (lsed, lses) = host::<f32>("lse", lse, Kind::Float)?;
    let (qv, kv, vv) = (
        view("q", &qd, &qs)?,
        view("k", &kd, &ks)?,
        view("v", &vd, &vs)?,
    );
    let dims = crate::shape::check(&qv, &kv, &vv, &opts)?;
    if os != qs || lses != [dims.b, dims.hq, dims.m] {
        return Err(Error::Tensor {
            arg: "o",
            message: format!("o {os:?} and lse {lses:?} are not this problem's outputs"),
        });
    }
    let fwd = Attention {
        dims,
        opts,
        o: od,
        lse: lsed,
        total: None,
    };
    let g = crate::flash_attention_backward(&qv, &kv, &vv, &fwd, &view("do", &dod, &dos)?, opts)?;
    Ok((
        tensor(&g.dq, &qs, kind),
        tensor(&g.dk, &ks, kind),
        tensor(&g.dv, &vs, kind),
    ))
}
