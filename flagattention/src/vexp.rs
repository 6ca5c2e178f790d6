//! e^x over a slice, vectorised: 2^n · p(r) with n = round(x·log2 e), r = x − n·ln 2 (|r| ≤ ½ ln 2)
//! and p the degree-6 Taylor polynomial (relative error ≤ 3e-7, about 2 ulp), so softmax's
//! exponentials run a vector at a time instead of one libm call each. The loop is compiled a
//! second and third time with AVX-512 / AVX2 enabled and picked at run time.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so n·LN2_HI is exact for the n that occur.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

#[inline(always)]
fn exp1(x: f32) -> f32 {
    // Outside this range e^x is below f32's normals or overflows: clamp (the result is then
    // ~1e-38, or +inf through the exponent).
    // max/min rather than clamp: clamp's NaN rule keeps the loop scalar.
    #[allow(clippy::manual_clamp)]
    let x = x.max(-87.0).min(88.7);
    // Round to nearest through the 1.5·2^23 trick: t's low mantissa bits hold n as an
    // integer, so 2^n comes from bit operations alone (a float→int conversion, saturating in
    // Rust, would keep the loop from vectorising).
    let t = x * LOG2E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let ni = t.to_bits().wrapping_sub(0x4B40_0000);
    p * f32::from_bits(ni.wrapping_add(127) << 23)
}

#[inline(always)]
fn portable(xs: &mut [f32]) {
    for x in xs {
        *x = exp1(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(xs: &mut [f32]) {
    portable(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(xs: &mut [f32]) {
    portable(xs)
}

/// Every element replaced by its exponential.
pub(crate) fn exp_inplace(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512(xs) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { avx2(xs) };
        }
    }
    portable(xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_libm_over_the_softmax_range() {
        let mut worst = 0f64;
        let xs: Vec<f32> = (0..200_001).map(|i| -80.0 + i as f32 * 0.0004).collect();
        let mut ys = xs.clone();
        exp_inplace(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            let want = (*x as f64).exp();
            worst = worst.max(((*y as f64) - want).abs() / want);
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        let mut edge = [0.0f32, -1e30, 1.0];
        exp_inplace(&mut edge);
        assert_eq!(edge[0], 1.0);
        assert!(edge[1] >= 0.0 && edge[1] < 1e-37);
        assert!((edge[2] - std::f32::consts::E).abs() < 1e-6);
    }
}
