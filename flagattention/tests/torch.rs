//! libtorch as the second reference (feature `tch`), as FlagAttention tests itself: `ref` is
//! the naive formula run by libtorch in f64 (autograd for the backward), `torch` the same
//! formula in the inputs' dtype, and ours runs through the tch adapter; for o, lse, dq, dk,
//! dv and total attention, max|ours − ref| ≤ 2·max|torch − ref| + 1e-5, in f32, bf16 and
//! f16, on the awkward shapes, both causal settings.

use flagattention::{torch as fa, Options};
use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug)]
struct Shape {
    b: i64,
    hq: i64,
    hk: i64,
    m: i64,
    n: i64,
    d: i64,
}

/// (B, Hq, Hk, M, N, D).
const fn shape(b: i64, hq: i64, hk: i64, m: i64, n: i64, d: i64) -> Shape {
    Shape { b, hq, hk, m, n, d }
}

/// The naive formula in `kind` — FlagAttention's own reference — on `inputs` = the score
/// pairs' (q, k) (one pair; two for piecewise attention, whose scaled scores are
/// `where(i + N − M − j ≥ threshold, q2·k2, q1·k1)`), then v and do: o, lse, each pair's dq
/// and dk, dv, total attention, as f64.
fn naive(
    inputs: &[Tensor],
    s: Shape,
    causal: bool,
    threshold: Option<i64>,
    scale: f64,
    kind: Kind,
) -> Vec<Tensor> {
    let n_in = inputs.len();
    let d_o = inputs[n_in - 1].to_kind(kind);
    let grads: Vec<Tensor> = inputs[..n_in - 1]
        .iter()
        .map(|t| t.to_kind(kind).set_requires_grad(true))
        .collect();
    let (pairs, v) = (&grads[..n_in - 2], &grads[n_in - 2]);
    let expand = |t: &Tensor| t.repeat_interleave_self_int(s.hq / s.hk, 1, None);
    let product = |p: usize| pairs[2 * p].matmul(&expand(&pairs[2 * p + 1]).transpose(-2, -1));
    let scores = match threshold {
        None => product(0),
        Some(t) => {
            let i = Tensor::arange(s.m, (Kind::Int64, Device::Cpu)).unsqueeze(-1);
            let j = Tensor::arange(s.n, (Kind::Int64, Device::Cpu)).unsqueeze(0);
            product(1).where_self(&(i + (s.n - s.m) - j).ge(t), &product(0))
        }
    } * scale;
    // Query i sees key j when i + (N − M) ≥ j; a row that sees nothing gives 0 (a finite
    // fill keeps its softmax finite; the visibility product then zeroes it).
    let visible = match causal {
        true => Tensor::ones([s.m, s.n], (Kind::Bool, Device::Cpu)).tril(s.n - s.m),
        false => Tensor::ones([s.m, s.n], (Kind::Bool, Device::Cpu)),
    };
    let scores = scores.masked_fill(&visible.logical_not(), -1e4);
    let p = scores.softmax(-1, kind) * visible.to_kind(kind);
    let empty = visible.any_dim(-1, false).logical_not().unsqueeze(-1);
    let lse = scores
        .logsumexp([-1].as_slice(), true)
        .masked_fill(&empty, f64::NEG_INFINITY)
        .squeeze_dim(-1);
    let total = p.sum_dim_intlist([-2].as_slice(), false, kind);
    let o = p.matmul(&expand(v));
    (&o * &d_o).sum(kind).backward();
    let mut out = vec![o, lse];
    out.extend(grads.iter().map(Tensor::grad));
    out.push(total);
    out.iter()
        .map(|t| t.detach().to_kind(Kind::Double))
        .collect()
}

fn max_err(a: &Tensor, r: &Tensor) -> f64 {
    // Equal values (−∞ LSE included) count 0; a NaN counts as infinitely wrong.
    let diff = (a - r).abs().masked_fill(&a.eq_tensor(r), 0.0);
    let diff = diff.nan_to_num(f64::INFINITY, f64::INFINITY, f64::INFINITY);
    diff.max().double_value(&[])
}

