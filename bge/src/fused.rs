//! BERT's inference epilogues on the CPU, one pass over memory each: bias + GELU (erf) after
//! the feed-forward's first product, bias + residual + LayerNorm after the attention output
//! and after the feed-forward's second product. Through libtorch these are four passes or
//! more (addmm first copies the broadcast bias into its output, then GELU, the residual add
//! and LayerNorm each read and write the whole activation); at MiniLM's sizes those passes
//! take about a fifth of an f32 forward (sentence-transformers' profile on disfl_qa: 0.43 s
//! of bias copies, 0.51 s GELU, 0.24 s add and LayerNorm of 7.1 s).
//!
//! f32 and bf16 tensors (bf16 computed in f32, rounded once to nearest-even on the way out).
//! The passes are single-threaded. Several batches run on workers (`workers.rs`), one per core
//! with libtorch on one thread each, so one thread is all a pass has; a single batch runs them
//! on the calling thread, the rest of its forward on libtorch's threads. A second thread pool
//! beside libtorch's spinning OpenMP threads only competes for the cores (measured: 10 %
//! slower than not fusing at all).

use flagattention::madd;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use tch::{Kind, Tensor};

/// How the passes store their results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// f32 tensors.
    F32,
    /// bf16 tensors.
    Bf16,
    /// f32 tensors holding bf16 values (each result rounded to bf16): a bf16 model run where
    /// the CPU has no bf16 arithmetic, so its products go through f32 ones at f32's rate.
    Bf16InF32,
}

impl Storage {
    /// The tensors' kind.
    pub fn kind(self) -> Kind {
        match self {
            Storage::F32 | Storage::Bf16InF32 => Kind::Float,
            Storage::Bf16 => Kind::BFloat16,
        }
    }
}

/// Element storage: f32, or bf16 as its bits.
trait Elem: Copy + Send + Sync {
    fn load(self) -> f32;
    fn store(x: f32) -> Self;
    /// The first lanes of `m` loaded from `p` as f32 (the others 0).
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and VL; the masked lanes must lie inside one slice.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self, m: __mmask16) -> __m512;
    /// The lanes of `m` stored to `p` (rounded as [`Elem::store`] does).
    ///
    /// # Safety
    /// As [`Elem::load16`].
    #[cfg(target_arch = "x86_64")]
    unsafe fn store16(p: *mut Self, m: __mmask16, v: __m512);
}

