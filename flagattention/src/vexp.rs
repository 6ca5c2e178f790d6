//! e^x over a slice, vectorised: 2^n · p(r) with n = round(x·log2 e), r = x − n·ln 2 (|r| ≤ ½ ln 2)
//! and p a degree-5 minimax polynomial (relative error ≤ 3e-7, about 2 ulp), so softmax's
//! exponentials run a vector at a time instead of one libm call each. The portable loop is
//! compiled a second time with AVX2 enabled; AVX-512 has its own, with intrinsics; the widest
//! the CPU has is picked at run time.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5·2^23: x·log2 e plus this rounds to an integer held in the sum's low mantissa bits.
const MAGIC: f32 = 12_582_912.0;
// ln 2 split in two so n·LN2_HI is exact for the n that occur.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// e^r on |r| ≤ ½ ln 2 to within 9.2e-8 relative (1.5e-7 evaluated in f32), p(0) = 1
/// exactly: the degree-5 polynomial of least maximum relative error, by
/// `scripts/exp_poly.py` (one coefficient and one FMA fewer than the Taylor polynomial of
/// the same accuracy).
const EXP_POLY: [f32; 6] = [
    1.0,
    0.999_999_7,
    0.499_991_5,
    0.166_676_36,
    0.041_897_93,
    0.008_290_315,
];

/// a·b + c, fused where the CPU has FMA (`mul_add` would call libm otherwise): for loops
/// compiled once with FMA enabled and once without.
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn exp1<const FMA: bool>(x: f32) -> f32 {
    // Outside this range e^x is below f32's normals or overflows: clamp (the result is then
    // ~1e-38, or +inf through the exponent). Comparisons rather than clamp (whose NaN rule
    // keeps the loop scalar) or max/min (which would turn a NaN into a bound): a NaN stays.
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.7 { 88.7 } else { x };
    // Round to nearest through the 1.5·2^23 trick: t's low mantissa bits hold n as an
    // integer, so 2^n comes from bit operations alone (a float→int conversion, saturating in
    // Rust, would keep the loop from vectorising).
    let t = madd::<FMA>(x, LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = madd::<FMA>(-n, LN2_LO, madd::<FMA>(-n, LN2_HI, x));
    let mut p = EXP_POLY[5];
    for &c in EXP_POLY[..5].iter().rev() {
        p = madd::<FMA>(p, r, c);
    }
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits());
    p * f32::from_bits(ni.wrapping_add(127) << 23)
}

/// Writes e^(a·x + b) over `xs` and returns their sum (sixteen lanes, so both vectorise).
#[inline(always)]
fn portable<const FMA: bool>(xs: &mut [f32], a: f32, b: f32) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = xs.chunks_exact_mut(16);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *x = exp1::<FMA>(madd::<FMA>(a, *x, b));
            *l += *x;
        }
    }
    let mut sum = 0.0;
    for x in chunks.into_remainder() {
        *x = exp1::<FMA>(madd::<FMA>(a, *x, b));
        sum += *x;
    }
    sum + lanes.iter().sum::<f32>()
}

/// The AVX-512 loops, with intrinsics: `vrndscaleps` rounds n and `vscalefps` multiplies by
/// 2^n (saturating to 0 or +∞ by itself), four instructions fewer per vector than the bit
/// tricks the portable loop needs.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{EXP_POLY, LN2_HI, LN2_LO, LOG2E};
    use crate::avx512::lanes;
    use std::arch::x86_64::*;

    /// e^x in 16 lanes; x is clamped below at −87 (far below, r = x − n·ln 2 would keep no
    /// digits, and e^−87 is already under f32's normals).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp16(x: __m512) -> __m512 {
        // maxps returns its second operand when either is NaN: a NaN stays NaN.
        let x = _mm512_max_ps(_mm512_set1_ps(-87.0), x);
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(EXP_POLY[5]);
        for &c in EXP_POLY[..5].iter().rev() {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn affine(xs: &mut [f32], a: f32, b: f32) -> f32 {
        let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
        let mut sum = _mm512_setzero_ps();
        for c in xs.chunks_mut(16) {
            let m = lanes(c.len());
            // SAFETY: the masked lanes are c's.
            unsafe {
                let x = _mm512_maskz_loadu_ps(m, c.as_ptr());
                let e = exp16(_mm512_fmadd_ps(va, x, vb));
                _mm512_mask_storeu_ps(c.as_mut_ptr(), m, e);
                sum = _mm512_mask_add_ps(sum, m, sum, e);
            }
        }
        _mm512_reduce_add_ps(sum)
    }

    /// # Safety
    /// The CPU must have AVX-512F, and `shift` and `sums` must be as long as `xs`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn shift(xs: &mut [f32], a: f32, shift: &[f32], sums: &mut [f32]) {
        let va = _mm512_set1_ps(a);
        let parts = xs
            .chunks_mut(16)
            .zip(shift.chunks(16))
            .zip(sums.chunks_mut(16));
        for ((c, b), s) in parts {
            let m = lanes(c.len());
            // SAFETY: the masked lanes are c's, b's and s's (all as long).
            unsafe {
                let x = _mm512_maskz_loadu_ps(m, c.as_ptr());
                let vb = _mm512_maskz_loadu_ps(m, b.as_ptr());
                let e = exp16(_mm512_fmsub_ps(va, x, vb));
                _mm512_mask_storeu_ps(c.as_mut_ptr(), m, e);
                let total = _mm512_add_ps(_mm512_maskz_loadu_ps(m, s.as_ptr()), e);
                _mm512_mask_storeu_ps(s.as_mut_ptr(), m, total);
            }
        }
    }
}