/// Ours through the tch adapter against the naive formula, by FlagAttention's rule, for
/// plain attention (`threshold` None) or piecewise; `stds` gives each input's standard
/// deviation, in `naive`'s order.
fn check(
    s: Shape,
    causal: bool,
    threshold: Option<i64>,
    stds: &[f64],
    scale: f64,
    kind: Kind,
    seed: i64,
) {
    tch::manual_seed(seed);
    let q_shape = [s.b, s.hq, s.m, s.d];
    let k_shape = [s.b, s.hk, s.n, s.d];
    // Inputs in the dtype; the reference reads the same rounded values in f64. Each pair is
    // (q, k), then v and do.
    let last = stds.len() - 1;
    let inputs: Vec<Tensor> = (stds.iter().enumerate())
        .map(|(i, std)| {
            let shape = match i {
                _ if i == last => q_shape,
                _ if i == last - 1 || i % 2 == 1 => k_shape,
                _ => q_shape,
            };
            (Tensor::randn(shape, (Kind::Float, Device::Cpu)) * *std).to_kind(kind)
        })
        .collect();
    let opts = Options {
        causal,
        sm_scale: scale as f32,
        total_attention: true,
        ..Options::new(s.d as usize)
    };
    let v = &inputs[last - 1];
    let d_o = &inputs[last];
    let (fwd, grads) = match (threshold, &inputs[..]) {
        (None, [q, k, ..]) => {
            let fwd = fa::flash_attention(q, k, v, opts).unwrap_or_else(|e| panic!("{e}"));
            let (dq, dk, dv) = fa::flash_attention_backward(q, k, v, &fwd.o, &fwd.lse, d_o, opts)
                .unwrap_or_else(|e| panic!("{e}"));
            (fwd, vec![dq, dk, dv])
        }
        (Some(t), [q1, k1, q2, k2, ..]) => {
            let fwd = fa::piecewise_attention(q1, k1, q2, k2, v, t, opts)
                .unwrap_or_else(|e| panic!("{e}"));
            let g =
                fa::piecewise_attention_backward(q1, k1, q2, k2, v, &fwd.o, &fwd.lse, d_o, t, opts)
                    .unwrap_or_else(|e| panic!("{e}"));
            (fwd, g.into())
        }
        _ => unreachable!("one pair, or two with a threshold"),
    };
    let mut ours = vec![&fwd.o, &fwd.lse];
    ours.extend(&grads);
    ours.push(fwd.total.as_ref().unwrap());
    let reference = naive(&inputs, s, causal, threshold, scale, Kind::Double);
    let torch = naive(&inputs, s, causal, threshold, scale, kind);
    let names: &[&str] = match threshold {
        None => &["o", "lse", "dq", "dk", "dv", "total"],
        Some(_) => &["o", "lse", "dq1", "dk1", "dq2", "dk2", "dv", "total"],
    };
    for (i, name) in names.iter().enumerate() {
        let ours = ours[i].to_kind(Kind::Double);
        let (e_ours, e_torch) = (
            max_err(&ours, &reference[i]),
            max_err(&torch[i], &reference[i]),
        );
        assert!(
            e_ours <= 2.0 * e_torch + 1e-5,
            "{name} of {s:?} {kind:?} causal={causal} threshold={threshold:?} stds={stds:?}: \
             ours {e_ours:e}, torch {e_torch:e}"
        );
    }
}

const SHAPES: [Shape; 4] = [
    shape(2, 4, 4, 512, 612, 128),
    shape(2, 4, 2, 401, 4096, 64),
    shape(1, 2, 1, 819, 820, 16),
    shape(2, 4, 4, 1006, 10, 128),
];

fn all_shapes(kind: Kind) {
    for (i, s) in SHAPES.iter().enumerate() {
        for causal in [false, true] {
            let std = 1.0 + i as f64;
            let scale = 1.0 / (s.d as f64).sqrt();
            let seed = 10 * i as i64 + causal as i64;
            check(*s, causal, None, &[std, std, std, 1.0], scale, kind, seed);
        }
    }
}

#[test]
fn f32_matches_libtorch_autograd() {
    all_shapes(Kind::Float);
}

#[test]
fn bf16_matches_libtorch_autograd() {
    all_shapes(Kind::BFloat16);
}

#[test]
fn f16_matches_libtorch_autograd() {
    all_shapes(Kind::Half);
}

