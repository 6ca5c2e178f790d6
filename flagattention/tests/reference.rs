//! FlagAttention's own correctness rule, on awkward shapes: with `ref` the naive formula in
//! f64 and `naive` the same formula in f32, max|ours − ref| ≤ 2·max|naive − ref| + 1e-5 for
//! o, lse, dq, dk and dv — causal (bottom-right, rows that see no key included) and not, GQA,
//! M ≠ N, inputs with std 1 to 4, non-contiguous views.

// The reference is written index by index, as the formula reads.
#![allow(clippy::needless_range_loop)]

use flagattention::{flash_attention, flash_attention_backward, Dims, Dropout, Options};
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

/// (B, Hq, Hk, M, N, D).
const fn shape(b: usize, hq: usize, hk: usize, m: usize, n: usize, d: usize) -> Shape {
    Shape { b, hq, hk, m, n, d }
}

/// The naive formula in `T`: o, lse, dq, dk, dv, total attention (row-major, as f64), with
/// `drop`'s mask (survivors scaled by 1 / (1 − p)) applied to the probabilities.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn naive<T: F>(
    s: Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_o: &[f32],
    causal: bool,
    scale: f64,
    drop: Option<Dropout>,
) -> [Vec<f64>; 6] {
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
    let mut total = vec![zero; b * hq * n];
    let dims = Dims { b, hq, hk, m, n, d };
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
                for j in 0..n {
                    let t = &mut total[(bi * hq + h) * n + j];
                    *t = *t + p[j];
                }
                // The dropout factor of each key: 0 or 1 / (1 − p).
                let keep: Vec<T> = (0..n)
                    .map(|j| match drop {
                        Some(dr) if !dr.keeps(dims, bi * hq + h, i, j) => zero,
                        Some(dr) => T::of(1.0 / (1.0 - dr.p as f64)),
                        None => T::of(1.0),
                    })
                    .collect();
                let pd: Vec<T> = (0..n).map(|j| p[j] * keep[j]).collect();
                lse[(bi * hq + h) * m + i] = (mx + sum.ln()).f64();
                let row = ((bi * hq + h) * m + i) * d;
                for c in 0..d {
                    let mut acc = zero;
                    for j in 0..n {
                        acc = acc + pd[j] * va(j, c);
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
                        a * keep[j]
                    })
                    .collect();
                let rowdot = (0..n).fold(zero, |a, j| a + p[j] * dp[j]);
                for j in 0..n {
                    let ds = p[j] * (dp[j] - rowdot) * T::of(scale);
                    let kr = ((bi * hk + kh) * n + j) * d;
                    for c in 0..d {
                        dq[row + c] = dq[row + c] + ds * ka(j, c);
                        dk[kr + c] = dk[kr + c] + ds * qa(i, c);
                        dv[kr + c] = dv[kr + c] + pd[j] * da(i, c);
                    }
                }
            }
        }
    }
    let f = |x: Vec<T>| x.into_iter().map(F::f64).collect::<Vec<f64>>();
    [f(o), lse, f(dq), f(dk), f(dv), f(total)]
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

