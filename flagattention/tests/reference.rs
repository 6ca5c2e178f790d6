//! FlagAttention's own correctness rule, on awkward shapes: with `ref` the naive formula in
//! f64 and `naive` the same formula in f32, max|ours − ref| ≤ 2·max|naive − ref| + 1e-5 for
//! o, lse, dq, dk and dv — causal (bottom-right, rows that see no key included) and not, GQA,
//! M ≠ N, inputs with std 1 to 4, non-contiguous views.

// The reference is written index by index, as the formula reads.
#![allow(clippy::needless_range_loop)]

use flagattention::{flash_attention, flash_attention_backward, Options};
use flagcore::rng::Rng;
use flagcore::TensorView;

trait F:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + PartialOrd
{
    fn of(x: f64) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn f64(self) -> f64;
}
impl F for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn f64(self) -> f64 {
        self as f64
    }
}
impl F for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn f64(self) -> f64 {
        self
    }
}

#[derive(Clone, Copy)]
struct Shape {
    b: usize,
    hq: usize,
    hk: usize,
    m: usize,
    n: usize,
    d: usize,
}

/// The naive formula in `T`: o, lse, dq, dk, dv (row-major, as f64).
#[allow(clippy::type_complexity)]
fn naive<T: F>(
    s: Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_o: &[f32],
    causal: bool,
    scale: f64,
) -> [Vec<f64>; 5] {
    let Shape { b, hq, hk, m, n, d } = s;
    let t = |x: &[f32]| x.iter().map(|&y| T::of(y as f64)).collect::<Vec<T>>();
    let (q, k, v, d_o) = (t(q), t(k), t(v), t(d_o));
    let zero = T::of(0.0);
    let (mut o, mut lse) = (
        vec![zero; b * hq * m * d],
        vec![f64::NEG_INFINITY; b * hq * m],
    );
    let (mut dq, mut dk, mut dv) = (
        vec![zero; b * hq * m * d],
        vec![zero; b * hk * n * d],
        vec![zero; b * hk * n * d],
    );
    for bi in 0..b {
        for h in 0..hq {
            let kh = h / (hq / hk);
            let qa = |i: usize, c: usize| q[((bi * hq + h) * m + i) * d + c];
            let ka = |j: usize, c: usize| k[((bi * hk + kh) * n + j) * d + c];
            let va = |j: usize, c: usize| v[((bi * hk + kh) * n + j) * d + c];
            let da = |i: usize, c: usize| d_o[((bi * hq + h) * m + i) * d + c];
            for i in 0..m {
                let visible = |j: usize| !causal || (i as i64 + n as i64 - m as i64) >= j as i64;
                let sc: Vec<Option<T>> = (0..n)
                    .map(|j| {
                        visible(j).then(|| {
                            let mut acc = zero;
                            for c in 0..d {
                                acc = acc + qa(i, c) * ka(j, c);
                            }
                            acc * T::of(scale)
                        })
                    })
                    .collect();
                let Some(mx) = sc
                    .iter()
                    .flatten()
                    .copied()
                    .reduce(|a, b| if b > a { b } else { a })
                else {
                    continue;
                };
                let e: Vec<T> = sc
                    .iter()
                    .map(|x| x.map_or(zero, |x| (x - mx).exp()))
                    .collect();
                let sum = e.iter().copied().fold(zero, |a, b| a + b);
                let p: Vec<T> = e.iter().map(|&x| x / sum).collect();
                lse[(bi * hq + h) * m + i] = (mx + sum.ln()).f64();
                let row = ((bi * hq + h) * m + i) * d;
                for c in 0..d {
                    let mut acc = zero;
                    for j in 0..n {
                        acc = acc + p[j] * va(j, c);
                    }
                    o[row + c] = acc;
                }
                // dP_j = do_i · v_j; dS_j = P_j (dP_j − Σ_l P_l dP_l)
                let dp: Vec<T> = (0..n)
                    .map(|j| {
                        let mut a = zero;
                        for c in 0..d {
                            a = a + da(i, c) * va(j, c);
                        }
                        a
                    })
                    .collect();
                let rowdot = (0..n).fold(zero, |a, j| a + p[j] * dp[j]);
                for j in 0..n {
                    let ds = p[j] * (dp[j] - rowdot) * T::of(scale);
                    let kr = ((bi * hk + kh) * n + j) * d;
                    for c in 0..d {
                        dq[row + c] = dq[row + c] + ds * ka(j, c);
                        dk[kr + c] = dk[kr + c] + ds * qa(i, c);
                        dv[kr + c] = dv[kr + c] + p[j] * da(i, c);
                    }
                }
            }
        }
    }
    let f = |x: Vec<T>| x.into_iter().map(F::f64).collect::<Vec<f64>>();
    [f(o), lse, f(dq), f(dk), f(dv)]
}

