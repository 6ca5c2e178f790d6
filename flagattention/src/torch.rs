//! The operators on `tch::Tensor` (CPU), for the model crates: f32, bf16 or f16 tensors in
//! (B, H, T, D), tensors of the same kind out. tch has no custom autograd, so the backward is
//! its own function and the caller passes the output's gradient.
//!
//! Tensors cross as f32 and the f32 kernels run: they compute in f32 whatever the input
//! kind, and the outputs are rounded to the input kind by libtorch as the typed kernels
//! would round them (to nearest, ties to even), so the results are the same. (tch 0.24 also
//! tags `half::bf16` slices as f16, so bf16 could not cross directly.)

use crate::{Attention, Dims, Error, Options, Result};
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
    let (h, kind) = hosts(["q", "k", "v"], [q, k, v])?;
    let [q, k, v] = views(&h, ["q", "k", "v"])?;
    Ok(outputs(
        crate::flash_attention(&q, &k, &v, opts)?,
        &h[0].1,
        kind,
    ))
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
    let names = ["q", "k", "v", "d_o", "o"];
    let (h, kind) = hosts(names, [q, k, v, d_o, o])?;
    let [q, k, v, d_o, o] = views(&h, names)?;
    let fwd = saved(&o, lse, crate::shape::check(&q, &k, &v, &opts)?, opts)?;
    let g = crate::flash_attention_backward(&q, &k, &v, &fwd, &d_o, opts)?;
    let (qs, ks) = (&h[0].1, &h[1].1);
    Ok((
        tensor(&g.dq, qs, kind),
        tensor(&g.dk, ks, kind),
        tensor(&g.dv, ks, kind),
    ))
}

/// [`crate::flash_attention_split_kv`] on tensors.
pub fn flash_attention_split_kv(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: Options,
    splits: Option<usize>,
) -> Result<Forward> {
    let (h, kind) = hosts(["q", "k", "v"], [q, k, v])?;
    let [q, k, v] = views(&h, ["q", "k", "v"])?;
    let out = crate::flash_attention_split_kv(&q, &k, &v, opts, splits)?;
    Ok(outputs(out, &h[0].1, kind))
}

/// [`crate::paged_attention`] on tensors: `context_lens` and `block_tables` of any integer
/// kind; the output has the query's shape and kind.
pub fn paged_attention(
    query: &Tensor,
    key_cache: &Tensor,
    value_cache: &Tensor,
    context_lens: &Tensor,
    block_tables: &Tensor,
    sm_scale: f32,
) -> Result<Tensor> {
    let names = ["query", "key_cache", "value_cache"];
    let (h, kind) = hosts(names, [query, key_cache, value_cache])?;
    let [query, key_cache, value_cache] = views(&h, names)?;
    let (lens, lens_shape) = host_i32("context_lens", context_lens)?;
    let (tables, tables_shape) = host_i32("block_tables", block_tables)?;
    let view = |arg, data, shape| {
        TensorView::from_slice(data, shape).map_err(|e| Error::Tensor {
            arg,
            message: format!("{e}"),
        })
    };
    let out = crate::paged_attention(
        &query,
        &key_cache,
        &value_cache,
        &view("context_lens", &lens[..], &lens_shape[..])?,
        &view("block_tables", &tables[..], &tables_shape[..])?,
        sm_scale,
    )?;
    Ok(tensor(&out, &h[0].1, kind))
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
    let names = ["q1", "k1", "q2", "k2", "v"];
    let (h, kind) = hosts(names, [q1, k1, q2, k2, v])?;
    let [q1, k1, q2, k2, v] = views(&h, names)?;
    let out = crate::piecewise_attention(&q1, &k1, &q2, &k2, &v, dist_threshold, opts)?;
    Ok(outputs(out, &h[0].1, kind))
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
    let names = ["q1", "k1", "q2", "k2", "v", "d_o", "o"];
    let (h, kind) = hosts(names, [q1, k1, q2, k2, v, d_o, o])?;
    let [q1, k1, q2, k2, v, d_o, o] = views(&h, names)?;
    let fwd = saved(&o, lse, crate::shape::check(&q1, &k1, &v, &opts)?, opts)?;
    let g = crate::piecewise_attention_backward(
        &q1,
        &k1,
        &q2,
        &k2,
        &v,
        &fwd,
        &d_o,
        dist_threshold,
        opts,
    )?;
    let (qs, ks) = (&h[0].1, &h[1].1);
    Ok([
        tensor(&g.dq1, qs, kind),
        tensor(&g.dk1, ks, kind),
        tensor(&g.dq2, qs, kind),
        tensor(&g.dk2, ks, kind),
        tensor(&g.dv, ks, kind),
    ])
}