#[test]
fn bad_tensors_are_typed_errors() {
    let q = Tensor::zeros([1, 2, 8, 16], (Kind::Float, Device::Cpu));
    let k = Tensor::zeros([1, 2, 8, 16], (Kind::BFloat16, Device::Cpu));
    let e = fa::flash_attention(&q, &k, &k, Options::new(16)).unwrap_err();
    assert!(e.to_string().starts_with("`k`"), "{e}");
    let ints = Tensor::zeros([1, 2, 8, 16], (Kind::Int64, Device::Cpu));
    let e = fa::flash_attention(&ints, &ints, &ints, Options::new(16)).unwrap_err();
    assert!(e.to_string().contains("Int64"), "{e}");
    let fwd = fa::flash_attention(&q, &q, &q, Options::new(16)).unwrap();
    let short = Tensor::zeros([1, 2, 7], (Kind::Float, Device::Cpu));
    let e =
        fa::flash_attention_backward(&q, &q, &q, &fwd.o, &short, &q, Options::new(16)).unwrap_err();
    assert!(e.to_string().contains("lse"), "{e}");
}

#[test]
fn piecewise_matches_libtorch_autograd() {
    let cases = [
        (shape(2, 4, 4, 512, 612, 128), 100),
        (shape(1, 2, 1, 819, 820, 16), 300),
        (shape(1, 4, 2, 300, 200, 64), -20),
        (shape(2, 2, 2, 1006, 10, 32), 3),
    ];
    for (i, (s, threshold)) in cases.into_iter().enumerate() {
        for kind in [Kind::Float, Kind::BFloat16, Kind::Half] {
            for causal in [false, true] {
                let stds = [2.0, 2.0, 2.0, 2.0, 1.0, 1.0];
                check(s, causal, Some(threshold), &stds, 0.5, kind, 100 + i as i64);
            }
        }
    }
}

fn view<'a>(x: &'a [f32], shape: &[usize]) -> flagcore::TensorView<'a, f32> {
    flagcore::TensorView::from_slice(x, shape).unwrap()
}

/// The decoding operators through the adapter give what the crate gives on the same values.
#[test]
fn decoding_through_the_adapter_equals_the_crate() {
    tch::manual_seed(4);
    let randn = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, Device::Cpu));
    let (q, k, v) = (
        randn(&[1, 4, 2, 32]),
        randn(&[1, 2, 700, 32]),
        randn(&[1, 2, 700, 32]),
    );
    let opts = Options {
        causal: true,
        ..Options::new(32)
    };
    let ours = fa::flash_attention_split_kv(&q, &k, &v, opts, Some(3)).unwrap();
    let data = |t: &Tensor| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
    let (qd, kd, vd) = (data(&q), data(&k), data(&v));
    let direct = flagattention::flash_attention_split_kv(
        &view(&qd, &[1, 4, 2, 32]),
        &view(&kd, &[1, 2, 700, 32]),
        &view(&vd, &[1, 2, 700, 32]),
        opts,
        Some(3),
    )
    .unwrap();
    assert_eq!(data(&ours.o), direct.o);
    assert_eq!(data(&ours.lse), direct.lse);
    // Paged: 3 sequences over a cache of 6 blocks of 16.
    let query = randn(&[3, 4, 32]);
    let cache = randn(&[6, 2, 16, 32]);
    let lens = Tensor::from_slice(&[20i64, 0, 33]);
    let tables = Tensor::from_slice(&[5i64, 2, 0, 1, 3, 4, 4, 0, 1]).view([3, 3]);
    let paged = fa::paged_attention(&query, &cache, &cache, &lens, &tables, 0.2).unwrap();
    let (qd, cd) = (data(&query), data(&cache));
    let direct = flagattention::paged_attention(
        &view(&qd, &[3, 4, 32]),
        &view(&cd, &[6, 2, 16, 32]),
        &view(&cd, &[6, 2, 16, 32]),
        &flagcore::TensorView::from_slice(&[20i32, 0, 33], &[3]).unwrap(),
        &flagcore::TensorView::from_slice(&[5i32, 2, 0, 1, 3, 4, 4, 0, 1], &[3, 3]).unwrap(),
        0.2,
    )
    .unwrap();
    assert_eq!(paged.size(), [3, 4, 32]);
    assert_eq!(data(&paged), direct);
    let e = fa::paged_attention(&query, &cache, &cache, &query, &tables, 0.2).unwrap_err();
    assert!(e.to_string().starts_with("`context_lens`"), "{e}");
}