/// e^x a vector at a time with AVX2 intrinsics, for callers that fuse the exponential into
/// a pass of their own (bge's attention): the same result as [`exp_affine`]'s lanes.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{EXP_POLY, LN2_HI, LN2_LO, LOG2E, MAGIC};
    use std::arch::x86_64::*;

    /// e^x in 8 lanes, x clamped to [−87, 88.7] (a NaN stays NaN).
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA (safe to call from code compiled with both).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub fn exp8(x: __m256) -> __m256 {
        // maxps/minps return their second operand when either is NaN.
        let x = _mm256_min_ps(
            _mm256_set1_ps(88.7),
            _mm256_max_ps(_mm256_set1_ps(-87.0), x),
        );
        // n as the slice loop finds it (x·log2 e + 1.5·2^23, one rounding), so the two agree
        // by construction, and 2^n from t's bits.
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(MAGIC));
        let n = _mm256_sub_ps(t, _mm256_set1_ps(MAGIC));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(EXP_POLY[5]);
        for &c in EXP_POLY[..5].iter().rev() {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let bias = _mm256_set1_epi32(127i32.wrapping_sub(MAGIC.to_bits() as i32));
        let two_n = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_castps_si256(t), bias));
        _mm256_mul_ps(p, _mm256_castsi256_ps(two_n))
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(xs: &mut [f32], a: f32, b: f32) -> f32 {
    portable::<true>(xs, a, b)
}

/// Every element x replaced by e^(a·x + b) (within about 2 ulp); returns their sum.
pub fn exp_affine(xs: &mut [f32], a: f32, b: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512::affine(xs, a, b) };
        }
        if crate::cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { avx2(xs, a, b) };
        }
    }
    portable::<false>(xs, a, b)
}

#[inline(always)]
fn shift_portable<const FMA: bool>(xs: &mut [f32], a: f32, shift: &[f32], sums: &mut [f32]) {
    for ((x, &b), s) in xs.iter_mut().zip(shift).zip(sums) {
        *x = exp1::<FMA>(madd::<FMA>(a, *x, -b));
        *s += *x;
    }
}

/// [`exp_shift`] with AVX2 intrinsics: softmax's arguments are at most ~0 (the shift is the
/// column's largest scaled score), so there is no upper clamp, and r = x − n·ln 2 takes one
/// FMA: ln 2's rounding to f32 (1.9e-9) times |n| stays below the polynomial's error for
/// every term within e^−40 of the largest. Two instructions fewer per vector than the
/// slice loop: 0.34 → 0.28–0.30 ns per element on a 96 × 192 block (Zen 3), on ~5 % of a
/// D = 128 forward.
///
/// # Safety
/// The CPU must have AVX2 and FMA, and `shift` and `sums` must be as long as `xs`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn shift_avx2(xs: &mut [f32], a: f32, shift: &[f32], sums: &mut [f32]) {
    use std::arch::x86_64::*;
    let va = _mm256_set1_ps(a);
    let exp = |x: __m256| {
        // maxps returns its second operand when either is NaN: a NaN stays NaN.
        let x = _mm256_max_ps(_mm256_set1_ps(-87.0), x);
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(MAGIC));
        let n = _mm256_sub_ps(t, _mm256_set1_ps(MAGIC));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(std::f32::consts::LN_2), x);
        let mut p = _mm256_set1_ps(EXP_POLY[5]);
        for &c in EXP_POLY[..5].iter().rev() {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let bias = _mm256_set1_epi32(127i32.wrapping_sub(MAGIC.to_bits() as i32));
        let two_n = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_castps_si256(t), bias));
        _mm256_mul_ps(p, _mm256_castsi256_ps(two_n))
    };
    let len = xs.len();
    let (x, b, s) = (xs.as_mut_ptr(), shift.as_ptr(), sums.as_mut_ptr());
    let mut i = 0;
    // SAFETY (both loops): lanes i..i + 8, or the masked ones below len, lie inside all three
    // slices (equally long).
    while i + 8 <= len {
        unsafe {
            let arg = _mm256_fmsub_ps(va, _mm256_loadu_ps(x.add(i)), _mm256_loadu_ps(b.add(i)));
            let e = exp(arg);
            _mm256_storeu_ps(x.add(i), e);
            _mm256_storeu_ps(s.add(i), _mm256_add_ps(_mm256_loadu_ps(s.add(i)), e));
        }
        i += 8;
    }
    if i < len {
        let m = crate::avx2::lanes(len - i);
        unsafe {
            let arg = _mm256_fmsub_ps(
                va,
                _mm256_maskload_ps(x.add(i), m),
                _mm256_maskload_ps(b.add(i), m),
            );
            let e = exp(arg);
            _mm256_maskstore_ps(x.add(i), m, e);
            let total = _mm256_add_ps(_mm256_maskload_ps(s.add(i), m), e);
            _mm256_maskstore_ps(s.add(i), m, total);
        }
    }
}

