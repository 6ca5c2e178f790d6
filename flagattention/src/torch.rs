//! The operators on `tch::Tensor` (CPU), for the model crates: f32, bf16 or f16 tensors in
//! (B, H, T, D), tensors of the same kind out. tch has no custom autograd, so the backward is
//! its own function and the caller passes the output's gradient.

use crate::{bf16, f16, Attention, Dims, Error, Float, Options, Result};
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

/// [`crate::piecewise_attention`] on tensors.
pub fn piecewise_attention(
    q1: &Tensor,
    k1: &Tensor,
    q2: &Tensor,
    k2: &Tensor,
    v: &Tensor,
    dist_threshold: i64,
    opts: Options,
) -> Result<Forward> {
    match q1.kind() {
        Kind::Float => piecewise::<f32>([q1, k1, q2, k2, v], dist_threshold, opts),
        Kind::BFloat16 => piecewise::<bf16>([q1, k1, q2, k2, v], dist_threshold, opts),
        Kind::Half => piecewise::<f16>([q1, k1, q2, k2, v], dist_threshold, opts),
        kind => Err(unsupported("q1", kind)),
    }
}

/// [`crate::piecewise_attention_backward`] on tensors: dq1, dk1, dq2, dk2, dv.
#[allow(clippy::too_many_arguments)]
pub fn piecewise_attention_backward(
    q1: &Tensor,
    k1: &Tensor,
    q2: &Tensor,
    k2: &Tensor,
    v: &Tensor,
    o: &Tensor,
    lse: &Tensor,
    d_o: &Tensor,
    dist_threshold: i64,
    opts: Options,
) -> Result<[Tensor; 5]> {
    let inputs = [q1, k1, q2, k2, v];
    match q1.kind() {
        Kind::Float => piecewise_backward::<f32>(inputs, o, lse, d_o, dist_threshold, opts),
        Kind::BFloat16 => piecewise_backward::<bf16>(inputs, o, lse, d_o, dist_threshold, opts),
        Kind::Half => piecewise_backward::<f16>(inputs, o, lse, d_o, dist_threshold, opts),
        kind => Err(unsupported("q1", kind)),
    }
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
/// `lse` for these inputs and options, given `d_o`, the gradient of `o`. The tensors carry no
/// record of the forward's options: the caller passes the same.
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
    let failed = |e: tch::TchError| Error::Tensor {
        arg,
        message: e.to_string(),
    };
    let t = t
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_contiguous())
        .map_err(failed)?;
    let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
    let numel = t.numel();
    let mut f = vec![0f32; numel];
    t.f_copy_data(&mut f, numel).map_err(failed)?;
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
    let names = ["q", "k", "v"];
    let h = hosts::<T, 3>(names, [q, k, v], kind)?;
    let [q, k, v] = views(&h, names)?;
    let out = crate::flash_attention(&q, &k, &v, opts)?;
    Ok(outputs(out, &h[0].1, kind))
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
    let names = ["q", "k", "v", "do"];
    let h = hosts::<T, 4>(names, [q, k, v, d_o], kind)?;
    let [q, k, v, d_o] = views(&h, names)?;
    let dims = crate::shape::check(&q, &k, &v, &opts)?;
    let fwd = saved(o, lse, dims, opts, kind)?;
    let g = crate::flash_attention_backward(&q, &k, &v, &fwd, &d_o, opts)?;
    let (qs, ks) = (&h[0].1, &h[1].1);
    Ok((
        tensor(&g.dq, qs, kind),
        tensor(&g.dk, ks, kind),
        tensor(&g.dv, ks, kind),
    ))
}

/// The forward's outputs as tensors (o shaped as q).
fn outputs<T: Float>(out: Attention<T>, q_shape: &[usize], kind: Kind) -> Forward {
    let Dims { b, hq, m, n, .. } = out.dims;
    Forward {
        o: tensor(&out.o, q_shape, kind),
        lse: tensor(&out.lse, &[b, hq, m], Kind::Float),
        total: (out.total).map(|t| tensor(&t, &[b, hq, n], Kind::Float)),
    }
}

/// The forward's o and lse, checked to be this problem's, as the backward takes them.
fn saved<T: Float>(
    o: &Tensor,
    lse: &Tensor,
    dims: Dims,
    opts: Options,
    kind: Kind,
) -> Result<Attention<T>> {
    let ((o, os), (lse, lses)) = (
        host::<T>("o", o, kind)?,
        host::<f32>("lse", lse, Kind::Float)?,
    );
    let Dims { b, hq, m, d, .. } = dims;
    for (arg, got, want) in [
        ("o", &os[..], &[b, hq, m, d][..]),
        ("lse", &lses, &[b, hq, m]),
    ] {
        if got != want {
            return Err(Error::Tensor {
                arg,
                message: format!("shape {got:?} is not the forward's {want:?}"),
            });
        }
    }
    Ok(Attention {
        dims,
        opts,
        o,
        lse,
        total: None,
    })
}

/// Views of copied-out tensors, named by their arguments.
fn views<'a, T: Float, const N: usize>(
    h: &'a [(Vec<T>, Vec<usize>)],
    names: [&'static str; N],
) -> Result<[TensorView<'a, T>; N]> {
    let v: Vec<TensorView<'a, T>> = (h.iter())
        .zip(names)
        .map(|((d, s), name)| view(name, d, s))
        .collect::<Result<_>>()?;
    Ok(v.try_into()
        .unwrap_or_else(|_| unreachable!("one view per name")))
}

/// Tensors of one kind copied out, named by their arguments.
fn hosts<T: Float, const N: usize>(
    names: [&'static str; N],
    ts: [&Tensor; N],
    kind: Kind,
) -> Result<Vec<(Vec<T>, Vec<usize>)>> {
    names
        .iter()
        .zip(ts)
        .map(|(name, t)| host::<T>(name, t, kind))
        .collect()
}

fn piecewise<T: Float>(ts: [&Tensor; 5], threshold: i64, opts: Options) -> Result<Forward> {
    let names = ["q1", "k1", "q2", "k2", "v"];
    let h = hosts::<T, 5>(names, ts, ts[0].kind())?;
    let [q1, k1, q2, k2, v] = views(&h, names)?;
    let out = crate::piecewise_attention(&q1, &k1, &q2, &k2, &v, threshold, opts)?;
    Ok(outputs(out, &h[0].1, ts[0].kind()))
}

fn piecewise_backward<T: Float>(
    ts: [&Tensor; 5],
    o: &Tensor,
    lse: &Tensor,
    d_o: &Tensor,
    threshold: i64,
    opts: Options,
) -> Result<[Tensor; 5]> {
    let kind = ts[0].kind();
    let names = ["q1", "k1", "q2", "k2", "v", "do"];
    let h = hosts::<T, 6>(names, [ts[0], ts[1], ts[2], ts[3], ts[4], d_o], kind)?;
    let [q1, k1, q2, k2, v, d_o] = views(&h, names)?;
    let dims = crate::shape::check(&q1, &k1, &v, &opts)?;
    let fwd = saved(o, lse, dims, opts, kind)?;
    let g =
        crate::piecewise_attention_backward(&q1, &k1, &q2, &k2, &v, &fwd, &d_o, threshold, opts)?;
    let (qs, ks) = (&h[0].1, &h[1].1);
    Ok([
        tensor(&g.dq1, qs, kind),
        tensor(&g.dk1, ks, kind),
        tensor(&g.dq2, qs, kind),
        tensor(&g.dk2, ks, kind),
        tensor(&g.dv, ks, kind),
    ])
}
