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

/// The naive formula in `kind`: o, lse, dq, dk, dv, total attention, as f64.
fn naive(inputs: &[Tensor; 4], s: Shape, causal: bool, scale: f64, kind: Kind) -> Vec<Tensor> {
    let [q, k, v, d_o] = inputs.each_ref().map(|t| t.to_kind(kind));
    let (q, k, v) = (
        q.set_requires_grad(true),
        k.set_requires_grad(true),
        v.set_requires_grad(true),
    );
    let g = s.hq / s.hk;
    let ke = k.repeat_interleave_self_int(g, 1, None);
    let ve = v.repeat_interleave_self_int(g, 1, None);
    let scores = q.matmul(&ke.transpose(-2, -1)) * scale;
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
    let o = p.matmul(&ve);
    (&o * &d_o).sum(kind).backward();
    [o, lse, q.grad(), k.grad(), v.grad(), total]
        .iter()
        .map(|t| t.detach().to_kind(Kind::Double))
        .collect()
}

fn max_err(a: &Tensor, r: &Tensor) -> f64 {
    // Equal values (−∞ LSE included) count 0; a NaN counts as infinitely wrong.
    let diff = (a - r).abs().masked_fill(&a.eq_tensor(r), 0.0);
    let diff = diff.nan_to_num(f64::INFINITY, f64::INFINITY, f64::INFINITY);
    diff.max().double_value(&[])
}