fn normal(rng: &mut Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2) = (rng.next_f64().max(1e-300), rng.next_f64());
            (std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

fn max_err(a: &[f64], r: &[f64]) -> f64 {
    assert_eq!(a.len(), r.len());
    // Equal values (−∞ LSE included) count 0; a NaN anywhere counts as infinitely wrong
    // (f64::max would drop it).
    a.iter()
        .zip(r)
        .map(|(x, y)| match (x == y, (x - y).abs()) {
            (true, _) => 0.0,
            (false, e) if e.is_nan() => f64::INFINITY,
            (false, e) => e,
        })
        .fold(0.0, f64::max)
}

fn check(s: Shape, causal: bool, std: f64, seed: u64) {
    let Shape { b, hq, hk, m, n, d } = s;
    let mut rng = Rng::new(seed);
    let q = normal(&mut rng, b * hq * m * d, std);
    // k is stored (B, Hk, D, N) and viewed transposed: a non-contiguous input.
    let kt = normal(&mut rng, b * hk * d * n, std);
    let v = normal(&mut rng, b * hk * n * d, std);
    let d_o = normal(&mut rng, b * hq * m * d, 1.0);
    let mut k = vec![0f32; kt.len()];
    for bh in 0..b * hk {
        for c in 0..d {
            for j in 0..n {
                k[(bh * n + j) * d + c] = kt[(bh * d + c) * n + j];
            }
        }
    }
    let scale = 1.0 / (d as f64).sqrt();
    let qv = TensorView::from_slice(&q, &[b, hq, m, d]).unwrap();
    let ktv = TensorView::from_slice(&kt, &[b, hk, d, n])
        .unwrap()
        .permute(&[0, 1, 3, 2])
        .unwrap();
    let vv = TensorView::from_slice(&v, &[b, hk, n, d]).unwrap();
    let dov = TensorView::from_slice(&d_o, &[b, hq, m, d]).unwrap();
    let opts = Options {
        causal,
        sm_scale: scale as f32,
        ..Options::new(d)
    };
    let fwd = flash_attention(&qv, &ktv, &vv, opts).unwrap();
    let g = flash_attention_backward(&qv, &ktv, &vv, &fwd, &dov, opts).unwrap();
    let r = naive::<f64>(s, &q, &k, &v, &d_o, causal, scale);
    let t = naive::<f32>(s, &q, &k, &v, &d_o, causal, scale);
    let f = |x: &[f32]| x.iter().map(|&y| y as f64).collect::<Vec<f64>>();
    let ours = [f(&fwd.o), f(&fwd.lse), f(&g.dq), f(&g.dk), f(&g.dv)];
    for (name, ((o, r), t)) in ["o", "lse", "dq", "dk", "dv"]
        .iter()
        .zip(ours.iter().zip(&r).zip(&t))
    {
        let (e_ours, e_naive) = (max_err(o, r), max_err(t, r));
        assert!(
            e_ours <= 2.0 * e_naive + 1e-5,
            "{name} of {:?} causal={causal} std={std}: ours {e_ours:e}, naive f32 {e_naive:e}",
            (b, hq, hk, m, n, d)
        );
    }
}

#[test]
fn awkward_shapes_match_the_reference() {
    let shapes = [
        Shape {
            b: 1,
            hq: 2,
            hk: 1,
            m: 219,
            n: 220,
            d: 16,
        },
        Shape {
            b: 2,
            hq: 4,
            hk: 2,
            m: 101,
            n: 333,
            d: 64,
        },
        Shape {
            b: 1,
            hq: 2,
            hk: 2,
            m: 130,
            n: 10,
            d: 128,
        },
        Shape {
            b: 1,
            hq: 3,
            hk: 1,
            m: 67,
            n: 67,
            d: 40,
        },
    ];
    for (i, s) in shapes.iter().enumerate() {
        for causal in [false, true] {
            check(*s, causal, 1.0 + (i % 4) as f64, 7 + i as u64);
        }
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    let x = vec![0f32; 2 * 4 * 8 * 16];
    let q = TensorView::from_slice(&x, &[2, 4, 8, 16]).unwrap();
    let k3 = TensorView::from_slice(&x[..2 * 3 * 8 * 16], &[2, 3, 8, 16]).unwrap();
    let e = flash_attention(&q, &k3, &k3, Options::new(16)).unwrap_err();
    assert!(
        matches!(e, flagattention::Error::Heads { hq: 4, hk: 3 }),
        "{e}"
    );
    let e = flash_attention(
        &q,
        &q,
        &q,
        Options {
            sm_scale: f32::NAN,
            ..Options::new(16)
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("sm_scale"), "{e}");
    let small = TensorView::from_slice(&x[..2 * 4 * 8 * 8], &[2, 4, 8, 8]).unwrap();
    assert!(matches!(
        flash_attention(&small, &small, &small, Options::new(8)).unwrap_err(),
        flagattention::Error::HeadDim(8)
    ));
    let three = TensorView::from_slice(&x, &[8, 8, 16]).unwrap();
    let e = flash_attention(&q, &three, &three, Options::new(16)).unwrap_err();
    assert!(e.to_string().contains("`k`"), "{e}");
}

#[test]
fn the_issues_larger_shapes_match_the_reference() {
    let shapes = [
        Shape {
            b: 2,
            hq: 4,
            hk: 4,
            m: 512,
            n: 612,
            d: 128,
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
            b: 1,
            hq: 4,
            hk: 2,
            m: 401,
            n: 1024,
            d: 64,
        },
    ];
    for (i, s) in shapes.iter().enumerate() {
        check(*s, i % 2 == 0, 4.0 - i as f64, 100 + i as u64);
    }
}