impl Elem for f32 {
    #[inline(always)]
    fn load(self) -> f32 {
        self
    }
    #[inline(always)]
    fn store(x: f32) -> Self {
        x
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load16(p: *const Self, m: __mmask16) -> __m512 {
        // SAFETY: the caller's promise.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store16(p: *mut Self, m: __mmask16, v: __m512) {
        // SAFETY: the caller's promise.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
}

impl Elem for u16 {
    #[inline(always)]
    fn load(self) -> f32 {
        f32::from_bits((self as u32) << 16)
    }
    #[inline(always)]
    fn store(x: f32) -> Self {
        let b = x.to_bits();
        // Round to nearest, ties to even; a NaN stays a (quiet) NaN.
        let rounded = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
        if x.is_nan() {
            ((b >> 16) | 0x40) as u16
        } else {
            rounded
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load16(p: *const Self, m: __mmask16) -> __m512 {
        // SAFETY: the caller's promise.
        let h = unsafe { _mm256_maskz_loadu_epi16(m, p as *const i16) };
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store16(p: *mut Self, m: __mmask16, v: __m512) {
        let h = bf16_bits512(v);
        // SAFETY: the caller's promise.
        unsafe { _mm256_mask_storeu_epi16(p as *mut i16, m, _mm512_cvtepi32_epi16(h)) }
    }
}

/// Each lane of `v` rounded to bf16 as [`Elem::store`] for u16 does, its bits in the low half
/// of the lane.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn bf16_bits512(v: __m512) -> __m512i {
    // To nearest, ties to even; NaNs stay quiet NaNs.
    let b = _mm512_castps_si512(v);
    let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
    let up = _mm512_add_epi32(b, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    let quiet = _mm512_or_si512(b, _mm512_set1_epi32(0x40 << 16));
    _mm512_srli_epi32::<16>(_mm512_mask_blend_epi32(nan, up, quiet))
}

/// A bf16 value held in f32 storage: what a bf16 model's activations are where the CPU has no
/// bf16 arithmetic (see [`Storage::Bf16InF32`]).
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Bf16InF32(f32);

impl Elem for Bf16InF32 {
    #[inline(always)]
    fn load(self) -> f32 {
        self.0
    }
    #[inline(always)]
    fn store(x: f32) -> Self {
        Bf16InF32(<u16 as Elem>::store(x).load())
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load16(p: *const Self, m: __mmask16) -> __m512 {
        // SAFETY: the caller's promise.
        unsafe { _mm512_maskz_loadu_ps(m, p as *const f32) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn store16(p: *mut Self, m: __mmask16, v: __m512) {
        let h = _mm512_slli_epi32::<16>(bf16_bits512(v));
        // SAFETY: the caller's promise.
        unsafe { _mm512_mask_storeu_ps(p as *mut f32, m, _mm512_castsi512_ps(h)) }
    }
}

/// erfc(z) = t·exp(−z² + P(t)) with t = 1/(1 + z/2), z ≥ 0: the Chebyshev fit of Numerical
/// Recipes (`erfcc`, fractional error below 1.2e-7 everywhere), coefficients of P from t⁰ up.
const ERFC_POLY: [f32; 10] = [
    -1.265_512_2,
    1.000_023_7,
    0.374_091_96,
    0.096_784_18,
    -0.186_288_06,
    0.278_868_07,
    -1.135_204,
    1.488_515_9,
    -0.822_152_23,
    0.170_872_77,
];

/// Rows of `y` (n, cols), each given x = y + bias, replaced by GELU(x) = x·Φ(x).
#[inline(always)]
fn gelu_rows<E: Elem, const FMA: bool>(y: &mut [E], bias: &[f32]) {
    let cols = bias.len();
    let (mut x, mut t, mut e) = (vec![0f32; cols], vec![0f32; cols], vec![0f32; cols]);
    for row in y.chunks_exact_mut(cols) {
        for j in 0..cols {
            let v = row[j].load() + bias[j];
            let a = v.abs() * std::f32::consts::FRAC_1_SQRT_2;
            let tj = 1.0 / (1.0 + 0.5 * a);
            let mut p = ERFC_POLY[9];
            for &c in ERFC_POLY[..9].iter().rev() {
                p = madd::<FMA>(p, tj, c);
            }
            x[j] = v;
            t[j] = tj;
            e[j] = madd::<FMA>(-a, a, p);
        }
        flagattention::exp_affine(&mut e, 1.0, 0.0);
        for j in 0..cols {
            // Φ(v) = 1 − erfc(|v|/√2)/2 for v ≥ 0, erfc(|v|/√2)/2 below.
            let half_erfc = 0.5 * t[j] * e[j];
            let v = x[j];
            row[j] = E::store(if v >= 0.0 {
                v - v * half_erfc
            } else {
                v * half_erfc
            });
        }
    }
}

/// Rows of `y` (n, cols), each given z = y + bias + residual, replaced by
/// LayerNorm(z)·w + b (mean and biased variance over the row, as BERT's LayerNorm).
#[inline(always)]
fn norm_rows<E: Elem>(y: &mut [E], res: &[E], p: &NormParams, eps: f32) {
    let cols = p.bias.len();
    let mut z = vec![0f32; cols];
    for (row, r) in y.chunks_exact_mut(cols).zip(res.chunks_exact(cols)) {
        for j in 0..cols {
            z[j] = row[j].load() + p.bias[j] + r[j].load();
        }
        let mean = lane_sum(&z, |v| v) / cols as f32;
        let var = lane_sum(&z, |v| (v - mean) * (v - mean)) / cols as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for j in 0..cols {
            row[j] = E::store((z[j] - mean) * inv * p.w[j] + p.b[j]);
        }
    }
}

/// Σ f(x) in sixteen running lanes (so the loop vectorises without reassociation licence).
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += f(x);
        }
    }
    chunks.remainder().iter().map(|&x| f(x)).sum::<f32>() + lanes.iter().sum::<f32>()
}

/// What one fused LayerNorm adds and scales by, in f32: the bias added before it, its weight
/// and bias. Built once per layer call, not per block of rows.
pub struct NormParams {
    bias: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl NormParams {
    pub fn new(bias: &Tensor, w: &Tensor, b: &Tensor) -> Self {
        NormParams {
            bias: floats(bias),
            w: floats(w),
            b: floats(b),
        }
    }
}

/// The passes compiled again with wider vectors enabled (the compiler vectorises the same
/// loops to 256 or 512 bits).
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Elem, NormParams};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu<E: Elem>(y: &mut [E], bias: &[f32]) {
        super::gelu_rows::<E, true>(y, bias)
    }

    /// # Safety
    /// The CPU must have AVX-512F and FMA.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub unsafe fn gelu512<E: Elem>(y: &mut [E], bias: &[f32]) {
        super::gelu_rows::<E, true>(y, bias)
    }

    /// [`super::lead_rows`] a vector at a time (the scalar loop's bf16 rounding does not
    /// vectorise: 3 % of a bf16 encode).
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn lead512<E: Elem>(y: &mut [E], bias: &[f32], cols: usize) {
        for row in y.chunks_exact_mut(cols) {
            for j in (0..bias.len()).step_by(16) {
                let m = ((1u32 << (bias.len() - j).min(16)) - 1) as __mmask16;
                // SAFETY: the masked lanes are bias's, and row's (bias.len() ≤ cols).
                unsafe {
                    let p = row.as_mut_ptr().add(j);
                    let b = _mm512_maskz_loadu_ps(m, bias.as_ptr().add(j));
                    E::store16(p, m, _mm512_add_ps(E::load16(p, m), b));
                }
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn lead<E: Elem>(y: &mut [E], bias: &[f32], cols: usize) {
        super::lead_rows(y, bias, cols)
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn norm<E: Elem>(y: &mut [E], res: &[E], p: &NormParams, eps: f32) {
        super::norm_rows(y, res, p, eps)
    }

    /// # Safety
    /// The CPU must have AVX-512F and FMA.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub unsafe fn norm512<E: Elem>(y: &mut [E], res: &[E], p: &NormParams, eps: f32) {
        super::norm_rows(y, res, p, eps)
    }
}

/// The widest vectors the CPU has for the passes: 2 for AVX-512 (with FMA), 1 for AVX2 with
/// FMA, 0 otherwise.
pub(crate) fn width() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            return if has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                2
            } else {
                1
            };
        }
    }
    0
}

fn gelu_dispatch<E: Elem>(y: &mut [E], bias: &[f32]) {
    match width() {
        // SAFETY: the CPU has the features each variant needs (`width`).
        #[cfg(target_arch = "x86_64")]
        2 => unsafe { simd::gelu512(y, bias) },
        #[cfg(target_arch = "x86_64")]
        1 => unsafe { simd::gelu(y, bias) },
        _ => gelu_rows::<E, false>(y, bias),
    }
}

fn norm_dispatch<E: Elem>(y: &mut [E], res: &[E], p: &NormParams, eps: f32) {
    match width() {
        // SAFETY: the CPU has the features each variant needs (`width`).
        #[cfg(target_arch = "x86_64")]
        2 => unsafe { simd::norm512(y, res, p, eps) },
        #[cfg(target_arch = "x86_64")]
        1 => unsafe { simd::norm(y, res, p, eps) },
        _ => norm_rows(y, res, p, eps),
    }
}

/// A (CPU) tensor's elements as f32.
pub fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().flatten(0, -1))
        .expect("a CPU tensor converts to floats")
}