fn check(s: Shape, causal: bool, std: f64, kind: Kind, seed: i64) {
    tch::manual_seed(seed);
    let q_shape = [s.b, s.hq, s.m, s.d];
    let k_shape = [s.b, s.hk, s.n, s.d];
    let normal = |shape: [i64; 4], std: f64| {
        (Tensor::randn(shape, (Kind::Float, Device::Cpu)) * std).to_kind(kind)
    };
    // Inputs in the dtype; the reference reads the same rounded values in f64.
    let inputs = [
        normal(q_shape, std),
        normal(k_shape, std),
        normal(k_shape, std),
        normal(q_shape, 1.0),
    ];
    let scale = 1.0 / (s.d as f64).sqrt();
    let opts = Options {
        causal,
        sm_scale: scale as f32,
        total_attention: true,
        ..Options::new(s.d as usize)
    };
    let [q, k, v, d_o] = &inputs;
    let fwd = fa::flash_attention(q, k, v, opts).unwrap_or_else(|e| panic!("{e}"));
    let (dq, dk, dv) = fa::flash_attention_backward(q, k, v, &fwd.o, &fwd.lse, d_o, opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let ours: Vec<Tensor> = [&fwd.o, &fwd.lse, &dq, &dk, &dv, fwd.total.as_ref().unwrap()]
        .iter()
        .map(|t| t.to_kind(Kind::Double))
        .collect();
    let reference = naive(&inputs, s, causal, scale, Kind::Double);
    let torch = naive(&inputs, s, causal, scale, kind);
    for (i, name) in ["o", "lse", "dq", "dk", "dv", "total"].iter().enumerate() {
        let (e_ours, e_torch) = (
            max_err(&ours[i], &reference[i]),
            max_err(&torch[i], &reference[i]),
        );
        assert!(
            e_ours <= 2.0 * e_torch + 1e-5,
            "{name} of {s:?} {kind:?} causal={causal} std={std}: ours {e_ours:e}, torch {e_torch:e}"
        );
    }
}

const SHAPES: [Shape; 4] = [
    Shape {
        b: 2,
        hq: 4,
        hk: 4,
        m: 512,
        n: 612,
        d: 128,
    },
    Shape {
        b: 2,
        hq: 4,
        hk: 2,
        m: 401,
        n: 4096,
        d: 64,
    },
    Shape {
        b: 1,
        hq: 2,
        hk: 1,
        m: 819,
        n: 820,
        d: 16,
    },
    Shape {
        b: 2,
        hq: 4,
        hk: 4,
        m: 1006,
        n: 10,
        d: 128,
    },
];

fn all_shapes(kind: Kind) {
    for (i, s) in SHAPES.iter().enumerate() {
        for causal in [false, true] {
            check(
                *s,
                causal,
                1.0 + i as f64,
                kind,
                10 * i as i64 + causal as i64,
            );
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

/// Piecewise attention's naive formula in `kind` (FlagAttention's own reference: the scaled
/// scores are `where(i + N − M − j ≥ threshold, q2·k2, q1·k1)`): o, lse, dq1, dk1, dq2, dk2,
/// dv, total attention, as f64.
fn naive_piecewise(
    inputs: &[Tensor; 6],
    s: Shape,
    causal: bool,
    threshold: i64,
    scale: f64,
    kind: Kind,
) -> Vec<Tensor> {
    let [q1, k1, q2, k2, v, d_o] = inputs.each_ref().map(|t| t.to_kind(kind));
    let [q1, k1, q2, k2, v] = [q1, k1, q2, k2, v].map(|t| t.set_requires_grad(true));
    let g = s.hq / s.hk;
    let expand = |t: &Tensor| t.repeat_interleave_self_int(g, 1, None);
    let s1 = q1.matmul(&expand(&k1).transpose(-2, -1));
    let s2 = q2.matmul(&expand(&k2).transpose(-2, -1));
    let i = Tensor::arange(s.m, (Kind::Int64, Device::Cpu)).unsqueeze(-1);
    let j = Tensor::arange(s.n, (Kind::Int64, Device::Cpu)).unsqueeze(0);
    let far = (i + (s.n - s.m) - j).ge(threshold);
    let scores = s2.where_self(&far, &s1) * scale;
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
    let o = p.matmul(&expand(&v));
    (&o * &d_o).sum(kind).backward();
    [
        o,
        lse,
        q1.grad(),
        k1.grad(),
        q2.grad(),
        k2.grad(),
        v.grad(),
        total,
    ]
    .iter()
    .map(|t| t.detach().to_kind(Kind::Double))
    .collect()
}

fn check_piecewise(s: Shape, causal: bool, threshold: i64, kind: Kind, seed: i64) {
    tch::manual_seed(seed);
    let q_shape = [s.b, s.hq, s.m, s.d];
    let k_shape = [s.b, s.hk, s.n, s.d];
    let normal = |shape: [i64; 4], std: f64| {
        (Tensor::randn(shape, (Kind::Float, Device::Cpu)) * std).to_kind(kind)
    };
    let inputs = [
        normal(q_shape, 2.0),
        normal(k_shape, 2.0),
        normal(q_shape, 2.0),
        normal(k_shape, 2.0),
        normal(k_shape, 1.0),
        normal(q_shape, 1.0),
    ];
    let scale = 0.5;
    let opts = Options {
        causal,
        sm_scale: scale as f32,
        total_attention: true,
        ..Options::new(s.d as usize)
    };
    let [q1, k1, q2, k2, v, d_o] = &inputs;
    let fwd = fa::piecewise_attention(q1, k1, q2, k2, v, threshold, opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let g =
        fa::piecewise_attention_backward(q1, k1, q2, k2, v, &fwd.o, &fwd.lse, d_o, threshold, opts)
            .unwrap_or_else(|e| panic!("{e}"));
    let ours: Vec<Tensor> = [
        &fwd.o,
        &fwd.lse,
        &g[0],
        &g[1],
        &g[2],
        &g[3],
        &g[4],
        fwd.total.as_ref().unwrap(),
    ]
    .iter()
    .map(|t| t.to_kind(Kind::Double))
    .collect();
    let reference = naive_piecewise(&inputs, s, causal, threshold, scale, Kind::Double);
    let torch = naive_piecewise(&inputs, s, causal, threshold, scale, kind);
    let names = ["o", "lse", "dq1", "dk1", "dq2", "dk2", "dv", "total"];
    for (i, name) in names.iter().enumerate() {
        let (e_ours, e_torch) = (
            max_err(&ours[i], &reference[i]),
            max_err(&torch[i], &reference[i]),
        );
        assert!(
            e_ours <= 2.0 * e_torch + 1e-5,
            "piecewise {name} of {s:?} {kind:?} causal={causal} threshold={threshold}: ours {e_ours:e}, torch {e_torch:e}"
        );
    }
}

#[test]
fn piecewise_matches_libtorch_autograd() {
    let cases = [
        (
            Shape {
                b: 2,
                hq: 4,
                hk: 4,
                m: 512,
                n: 612,
                d: 128,
            },
            100,
        ),
        (
            Shape {
                b: 1,
                hq: 2,
                hk: 1,
                m: 819,
                n: 820,
                d: 16,
            },
            300,
        ),
        (
            Shape {
                b: 1,
                hq: 4,
                hk: 2,
                m: 300,
                n: 200,
                d: 64,
            },
            -20,
        ),
        (
            Shape {
                b: 2,
                hq: 2,
                hk: 2,
                m: 1006,
                n: 10,
                d: 32,
            },
            3,
        ),
    ];
    for (i, (s, threshold)) in cases.into_iter().enumerate() {
        for kind in [Kind::Float, Kind::BFloat16, Kind::Half] {
            for causal in [false, true] {
                check_piecewise(s, causal, threshold, kind, 100 + i as i64);
            }
        }
    }
}