fn check(s: Shape, causal: bool, std: f64, seed: u64, drop: Option<Dropout>) {
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
        dropout: drop,
        total_attention: true,
    };
    let fwd = flash_attention(&qv, &ktv, &vv, opts).unwrap();
    let g = flash_attention_backward(&qv, &ktv, &vv, &fwd, &dov, opts).unwrap();
    let r = naive::<f64>(s, &q, &k, &v, &d_o, causal, scale, drop);
    let t = naive::<f32>(s, &q, &k, &v, &d_o, causal, scale, drop);
    let f = |x: &[f32]| x.iter().map(|&y| y as f64).collect::<Vec<f64>>();
    let total = fwd.total.as_deref().unwrap();
    let ours = [
        f(&fwd.o),
        f(&fwd.lse),
        f(&g.dq),
        f(&g.dk),
        f(&g.dv),
        f(total),
    ];
    for (name, ((o, r), t)) in ["o", "lse", "dq", "dk", "dv", "total"]
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
        shape(1, 2, 1, 219, 220, 16),
        shape(2, 4, 2, 101, 333, 64),
        shape(1, 2, 2, 130, 10, 128),
        shape(1, 3, 1, 67, 67, 40),
    ];
    for (i, s) in shapes.iter().enumerate() {
        for causal in [false, true] {
            check(*s, causal, 1.0 + (i % 4) as f64, 7 + i as u64, None);
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
    for p in [1.0, -0.1, f32::NAN] {
        let opts = Options {
            dropout: Some(Dropout { p, seed: 1 }),
            ..Options::new(16)
        };
        let e = flash_attention(&q, &q, &q, opts).unwrap_err();
        assert!(e.to_string().contains("dropout_p"), "{e}");
    }
    let three = TensorView::from_slice(&x, &[8, 8, 16]).unwrap();
    let e = flash_attention(&q, &three, &three, Options::new(16)).unwrap_err();
    assert!(e.to_string().contains("`k`"), "{e}");
}

#[test]
fn the_issues_larger_shapes_match_the_reference() {
    let shapes = [
        shape(2, 4, 4, 512, 612, 128),
        shape(1, 2, 1, 819, 820, 16),
        shape(1, 4, 2, 401, 1024, 64),
    ];
    for (i, s) in shapes.iter().enumerate() {
        check(*s, i % 2 == 0, 4.0 - i as f64, 100 + i as u64, None);
    }
}

/// Dropout: the backward regenerates the forward's mask (the reference draws it from
/// [`Dropout::keeps`] element by element), GQA and causal included.
#[test]
fn dropout_matches_the_reference_with_the_same_mask() {
    let s = shape(2, 4, 2, 150, 230, 32);
    for (i, causal) in [false, true].into_iter().enumerate() {
        let drop = Dropout {
            p: 0.3,
            seed: 42 + i as u64,
        };
        check(s, causal, 2.0, 300 + i as u64, Some(drop));
    }
}

/// The mask's survivors are a 1 − p fraction, and no pattern ties neighbours together.
#[test]
fn dropout_keeps_one_minus_p_independently() {
    let dims = Dims {
        b: 1,
        hq: 2,
        hk: 2,
        m: 300,
        n: 400,
        d: 16,
    };
    let drop = Dropout { p: 0.2, seed: 9 };
    let (mut kept, mut both, mut pairs) = (0usize, 0usize, 0usize);
    let count = 2 * dims.m * dims.n;
    for bh in 0..2 {
        for i in 0..dims.m {
            let row: Vec<bool> = (0..dims.n).map(|j| drop.keeps(dims, bh, i, j)).collect();
            kept += row.iter().filter(|&&x| x).count();
            both += row.windows(2).filter(|w| w[0] && w[1]).count();
            pairs += row.len() - 1;
        }
    }
    // Binomial standard deviation of the kept fraction: √(0.16 / 240000) ≈ 0.0008.
    let rate = kept as f64 / count as f64;
    assert!((rate - 0.8).abs() < 0.004, "kept {rate}");
    let joint = both as f64 / pairs as f64;
    assert!(
        (joint - 0.64).abs() < 0.006,
        "neighbours kept together {joint}"
    );
    let other = Dropout { p: 0.2, seed: 10 };
    let same = (0..dims.n)
        .filter(|&j| drop.keeps(dims, 0, 0, j) == other.keeps(dims, 0, 0, j))
        .count();
    assert!(same < dims.n, "another seed gives another mask");
}

fn tv4(x: &[f32], s: Shape, h: usize, len: usize) -> TensorView<'_, f32> {
    TensorView::from_slice(x, &[s.b, h, len, s.d]).unwrap()
}