/// The elements of a contiguous CPU tensor of element type `E`.
///
/// # Safety
/// `E` must be the storage type of `t`'s kind (or bytes, `u8`), and no other reference to its
/// data may be alive.
pub(crate) unsafe fn elems_mut<E>(t: &mut Tensor) -> &mut [E] {
    assert!(t.device() == tch::Device::Cpu && t.is_contiguous());
    let n = t.numel() * t.kind().elt_size_in_bytes() / std::mem::size_of::<E>();
    if n == 0 {
        // An empty tensor's data pointer may be null, which no slice may hold.
        return &mut [];
    }
    // SAFETY: contiguous CPU storage of n elements of E (the caller's promise).
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut E, n) }
}

/// # Safety
/// As [`elems_mut`], with no mutable reference to the data alive.
pub(crate) unsafe fn elems<E>(t: &Tensor) -> &[E] {
    assert!(t.device() == tch::Device::Cpu && t.is_contiguous());
    let n = t.numel() * t.kind().elt_size_in_bytes() / std::mem::size_of::<E>();
    if n == 0 {
        return &[];
    }
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const E, n) }
}

fn gelu_typed<E: Elem>(y: &mut Tensor, bias: &[f32]) {
    // SAFETY: the caller checked y's kind holds E; y is owned here.
    gelu_dispatch(unsafe { elems_mut::<E>(y) }, bias);
}

