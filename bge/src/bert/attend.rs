//! Self-attention of one text on one thread from the fused q/k/v rows: what the CPU plan
//! runs for texts of 64 tokens and more (`cpu.rs`, one text at a time, every key visible), in
//! place of libtorch's flash kernel, whose small products at BERT's head dims (32 for MiniLM
//! and bge-small) ran at 46–57 GFLOP/s on one Zen 3 core at 128–256 tokens, this at 59–66
//! (12 heads, same rows, same run; a throwaway probe, not kept). What stays measurable is
//! `bge bench`: a disfl_qa encode of MiniLM ran 1–2 % faster with it.
//!
//! Per head: keys and values packed in panels of sixteen; per block of six query rows, the
//! scores against every key through a 6×16 register tile (the block's 6 × keys stay in L1),
//! each row's softmax in place (the largest score subtracted before scaling), then the
//! block's output as probabilities × values through the same tile.

/// Query rows per register tile.
const MR: usize = 6;
/// Keys (score products) or output columns (value products) per register tile.
const NR: usize = 16;

/// Whether [`attend`] runs here: AVX2 and FMA, as the fused passes find them.
pub(crate) fn available() -> bool {
    crate::fused::width() >= 1
}

/// Attention of one text: `y` holds its rows (n, 3·heads·d) of q | k | v (heads of d
/// columns each), `out` receives (n, heads·d); every query sees every key, scores scaled by
/// 1/√d. `d` must be a multiple of 16 and the CPU [`available`].
pub(crate) fn attend(y: &[f32], n: usize, heads: usize, d: usize, out: &mut [f32]) {
    let h = heads * d;
    assert!(
        available() && d.is_multiple_of(NR) && y.len() == n * 3 * h && out.len() == n * h,
        "attend: shapes or CPU"
    );
    if n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 and FMA are present and the shapes are as `heads` says (both checked).
    unsafe {
        avx2::attend(y, n, heads, d, out)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// c[i][0..16] = Σ_kk a[i·lda + kk] · b[kk·ldb + 0..16] for the tile's six rows.
    ///
    /// # Safety
    /// AVX2 and FMA; a, b and c addressable over those ranges.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile(
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for kk in 0..k {
            // SAFETY: the caller's ranges.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(kk * ldb));
                let b1 = _mm256_loadu_ps(b.add(kk * ldb + 8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*a.add(i * lda + kk));
                    row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(x, b1, row[1]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: the caller's ranges.
            unsafe {
                _mm256_storeu_ps(c.add(i * ldc), row[0]);
                _mm256_storeu_ps(c.add(i * ldc + 8), row[1]);
            }
        }
    }

    /// The largest of `xs` (a multiple of 8 long, no NaN expected: a NaN score goes on
    /// through the exponentials instead).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_max(xs: &[f32]) -> f32 {
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in xs.chunks_exact(8) {
            // SAFETY: eight values.
            m = _mm256_max_ps(m, unsafe { _mm256_loadu_ps(c.as_ptr()) });
        }
        let mut lanes = [0f32; 8];
        // SAFETY: eight lanes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
        lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }

    /// Every x of `xs` (a multiple of 8 long) replaced by e^((x − top)·scale); returns their
    /// sum. x − top first: exact near the top, where e^(a·x + b) with b = −a·top would carry
    /// b's rounding into every probability.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn softmax_terms(xs: &mut [f32], top: f32, scale: f32) -> f32 {
        let (top, scale) = (_mm256_set1_ps(top), _mm256_set1_ps(scale));
        let mut sum = _mm256_setzero_ps();
        for c in xs.chunks_exact_mut(8) {
            // SAFETY: eight values.
            unsafe {
                let x = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), top), scale);
                let e = flagattention::vexp_avx2::exp8(x);
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                sum = _mm256_add_ps(sum, e);
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: eight lanes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }

    /// See [`super::attend`].
    ///
    /// # Safety
    /// AVX2 and FMA; `y` (n, 3·heads·d), `out` (n, heads·d), d a multiple of 16, n > 0.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attend(y: &[f32], n: usize, heads: usize, d: usize, out: &mut [f32]) {
        let (h, ld) = (heads * d, 3 * heads * d);
        let np = n.next_multiple_of(NR);
        let scale = 1.0 / (d as f32).sqrt();
        // Keys in panels of sixteen, each (d, 16): the score tile's right operand; keys past
        // n are zeros.
        let mut kp = vec![0f32; np * d];
        // Values in panels of sixteen columns, each (n, 16): read in place, rows 4.6 KB
        // apart (MiniLM) would fall into a few of L1's sets and be fetched again per block.
        let mut vp = vec![0f32; n * d];
        // A block's scores (six rows of np), its last rows' queries when fewer than six are
        // left (zeros past n), and its unnormalised output.
        let mut s = vec![0f32; MR * np];
        let mut q_tail = vec![0f32; MR * d];
        let mut o = vec![0f32; MR * d];
        let mut sums = [0f32; MR];
        for hd in 0..heads {
            let (qc, kc, vc) = (hd * d, h + hd * d, 2 * h + hd * d);
            for (j, row) in y.chunks_exact(ld).enumerate() {
                let panel = &mut kp[(j / NR) * NR * d..][..NR * d];
                for (kk, &x) in row[kc..kc + d].iter().enumerate() {
                    panel[kk * NR + j % NR] = x;
                }
                for (c, x) in row[vc..vc + d].chunks_exact(NR).enumerate() {
                    vp[c * n * NR + j * NR..][..NR].copy_from_slice(x);
                }
            }
            for r0 in (0..n).step_by(MR) {
                let rows = MR.min(n - r0);
                let (qa, lda) = match rows {
                    MR => (y[r0 * ld + qc..].as_ptr(), ld),
                    _ => {
                        q_tail.fill(0.0);
                        for i in 0..rows {
                            let at = (r0 + i) * ld + qc;
                            q_tail[i * d..(i + 1) * d].copy_from_slice(&y[at..at + d]);
                        }
                        (q_tail.as_ptr(), d)
                    }
                };
                for p in 0..np / NR {
                    // SAFETY: six query rows of d (from y or q_tail), panel p of kp (d × 16),
                    // columns p·16.. of s's six rows.
                    unsafe {
                        tile(
                            d,
                            qa,
                            lda,
                            kp[p * NR * d..].as_ptr(),
                            NR,
                            s[p * NR..].as_mut_ptr(),
                            np,
                        )
                    };
                }
                for (i, row) in s.chunks_exact_mut(np).take(rows).enumerate() {
                    // Padding keys: e^(−∞) is (clamped to) ~1e-38, and the value product
                    // stops at n.
                    row[n..].fill(f32::NEG_INFINITY);
                    // SAFETY: np is a multiple of 8.
                    let top = unsafe { row_max(row) };
                    // SAFETY: as above.
                    sums[i] = unsafe { softmax_terms(row, top, scale) };
                }
                for c0 in (0..d).step_by(NR) {
                    // SAFETY: six rows of s over n keys; the value panel of columns c0..
                    // (n × 16); six rows of o.
                    unsafe {
                        tile(
                            n,
                            s.as_ptr(),
                            np,
                            vp[c0 * n..].as_ptr(),
                            NR,
                            o[c0..].as_mut_ptr(),
                            d,
                        )
                    };
                }
                for i in 0..rows {
                    let inv = 1.0 / sums[i];
                    let dst = &mut out[(r0 + i) * h + qc..][..d];
                    dst.iter_mut()
                        .zip(&o[i * d..])
                        .for_each(|(t, &x)| *t = x * inv);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Softmax(q·kᵀ/√d)·v per head in f64.
    fn reference(y: &[f32], n: usize, heads: usize, d: usize) -> Vec<f64> {
        let (h, ld) = (heads * d, 3 * heads * d);
        let at = |t: usize, c: usize| y[t * ld + c] as f64;
        let mut out = vec![0f64; n * h];
        for hd in 0..heads {
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|c| at(i, hd * d + c) * at(j, h + hd * d + c))
                            .sum();
                        dot / (d as f64).sqrt()
                    })
                    .collect();
                let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = s.iter().map(|x| (x - top).exp()).sum();
                for c in 0..d {
                    out[i * h + hd * d + c] = (0..n)
                        .map(|j| (s[j] - top).exp() / sum * at(j, 2 * h + hd * d + c))
                        .sum();
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_formula_in_f64() {
        if !available() {
            eprintln!("skipped: no AVX2 + FMA");
            return;
        }
        let mut rng = flagcore::rng::Rng::new(5);
        // Rows past the last full block of six and keys past the last panel of sixteen; head
        // dims of MiniLM / bge-small (32) and of the base and large models (64).
        for (n, heads, d) in [
            (1, 2, 16),
            (5, 1, 32),
            (64, 12, 32),
            (77, 3, 64),
            (250, 2, 32),
        ] {
            let y: Vec<f32> = (0..n * 3 * heads * d)
                .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32 * 3.0)
                .collect();
            let mut out = vec![f32::NAN; n * heads * d];
            attend(&y, n, heads, d, &mut out);
            let want = reference(&y, n, heads, d);
            let err = |got: &[f32]| {
                got.iter()
                    .zip(&want)
                    .map(|(&a, &b)| (a as f64 - b).abs())
                    .fold(0.0, f64::max)
            };
            // FlagAttention's rule: within twice libtorch's own f32 error (its SDPA on the
            // same rows), plus f32's resolution of outputs up to 3 (FlagAttention adds 1e-5).
            let (ni, hi, di) = (n as i64, heads as i64, d as i64);
            let t = tch::Tensor::from_slice(&y).view([1, ni, 3, hi, di]);
            let qkv: Vec<tch::Tensor> = (0..3).map(|i| t.select(2, i).transpose(1, 2)).collect();
            let sdpa = tch::Tensor::scaled_dot_product_attention(
                &qkv[0],
                &qkv[1],
                &qkv[2],
                None::<&tch::Tensor>,
                0.0,
                false,
                None,
                false,
            )
            .transpose(1, 2)
            .contiguous()
            .view([-1]);
            let bound = 2.0 * err(&Vec::<f32>::try_from(sdpa).unwrap()) + 1e-6;
            let err = err(&out);
            assert!(
                err <= bound,
                "n {n}, {heads} heads of {d}: max error {err}, bound {bound}"
            );
        }
    }
}