/// The backward is the gradient: central differences of L = Σ o·do through the f64 naive
/// forward agree with the naive f64 backward (the derivation) and with ours.
#[test]
fn gradients_match_finite_differences() {
    let s = shape(1, 2, 1, 5, 7, 16);
    for causal in [false, true] {
        let mut rng = Rng::new(77 + causal as u64);
        let len_q = s.b * s.hq * s.m * s.d;
        let len_k = s.b * s.hk * s.n * s.d;
        let (q, k, v, d_o) = (
            normal(&mut rng, len_q, 1.0),
            normal(&mut rng, len_k, 1.0),
            normal(&mut rng, len_k, 1.0),
            normal(&mut rng, len_q, 1.0),
        );
        let scale = 0.25;
        let loss = |q: &[f32], k: &[f32], v: &[f32]| {
            let [o, ..] = naive::<f64>(s, q, k, v, &d_o, causal, scale, None);
            o.iter().zip(&d_o).map(|(o, g)| o * *g as f64).sum::<f64>()
        };
        let opts = Options {
            causal,
            sm_scale: scale as f32,
            ..Options::new(s.d)
        };
        let (tq, tk, tv) = (
            tv4(&q, s, s.hq, s.m),
            tv4(&k, s, s.hk, s.n),
            tv4(&v, s, s.hk, s.n),
        );
        let fwd = flash_attention(&tq, &tk, &tv, opts).unwrap();
        let tdo = tv4(&d_o, s, s.hq, s.m);
        let ours = flash_attention_backward(&tq, &tk, &tv, &fwd, &tdo, opts).unwrap();
        let [_, _, rq, rk, rv, _] = naive::<f64>(s, &q, &k, &v, &d_o, causal, scale, None);
        // The inputs are f32: each step is what the bumped value rounds to.
        let h = 1e-3f32;
        for (which, ours, derived) in [(0, &ours.dq, &rq), (1, &ours.dk, &rk), (2, &ours.dv, &rv)] {
            for idx in 0..ours.len() {
                let bump = |delta: f32| {
                    let mut x = [q.clone(), k.clone(), v.clone()];
                    x[which][idx] += delta;
                    x
                };
                let (xp, xm) = (bump(h), bump(-h));
                let step = (xp[which][idx] - xm[which][idx]) as f64;
                let fd = (loss(&xp[0], &xp[1], &xp[2]) - loss(&xm[0], &xm[1], &xm[2])) / step;
                assert!(
                    (derived[idx] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                    "tensor {which} [{idx}] causal={causal}: derived {} vs differences {fd}",
                    derived[idx]
                );
                assert!(
                    (ours[idx] as f64 - fd).abs() <= 1e-4 * (1.0 + fd.abs()),
                    "tensor {which} [{idx}] causal={causal}: ours {} vs differences {fd}",
                    ours[idx]
                );
            }
        }
    }
}

/// Decoding with the keys split: FlagAttention's rule for o and lse (and total attention)
/// whatever the number of parts, causal (bottom-right: the few queries are the last
/// positions) and not, GQA.
#[test]
fn split_kv_matches_the_reference() {
    let s = shape(2, 4, 1, 3, 2100, 64);
    let Shape { b, hq, hk, m, n, d } = s;
    let mut rng = Rng::new(31);
    let q = normal(&mut rng, b * hq * m * d, 2.0);
    let k = normal(&mut rng, b * hk * n * d, 2.0);
    let v = normal(&mut rng, b * hk * n * d, 1.0);
    let d_o = vec![0f32; q.len()];
    for causal in [false, true] {
        let scale = 1.0 / (d as f64).sqrt();
        let r = naive::<f64>(s, &q, &k, &v, &d_o, causal, scale, None);
        let t = naive::<f32>(s, &q, &k, &v, &d_o, causal, scale, None);
        let opts = Options {
            causal,
            total_attention: true,
            ..Options::new(d)
        };
        for splits in [Some(1), Some(3), Some(7), Some(1000), None] {
            let out = flagattention::flash_attention_split_kv(
                &tv4(&q, s, hq, m),
                &tv4(&k, s, hk, n),
                &tv4(&v, s, hk, n),
                opts,
                splits,
            )
            .unwrap();
            let f = |x: &[f32]| x.iter().map(|&y| y as f64).collect::<Vec<f64>>();
            let ours = [f(&out.o), f(&out.lse), f(out.total.as_deref().unwrap())];
            for (name, (o, i)) in ["o", "lse", "total"].iter().zip([(0, 0), (1, 1), (2, 5)]) {
                let (e_ours, e_naive) = (max_err(&ours[o], &r[i]), max_err(&t[i], &r[i]));
                assert!(
                    e_ours <= 2.0 * e_naive + 1e-5,
                    "{name} with {splits:?} parts, causal={causal}: ours {e_ours:e}, naive {e_naive:e}"
                );
            }
        }
    }
    let e = flagattention::flash_attention_split_kv(
        &tv4(&q, s, hq, m),
        &tv4(&k, s, hk, n),
        &tv4(&v, s, hk, n),
        Options::new(d),
        Some(0),
    )
    .unwrap_err();
    assert!(e.to_string().contains("splits"), "{e}");
}

/// Paged decoding: each sequence's keys scattered through the cache by a shuffled block
/// table; FlagAttention's rule against the naive formula over the sequence's keys gathered
/// in order, sequences of different lengths (one ending inside a block, one empty), GQA.
#[test]
fn paged_attention_matches_the_reference() {
    let (hq, hk, d, bs, max_blocks) = (4, 2, 64, 16, 40);
    let lens = [37usize, 640, 0, 129];
    let b = lens.len();
    let blocks = b * max_blocks;
    let mut rng = Rng::new(57);
    let query = normal(&mut rng, b * hq * d, 2.0);
    let kc = normal(&mut rng, blocks * hk * bs * d, 2.0);
    let vc = normal(&mut rng, blocks * hk * bs * d, 1.0);
    // A random permutation of the cache's blocks, dealt out to the sequences.
    let mut order: Vec<i32> = (0..blocks as i32).collect();
    for i in (1..blocks).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let lens_i32: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let scale = 1.0 / (d as f64).sqrt();
    let cache = [blocks, hk, bs, d];
    let out = flagattention::paged_attention(
        &TensorView::from_slice(&query, &[b, hq, d]).unwrap(),
        &TensorView::from_slice(&kc, &cache).unwrap(),
        &TensorView::from_slice(&vc, &cache).unwrap(),
        &TensorView::from_slice(&lens_i32, &[b]).unwrap(),
        &TensorView::from_slice(&order, &[b, max_blocks]).unwrap(),
        scale as f32,
    )
    .unwrap();
    for (s, &n) in lens.iter().enumerate() {
        let mut k = vec![0f32; hk * n * d];
        let mut v = vec![0f32; hk * n * d];
        for kh in 0..hk {
            for t in 0..n {
                let blk = order[s * max_blocks + t / bs] as usize;
                let src = ((blk * hk + kh) * bs + t % bs) * d;
                let dst = (kh * n + t) * d;
                k[dst..dst + d].copy_from_slice(&kc[src..src + d]);
                v[dst..dst + d].copy_from_slice(&vc[src..src + d]);
            }
        }
        let shape = Shape {
            b: 1,
            hq,
            hk,
            m: 1,
            n,
            d,
        };
        let q = &query[s * hq * d..(s + 1) * hq * d];
        let zeros = vec![0f32; hq * d];
        let r = naive::<f64>(shape, q, &k, &v, &zeros, false, scale, None);
        let t = naive::<f32>(shape, q, &k, &v, &zeros, false, scale, None);
        let ours: Vec<f64> = out[s * hq * d..(s + 1) * hq * d]
            .iter()
            .map(|&x| x as f64)
            .collect();
        let (e_ours, e_naive) = (max_err(&ours, &r[0]), max_err(&t[0], &r[0]));
        assert!(
            e_ours <= 2.0 * e_naive + 1e-5,
            "sequence {s} ({n} keys): ours {e_ours:e}, naive {e_naive:e}"
        );
    }
    // A table entry outside the cache is refused, naming the table.
    let mut bad = order.clone();
    bad[max_blocks + 3] = blocks as i32;
    let e = flagattention::paged_attention(
        &TensorView::from_slice(&query, &[b, hq, d]).unwrap(),
        &TensorView::from_slice(&kc, &cache).unwrap(),
        &TensorView::from_slice(&vc, &cache).unwrap(),
        &TensorView::from_slice(&lens_i32, &[b]).unwrap(),
        &TensorView::from_slice(&bad, &[b, max_blocks]).unwrap(),
        scale as f32,
    )
    .unwrap_err();
    assert!(e.to_string().contains("block_tables"), "{e}");
    // A cache of zero-sized blocks, and no query heads, are refused by name.
    let e = flagattention::paged_attention(
        &TensorView::from_slice(&query, &[b, hq, d]).unwrap(),
        &TensorView::from_slice(&kc[..0], &[blocks, hk, 0, d]).unwrap(),
        &TensorView::from_slice(&vc[..0], &[blocks, hk, 0, d]).unwrap(),
        &TensorView::from_slice(&[0i32; 4], &[b]).unwrap(),
        &TensorView::from_slice(&order, &[b, max_blocks]).unwrap(),
        scale as f32,
    )
    .unwrap_err();
    assert!(e.to_string().contains("key_cache"), "{e}");
    let e = flagattention::paged_attention(
        &TensorView::from_slice(&query[..0], &[b, 0, d]).unwrap(),
        &TensorView::from_slice(&kc, &cache).unwrap(),
        &TensorView::from_slice(&vc, &cache).unwrap(),
        &TensorView::from_slice(&lens_i32, &[b]).unwrap(),
        &TensorView::from_slice(&order, &[b, max_blocks]).unwrap(),
        scale as f32,
    )
    .unwrap_err();
    assert!(
        matches!(e, flagattention::Error::Heads { hq: 0, .. }),
        "{e}"
    );
}

/// Empty problems (no batch, no query rows, no keys) give empty or zero outputs, never a
/// panic; no query heads is an error.
#[test]
fn empty_problems_are_answered_and_no_heads_refused() {
    let data = vec![0.5f32; 4 * 32];
    for (b, m, n) in [(0, 4, 4), (1, 0, 4), (1, 4, 0), (0, 0, 0)] {
        let q = TensorView::from_slice(&data[..b * 2 * m * 16], &[b, 2, m, 16]).unwrap();
        let k = TensorView::from_slice(&data[..b * 2 * n * 16], &[b, 2, n, 16]).unwrap();
        let opts = Options {
            causal: true,
            total_attention: true,
            dropout: Some(Dropout { p: 0.5, seed: 1 }),
            ..Options::new(16)
        };
        let fwd = flash_attention(&q, &k, &k, opts).unwrap();
        assert!(fwd.o.iter().all(|&x| x == 0.0) && fwd.o.len() == b * 2 * m * 16);
        assert!(fwd.lse.iter().all(|&x| x == f32::NEG_INFINITY));
        assert_eq!(fwd.total.as_ref().map(Vec::len), Some(b * 2 * n));
        let g = flash_attention_backward(&q, &k, &k, &fwd, &q, opts).unwrap();
        assert!(g.dq.iter().chain(&g.dk).chain(&g.dv).all(|&x| x == 0.0));
        let split = flagattention::flash_attention_split_kv(&q, &k, &k, opts, Some(3)).unwrap();
        assert_eq!(split.o, fwd.o);
        let p = flagattention::piecewise_attention(&q, &k, &q, &k, &k, 2, opts).unwrap();
        let pg = flagattention::piecewise_attention_backward(&q, &k, &q, &k, &k, &p, &q, 2, opts)
            .unwrap();
        assert!(pg.dq1.iter().chain(&pg.dk2).all(|&x| x == 0.0));
    }
    let none = TensorView::from_slice(&data[..0], &[1, 0, 4, 16]).unwrap();
    let k = TensorView::from_slice(&data[..64], &[1, 1, 4, 16]).unwrap();
    let e = flash_attention(&none, &k, &k, Options::new(16)).unwrap_err();
    assert!(
        matches!(e, flagattention::Error::Heads { hq: 0, hk: 1 }),
        "{e}"
    );
    // Zero strides let a tiny buffer claim a huge shape: refused, not allocated.
    let huge = TensorView::new(&data[..16], &[1, 1, 1 << 60, 16], &[0, 0, 0, 1]).unwrap();
    let e = flash_attention(&huge, &huge, &huge, Options::new(16)).unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
}

/// Piecewise attention with a threshold no distance reaches is attention over (q1, k1);
/// with one every distance reaches, over (q2, k2) — thresholds at the ends of i64 included,
/// causal, dropout and GQA on; the unused pair's gradients are zero.
#[test]
fn piecewise_with_one_side_of_the_band_is_plain_attention() {
    let s = shape(1, 4, 2, 150, 230, 32);
    let mut rng = Rng::new(91);
    let (lq, lk) = (s.b * s.hq * s.m * s.d, s.b * s.hk * s.n * s.d);
    let xs: Vec<Vec<f32>> = [lq, lk, lq, lk, lk, lq]
        .iter()
        .map(|&len| normal(&mut rng, len, 2.0))
        .collect();
    let v = |i: usize, h: usize, t: usize| tv4(&xs[i], s, h, t);
    let (q1, k1, q2, k2, vv, d_o) = (
        v(0, s.hq, s.m),
        v(1, s.hk, s.n),
        v(2, s.hq, s.m),
        v(3, s.hk, s.n),
        v(4, s.hk, s.n),
        v(5, s.hq, s.m),
    );
    let opts = Options {
        causal: true,
        dropout: Some(Dropout { p: 0.2, seed: 5 }),
        total_attention: true,
        ..Options::new(s.d)
    };
    for (threshold, near) in [
        (i64::MAX, true),
        (s.n as i64, true),
        (i64::MIN, false),
        (1 - s.m as i64, false),
    ] {
        let pw =
            flagattention::piecewise_attention(&q1, &k1, &q2, &k2, &vv, threshold, opts).unwrap();
        let g = flagattention::piecewise_attention_backward(
            &q1, &k1, &q2, &k2, &vv, &pw, &d_o, threshold, opts,
        )
        .unwrap();
        let (q, k) = if near { (&q1, &k1) } else { (&q2, &k2) };
        let plain = flash_attention(q, k, &vv, opts).unwrap();
        let pg = flash_attention_backward(q, k, &vv, &plain, &d_o, opts).unwrap();
        assert_eq!(pw.o, plain.o, "threshold {threshold}");
        assert_eq!(pw.lse, plain.lse);
        assert_eq!(pw.total, plain.total);
        let (used, unused) = match near {
            true => ((&g.dq1, &g.dk1), (&g.dq2, &g.dk2)),
            false => ((&g.dq2, &g.dk2), (&g.dq1, &g.dk1)),
        };
        assert_eq!((used.0, used.1, &g.dv), (&pg.dq, &pg.dk, &pg.dv));
        assert!(unused.0.iter().chain(unused.1).all(|&x| x == 0.0));
    }
}

/// A NaN in the inputs reaches the outputs of the rows it touches (as in the naive
/// formula), and only those.
#[test]
fn nan_inputs_propagate() {
    let s = shape(1, 1, 1, 40, 50, 16);
    let mut rng = Rng::new(3);
    let mut q = normal(&mut rng, s.m * s.d, 1.0);
    let k = normal(&mut rng, s.n * s.d, 1.0);
    q[7 * s.d + 3] = f32::NAN;
    let fwd = flash_attention(
        &tv4(&q, s, 1, s.m),
        &tv4(&k, s, 1, s.n),
        &tv4(&k, s, 1, s.n),
        Options::new(s.d),
    )
    .unwrap();
    for (i, row) in fwd.o.chunks(s.d).enumerate() {
        assert_eq!(row.iter().all(|x| x.is_nan()), i == 7, "row {i}");
        assert!(i == 7 || row.iter().all(|x| x.is_finite()), "row {i}");
    }
    let g = flash_attention_backward(
        &tv4(&q, s, 1, s.m),
        &tv4(&k, s, 1, s.n),
        &tv4(&k, s, 1, s.n),
        &fwd,
        &tv4(&q, s, 1, s.m),
        Options::new(s.d),
    )
    .unwrap();
    assert!(g.dq[7 * s.d..8 * s.d].iter().all(|x| x.is_nan()));
    assert!(g.dk.iter().any(|x| x.is_nan()));
}