/// A tensor's values as f32, and its shape.
type Host = (Vec<f32>, Vec<usize>);

/// A CPU tensor's values converted to `kind` (`E`'s), with its shape.
fn copy_out<E: tch::kind::Element>(
    arg: &'static str,
    t: &Tensor,
    kind: Kind,
) -> Result<(Vec<E>, Vec<usize>)> {
    if t.device() != Device::Cpu {
        return Err(Error::Tensor {
            arg,
            message: format!("is on {:?}; these kernels run on the CPU", t.device()),
        });
    }
    let failed = |e: tch::TchError| Error::Tensor {
        arg,
        message: e.to_string(),
    };
    let t = t
        .f_to_kind(kind)
        .and_then(|t| t.f_contiguous())
        .map_err(failed)?;
    let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
    let numel = t.numel();
    let mut data = vec![E::ZERO; numel];
    t.f_copy_data(&mut data, numel).map_err(failed)?;
    Ok((data, shape))
}

/// A CPU tensor's values as f32, with its shape.
fn host(arg: &'static str, t: &Tensor) -> Result<Host> {
    copy_out(arg, t, Kind::Float)
}

/// An integer CPU tensor's values as i32, with its shape.
fn host_i32(arg: &'static str, t: &Tensor) -> Result<(Vec<i32>, Vec<usize>)> {
    if t.is_floating_point() {
        return Err(Error::Tensor {
            arg,
            message: format!("expected integers, got {:?}", t.kind()),
        });
    }
    copy_out(arg, t, Kind::Int)
}

/// The tensors copied out, named by their arguments, and their common kind: f32, bf16 or
/// f16, the first's, which every other must share.
fn hosts<const N: usize>(names: [&'static str; N], ts: [&Tensor; N]) -> Result<(Vec<Host>, Kind)> {
    let kind = ts[0].kind();
    if !matches!(kind, Kind::Float | Kind::BFloat16 | Kind::Half) {
        return Err(Error::Tensor {
            arg: names[0],
            message: format!("kind {kind:?} is not supported (f32, bf16 or f16)"),
        });
    }
    let h = names
        .iter()
        .zip(ts)
        .map(|(&arg, t)| match t.kind() == kind {
            true => host(arg, t),
            false => Err(Error::Tensor {
                arg,
                message: format!("kind {:?} differs from {}'s {kind:?}", t.kind(), names[0]),
            }),
        })
        .collect::<Result<_>>()?;
    Ok((h, kind))
}

/// Views of copied-out tensors, named by their arguments.
fn views<'a, const N: usize>(
    h: &'a [Host],
    names: [&'static str; N],
) -> Result<[TensorView<'a, f32>; N]> {
    let v: Vec<TensorView<'a, f32>> = (h.iter())
        .zip(names)
        .map(|((data, shape), arg)| {
            TensorView::from_slice(data, shape).map_err(|e| Error::Tensor {
                arg,
                message: e.to_string(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(v.try_into()
        .unwrap_or_else(|_| unreachable!("one view per name")))
}

/// A tensor of `kind` holding `data` (rounded to that kind).
fn tensor(data: &[f32], shape: &[usize], kind: Kind) -> Tensor {
    let dims: Vec<i64> = shape.iter().map(|&s| s as i64).collect();
    Tensor::from_slice(data).view(dims.as_slice()).to_kind(kind)
}

/// The forward's outputs as tensors (o shaped as q).
fn outputs(out: Attention<f32>, q_shape: &[usize], kind: Kind) -> Forward {
    let Dims { b, hq, m, n, .. } = out.dims;
    Forward {
        o: tensor(&out.o, q_shape, kind),
        lse: tensor(&out.lse, &[b, hq, m], Kind::Float),
        total: (out.total).map(|t| tensor(&t, &[b, hq, n], Kind::Float)),
    }
}

/// The forward's o (already copied out) and lse, checked to be this problem's, as the
/// backward takes them.
fn saved(
    o: &TensorView<'_, f32>,
    lse: &Tensor,
    dims: Dims,
    opts: Options,
) -> Result<Attention<f32>> {
    let (lse, lses) = host("lse", lse)?;
    let Dims { b, hq, m, d, .. } = dims;
    for (arg, got, want) in [
        ("o", o.shape(), &[b, hq, m, d][..]),
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
        o: o.to_vec(),
        lse,
        total: None,
    })
}