/// Every element x_i replaced by e^(a·x_i − shift_i) and added to `sums_i` (all three the
/// same length): the column-wise softmax step, one lane per column. The arguments must be
/// at most 88 (softmax's are at most ~0, the shift being the largest): the AVX2 path does
/// not clamp above.
pub(crate) fn exp_shift(xs: &mut [f32], a: f32, shift: &[f32], sums: &mut [f32]) {
    assert!(shift.len() == xs.len() && sums.len() == xs.len());
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above); the lengths are equal
            // (asserted above).
            return unsafe { avx512::shift(xs, a, shift, sums) };
        }
        if crate::cpu::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); the lengths are equal
            // (asserted above).
            return unsafe { shift_avx2(xs, a, shift, sums) };
        }
    }
    shift_portable::<false>(xs, a, shift, sums)
}

/// A slice loop compiled three times — for AVX-512, for AVX2 with FMA, and plain — and the
/// widest the CPU has picked at run time: the crate is built for baseline x86-64, where such
/// loops would get 4-lane vectors.
macro_rules! wide {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            {
                if crate::cpu::avx512() {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if crate::cpu::avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// `acc_i = max(acc_i, x_i)`, NaNs in x passed over. Left to the baseline build and inlined:
/// a row here is a few vectors, less than a dispatched call's overhead is worth.
pub(crate) fn max_into(acc: &mut [f32], xs: &[f32]) {
    for (m, &x) in acc.iter_mut().zip(xs) {
        *m = if x > *m { x } else { *m };
    }
}

wide! {
    /// `acc_i += x_i`.
    pub(crate) fn add(acc: &mut [f32], xs: &[f32]) {
        for (a, &x) in acc.iter_mut().zip(xs) {
            *a += x;
        }
    }
}

wide! {
    /// The softmax backward's dS = P ∘ (dP − D)·scale, in place of dP.
    pub(crate) fn score_grads(dp: &mut [f32], p: &[f32], delta: f32, scale: f32) {
        for (x, &pij) in dp.iter_mut().zip(p) {
            *x = pij * (*x - delta) * scale;
        }
    }
}

/// Σ a_i·b_i in sixteen independent lanes, so it vectorises without reassociating floats.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 intrinsics' lanes give what the slice loop gives, bit for bit, over the
    /// softmax range, the clamps and a NaN.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp8_equals_the_slice_loop() {
        if !crate::cpu::avx2_fma() {
            eprintln!("skipped: no AVX2 + FMA");
            return;
        }
        let mut xs: Vec<f32> = (0..40_000).map(|i| -100.0 + i as f32 * 0.0047).collect();
        xs.extend([
            f32::NEG_INFINITY,
            -87.0,
            88.7,
            0.0,
            -0.0,
            f32::NAN,
            1e-30,
            -1e-30,
        ]);
        xs.resize(xs.len().next_multiple_of(8), 0.5);
        let mut want = xs.clone();
        // SAFETY: AVX2 and FMA checked above.
        unsafe { avx2(&mut want, 1.0, 0.0) };
        for (c, w) in xs.chunks_exact(8).zip(want.chunks_exact(8)) {
            let mut got = [0f32; 8];
            // SAFETY: AVX2 and FMA checked above; eight lanes each.
            unsafe {
                use std::arch::x86_64::*;
                let e = avx2::exp8(_mm256_loadu_ps(c.as_ptr()));
                _mm256_storeu_ps(got.as_mut_ptr(), e);
            }
            for ((g, w), x) in got.iter().zip(w).zip(c) {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "e^{x}: {g} vs {w}"
                );
            }
        }
    }

    /// The softmax step (the AVX2 path's own intrinsics where the CPU has them) over its
    /// arguments' whole range, down to where the clamp takes over, with a tail of lanes
    /// short of a vector and a NaN score.
    #[test]
    fn shift_close_to_libm_over_the_softmax_range() {
        let len = 100_003;
        let xs: Vec<f32> = (0..len).map(|i| i as f32 * 0.0009).collect();
        let shift: Vec<f32> = (0..len).map(|i| 90.0 - (i % 7) as f32).collect();
        let (mut ys, mut sums) = (xs.clone(), vec![0.5f32; len]);
        ys[17] = f32::NAN;
        exp_shift(&mut ys, 0.9, &shift, &mut sums);
        for i in 0..len {
            // The argument as the FMA rounds it.
            let arg = 0.9f32.mul_add(xs[i], -shift[i]) as f64;
            let (y, want) = (ys[i] as f64, arg.exp());
            // ln 2's rounding adds |n|·1.9e-9 to the polynomial's 1.5e-7 far down.
            let bound = if arg > -40.0 { 3e-7 } else { 4e-7 };
            match i {
                17 => assert!(ys[i].is_nan() && sums[i].is_nan()),
                _ if arg >= -87.0 => assert!((y - want).abs() <= bound * want, "e^{arg}: {y}"),
                _ => assert!(y < 1e-37, "e^{arg}: {y}"),
            }
            if i != 17 {
                assert_eq!(sums[i], 0.5 + ys[i]);
            }
        }
    }

    #[test]
    fn close_to_libm_over_the_softmax_range() {
        let mut worst = 0f64;
        let xs: Vec<f32> = (0..200_001).map(|i| -80.0 + i as f32 * 0.0004).collect();
        // The path this CPU picks, and the portable one with and without FMA.
        let runs: [fn(&mut [f32]) -> f32; 3] = [
            |y| exp_affine(y, 1.0, 0.0),
            |y| portable::<false>(y, 1.0, 0.0),
            |y| portable::<true>(y, 1.0, 0.0),
        ];
        for run in runs {
            let mut ys = xs.clone();
            let sum = run(&mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                let want = (*x as f64).exp();
                worst = worst.max(((*y as f64) - want).abs() / want);
            }
            let total: f64 = ys.iter().map(|&y| y as f64).sum();
            assert!(
                (sum as f64 - total).abs() <= 1e-5 * total,
                "{sum} vs {total}"
            );
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        let mut nan = [f32::NAN, 0.0];
        exp_affine(&mut nan, 1.0, 0.0);
        assert!(nan[0].is_nan() && nan[1] == 1.0, "a NaN stays NaN: {nan:?}");
        let mut edge = [0.0f32, -1e30, 1.0];
        exp_affine(&mut edge, 1.0, 0.0);
        assert_eq!(edge[0], 1.0);
        assert!(edge[1] >= 0.0 && edge[1] < 1e-37);
        assert!((edge[2] - std::f32::consts::E).abs() < 1e-6);
        let mut affine = [2.0f32];
        exp_affine(&mut affine, 0.5, -1.0);
        assert_eq!(affine[0], 1.0);
        let (mut xs, mut sums) = (vec![1.0f32; 19], vec![1.0f32; 19]);
        let shift: Vec<f32> = (0..19).map(|i| i as f32).collect();
        exp_shift(&mut xs, 2.0, &shift, &mut sums);
        for (i, (x, s)) in xs.iter().zip(&sums).enumerate() {
            let want = (2.0 - i as f64).exp();
            assert!(((*x as f64) - want).abs() <= 3e-7 * want, "{i}: {x}");
            assert_eq!(*s, 1.0 + x);
        }
        let mut acc = vec![0.0f32, 5.0, f32::NEG_INFINITY];
        max_into(&mut acc, &[1.0, 2.0, f32::NAN]);
        assert_eq!(acc[..2], [1.0, 5.0]);
        assert_eq!(acc[2], f32::NEG_INFINITY);
        let mut acc: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let ones = vec![1.0f32; 37];
        add(&mut acc, &ones);
        add(&mut acc, &ones);
        assert!(acc.iter().enumerate().all(|(i, &x)| x == i as f32 + 2.0));
        let mut dp = vec![3.0f32; 37];
        score_grads(&mut dp, &acc, 1.0, 0.5);
        assert!(dp.iter().zip(&acc).all(|(&g, &p)| g == p));
    }
}