/// GELU(y + bias) in place, for y (…, cols) contiguous on the CPU in `s`'s kind and bias
/// (cols).
pub fn bias_gelu_(y: &mut Tensor, bias: &[f32], s: Storage) {
    assert!(y.size().last() == Some(&(bias.len() as i64)) && y.kind() == s.kind());
    match s {
        Storage::F32 => gelu_typed::<f32>(y, bias),
        Storage::Bf16 => gelu_typed::<u16>(y, bias),
        Storage::Bf16InF32 => gelu_typed::<Bf16InF32>(y, bias),
    }
}

fn lead_rows<E: Elem>(data: &mut [E], bias: &[f32], cols: usize) {
    for row in data.chunks_exact_mut(cols) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = E::store(v.load() + b);
        }
    }
}

fn lead_typed<E: Elem>(y: &mut Tensor, bias: &[f32], cols: usize) {
    // SAFETY: the caller checked y's kind holds E; y is owned here.
    let data = unsafe { elems_mut::<E>(y) };
    match width() {
        // SAFETY: the CPU has AVX-512 (`width`).
        #[cfg(target_arch = "x86_64")]
        2 => unsafe { simd::lead512(data, bias, cols) },
        // SAFETY: the CPU has AVX2 and FMA (`width`).
        #[cfg(target_arch = "x86_64")]
        1 => unsafe { simd::lead(data, bias, cols) },
        _ => lead_rows(data, bias, cols),
    }
}

/// `bias` (n) added to the first n columns of every row of y (…, cols) in place, y contiguous
/// on the CPU in `s`'s kind: the query's part of a fused q/k/v product. (libtorch's add on
/// that strided view was 3 % of a bf16 encode.) Columns past n are left as they are: with
/// [`Storage::Bf16InF32`], pass a bias as wide as y (zeros past n) to round them too.
pub fn bias_lead_(y: &mut Tensor, bias: &[f32], s: Storage) {
    let cols = y.size().last().map_or(0, |&c| c as usize);
    assert!(bias.len() <= cols && cols > 0 && y.kind() == s.kind());
    match s {
        Storage::F32 => lead_typed::<f32>(y, bias, cols),
        Storage::Bf16 => lead_typed::<u16>(y, bias, cols),
        Storage::Bf16InF32 => lead_typed::<Bf16InF32>(y, bias, cols),
    }
}

fn norm_typed<E: Elem>(y: &mut Tensor, res: &Tensor, p: &NormParams, eps: f32) {
    // SAFETY: the caller checked both kinds hold E; y and res are distinct tensors.
    let (data, res): (&mut [E], &[E]) = unsafe { (elems_mut(y), elems(res)) };
    norm_dispatch(data, res, p, eps);
}

/// LayerNorm(y + p.bias + residual) with p's weight and bias, in place of y; y and the
/// residual (…, cols) contiguous on the CPU in `s`'s kind, distinct tensors.
pub fn bias_residual_norm_(
    y: &mut Tensor,
    residual: &Tensor,
    p: &NormParams,
    eps: f64,
    s: Storage,
) {
    assert!(y.size() == residual.size() && y.kind() == s.kind() && residual.kind() == s.kind());
    assert!(y.size().last() == Some(&(p.bias.len() as i64)));
    assert!(residual.data_ptr() != y.data_ptr());
    let eps = eps as f32;
    match s {
        Storage::F32 => norm_typed::<f32>(y, residual, p, eps),
        Storage::Bf16 => norm_typed::<u16>(y, residual, p, eps),
        Storage::Bf16InF32 => norm_typed::<Bf16InF32>(y, residual, p, eps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[])
    }

    /// Rows of random activations stored as `s` stores them, scaled so GELU sees both tails
    /// and the middle.
    fn rows(s: Storage, n: i64, cols: i64, scale: f64) -> Tensor {
        let x = Tensor::randn([n, cols], (Kind::Float, tch::Device::Cpu)) * scale;
        match s {
            Storage::F32 => x,
            Storage::Bf16 => x.to_kind(Kind::BFloat16),
            Storage::Bf16InF32 => x.to_kind(Kind::BFloat16).to_kind(Kind::Float),
        }
    }

    /// With [`Storage::Bf16InF32`], every value of `t` is a bf16 one.
    fn assert_bf16_values(t: &Tensor, s: Storage) {
        if s == Storage::Bf16InF32 {
            let round_trip = t.to_kind(Kind::BFloat16).to_kind(Kind::Float);
            assert_eq!(max_diff(t, &round_trip), 0.0, "values not bf16's");
        }
    }

    #[test]
    fn gelu_matches_libtorch() {
        tch::manual_seed(1);
        // Against f64 (libtorch's f32 GELU, x·(1 + erf(x/√2))/2, cancels in the negative tail:
        // 0 for x = −5.5 against −1.0e-7). f32: the erfc fit's 1.2e-7 and a few roundings;
        // bf16: one rounding of the result (2^-9 relative) on top. Far in the negative tail
        // the exponent's rounding (x²/2 to f32) grows the relative error, on values under 1e-6:
        // 1e-8 absolute covers it.
        for (s, rel) in [
            (Storage::F32, 1e-6),
            (Storage::Bf16, 2f64.powi(-8)),
            (Storage::Bf16InF32, 2f64.powi(-8)),
        ] {
            // 37 columns: the vector loops' remainders too.
            for cols in [1536, 37] {
                let y = rows(s, 19, cols, 4.0);
                let bias = rows(s, 1, cols, 1.0).view([cols]);
                // The same f32 sum of the rounded inputs, then GELU in f64.
                let x = y.to_kind(Kind::Float) + bias.to_kind(Kind::Float);
                let want = x.to_kind(Kind::Double).gelu("none");
                let mut got = y.copy();
                bias_gelu_(&mut got, &floats(&bias), s);
                let over = ((got.to_kind(Kind::Double) - &want).abs() - want.abs() * rel - 1e-8)
                    .max()
                    .double_value(&[]);
                assert!(
                    over <= 0.0,
                    "{s:?}, {cols} columns: GELU off by {over} over"
                );
                assert_bf16_values(&got, s);
            }
        }
    }

    #[test]
    fn lead_bias_adds_to_the_first_columns_only() {
        tch::manual_seed(3);
        for s in [Storage::F32, Storage::Bf16, Storage::Bf16InF32] {
            // 40 columns: a full vector and a remainder on every width.
            let y = rows(s, 5, 40, 1.0);
            let bias = rows(s, 1, 20, 1.0).view([20]);
            let mut got = y.copy();
            bias_lead_(&mut got, &floats(&bias), s);
            let mut want = y.copy();
            let sum = want.narrow(1, 0, 20) + &bias;
            want.narrow(1, 0, 20).copy_(&sum);
            if s == Storage::Bf16InF32 {
                // The sums rounded as a bf16 add rounds them.
                want.copy_(&want.to_kind(Kind::BFloat16).to_kind(Kind::Float));
            }
            assert_eq!(max_diff(&got, &want), 0.0, "{s:?}");
        }
    }

    #[test]
    fn residual_norm_matches_libtorch() {
        tch::manual_seed(2);
        for (s, tol) in [
            (Storage::F32, 2e-5),
            (Storage::Bf16, 1.6e-2),
            (Storage::Bf16InF32, 1.6e-2),
        ] {
            for cols in [384, 37] {
                let y = rows(s, 23, cols, 3.0);
                let res = rows(s, 23, cols, 1.0);
                let f = |t: &Tensor| t.to_kind(Kind::Float);
                let (bias, w, b) = (
                    rows(s, 1, cols, 1.0).view([cols]),
                    rows(s, 1, cols, 1.0).view([cols]) + 1.0,
                    rows(s, 1, cols, 1.0).view([cols]),
                );
                let want = (f(&y) + f(&bias) + f(&res)).layer_norm(
                    [cols],
                    Some(&f(&w)),
                    Some(&f(&b)),
                    1e-12,
                    false,
                );
                let mut got = y.copy();
                let p = NormParams::new(&bias, &w, &b);
                bias_residual_norm_(&mut got, &res, &p, 1e-12, s);
                let d = max_diff(&got, &want);
                let scale = want.abs().max().double_value(&[]);
                assert!(
                    d <= tol * scale.max(1.0),
                    "{s:?}, {cols} columns: LayerNorm off by {d}"
                );
                assert_bf16_values(&got, s);
            }
        }
    }

    /// The first 15 lanes of `xs` as a vector.
    #[cfg(target_arch = "x86_64")]
    fn v_again(xs: &[f32]) -> __m512 {
        let mut lanes = [0f32; 16];
        lanes[..15].copy_from_slice(&xs[..15]);
        // SAFETY: 16 floats; only called where AVX-512 is (`width() == 2`).
        unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 and 1 + 3·2^-8 are ties (down to even, up to even).
        let ulp = 2f32.powi(-8);
        for x in [
            1.0f32,
            1.0 + ulp,
            1.0 + 3.0 * ulp,
            -std::f32::consts::PI,
            65504.0,
            1e-40,
            f32::INFINITY,
        ] {
            let want = half::bf16::from_f32(x).to_bits();
            assert_eq!(<u16 as Elem>::store(x), want, "{x}");
            let held = <Bf16InF32 as Elem>::store(x).load();
            assert_eq!(held.to_bits(), (want as u32) << 16, "{x} held in f32");
        }
        assert!(<u16 as Elem>::store(f32::NAN).load().is_nan());
        // The vector path rounds as the scalar one, lane by lane, and loads back exactly.
        #[cfg(target_arch = "x86_64")]
        if width() == 2 {
            let xs: Vec<f32> = [1.0 + ulp, 1.0 + 3.0 * ulp, -std::f32::consts::PI, f32::NAN]
                .into_iter()
                .chain((0..9).map(|i| (i as f32 - 4.0) * 1.37e-3))
                .chain([f32::INFINITY, 1e-40])
                .collect();
            let mut out = vec![0u16; 16];
            // SAFETY: AVX-512 F/BW/VL present (`width`); 15 lanes of 15- and 16-long slices.
            let back = unsafe {
                let v = _mm512_maskz_loadu_ps(0x7FFF, xs.as_ptr());
                <u16 as Elem>::store16(out.as_mut_ptr(), 0x7FFF, v);
                <u16 as Elem>::load16(out.as_ptr(), 0x7FFF)
            };
            let mut lanes = [0f32; 16];
            // SAFETY: 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), back) };
            for (i, &x) in xs.iter().enumerate() {
                assert_eq!(out[i], <u16 as Elem>::store(x), "lane {i}: {x}");
                assert_eq!(
                    lanes[i].to_bits(),
                    (out[i] as u32) << 16,
                    "lane {i} loaded back"
                );
            }
            assert!(<u16 as Elem>::load(out[3]).is_nan() && out[15] == 0);
            let mut held = vec![Bf16InF32(0.0); 16];
            // SAFETY: as above, 15 lanes of a 16-long slice.
            unsafe { <Bf16InF32 as Elem>::store16(held.as_mut_ptr(), 0x7FFF, v_again(&xs)) };
            for (i, h) in held.iter().enumerate().take(15) {
                assert_eq!(h.0.to_bits(), (out[i] as u32) << 16, "lane {i} held in f32");
            }
        }
    }
}
