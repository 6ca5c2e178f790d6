//! An AVX-512 matrix-product kernel for the block shapes attention uses (a few dozen to a few
//! hundred on each side), reading both operands where they lie: no packing per call. A 12×32
//! register tile (24 accumulators) takes, per step of the inner dimension, two 16-lane loads of
//! B and twelve broadcasts of A, so A may have any strides (a row of the transpose costs the
//! same as a row) and B needs unit stride only within its 32-column panels. Partial tiles use
//! lane masks. The `gemm` crate only reaches AVX-512 on nightly Rust; these intrinsics are
//! stable.

use crate::matmul::{Lhs, Rhs, MR, NR};
use std::arch::x86_64::*;

/// c (m×n, row stride `ldc`) = [c +] a·b.
///
/// # Safety
/// The CPU must have AVX-512F, and every element the operands address for these sizes must
/// lie inside their buffers, and `c`'s inside `c` (the caller checks this).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: Lhs<'_>,
    b: Rhs<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    colmax: *mut f32,
) {
    let (ap, bp) = (a.data.as_ptr(), b.data.as_ptr());
    for jp in 0..n.div_ceil(NR) {
        let cols = NR.min(n - jp * NR);
        let masks = (lanes(cols.min(16)), lanes(cols.saturating_sub(16)));
        let mut i = 0;
        while i < m {
            let r = MR.min(m - i);
            // SAFETY: rows i..i + r and columns jp·NR..+cols lie inside the operands and c.
            unsafe {
                let t = Tile {
                    k,
                    a: ap.add(i / MR * a.gs),
                    a_rs: a.rs,
                    a_cs: a.cs,
                    b: bp.add(jp * b.ps),
                    ldb: b.ld,
                    c: c.add(i * ldc + jp * NR),
                    ldc,
                    masks,
                    accumulate,
                    colmax: match colmax.is_null() {
                        true => colmax,
                        false => colmax.add(jp * NR),
                    },
                };
                // Full panels load b unmasked (a masked load costs a vector-port uop, and the
                // FMAs need both vector ports); a with unit row stride is addressed by
                // constant offsets (else each row's address adds on the previous one's, a
                // chain as long as the FMAs).
                match (r, cols == NR, a.rs == 1) {
                    (12, true, true) => t.run::<12, false, true>(),
                    (12, true, false) => t.run::<12, false, false>(),
                    (12, false, true) => t.run::<12, true, true>(),
                    (12, false, false) => t.run::<12, true, false>(),
                    (11, ..) => t.run::<11, true, false>(),
                    (10, ..) => t.run::<10, true, false>(),
                    (9, ..) => t.run::<9, true, false>(),
                    (8, ..) => t.run::<8, true, false>(),
                    (7, ..) => t.run::<7, true, false>(),
                    (6, ..) => t.run::<6, true, false>(),
                    (5, ..) => t.run::<5, true, false>(),
                    (4, ..) => t.run::<4, true, false>(),
                    (3, ..) => t.run::<3, true, false>(),
                    (2, ..) => t.run::<2, true, false>(),
                    _ => t.run::<1, true, false>(),
                }
            }
            i += r;
        }
    }
}

/// The mask of the first `n` (≤ 16) lanes.
#[inline(always)]
pub(crate) fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// One register tile: R rows of a times one panel of b, into c.
struct Tile {
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    masks: (__mmask16, __mmask16),
    accumulate: bool,
    /// When not null, the tile's column maxima are merged into the `cols` values here.
    colmax: *mut f32,
}

impl Tile {
    /// # Safety
    /// As [`matmul`]'s, for R rows of a, k steps and the panel's masked columns.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const R: usize, const MASKED: bool, const UNIT: bool>(&self) {
        let (m0, m1) = self.masks;
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (mut a, mut b) = (self.a, self.b);
        for _ in 0..self.k {
            // SAFETY: one step of the inner dimension: inside both operands.
            unsafe {
                let (b0, b1) = match MASKED {
                    true => (
                        _mm512_maskz_loadu_ps(m0, b),
                        _mm512_maskz_loadu_ps(m1, b.wrapping_add(16)),
                    ),
                    false => (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16))),
                };
                for (i, row) in acc.iter_mut().enumerate() {
                    let rs = if UNIT { 1 } else { self.a_rs };
                    let ai = _mm512_set1_ps(*a.add(i * rs));
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
                // Wrapping: the step past the last one may point beyond the buffers, unread.
                a = a.wrapping_add(self.a_cs);
                b = b.wrapping_add(self.ldb);
            }
        }
        // Accumulating adds the block's sum (from zero) to c, as every kernel does: c takes
        // one rounding per call, whatever the depth.
        if self.accumulate {
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: row i's masked lanes lie inside c.
                unsafe {
                    let p = self.c.add(i * self.ldc);
                    row[0] = _mm512_add_ps(row[0], _mm512_maskz_loadu_ps(m0, p));
                    row[1] = _mm512_add_ps(row[1], _mm512_maskz_loadu_ps(m1, p.wrapping_add(16)));
                }
            }
        }
        if !self.colmax.is_null() {
            // maxps returns its second operand when either is NaN: folding every row into
            // the stored maxima passes NaN products over, as the separate maximum pass does.
            // SAFETY: the masked lanes are the tile's columns, inside `colmax`.
            unsafe {
                let p = self.colmax;
                let mut top0 = _mm512_maskz_loadu_ps(m0, p);
                let mut top1 = _mm512_maskz_loadu_ps(m1, p.wrapping_add(16));
                for row in &acc {
                    top0 = _mm512_max_ps(row[0], top0);
                    top1 = _mm512_max_ps(row[1], top1);
                }
                _mm512_mask_storeu_ps(p, m0, top0);
                _mm512_mask_storeu_ps(p.wrapping_add(16), m1, top1);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row i's masked lanes lie inside c.
            unsafe {
                let p = self.c.add(i * self.ldc);
                _mm512_mask_storeu_ps(p, m0, row[0]);
                _mm512_mask_storeu_ps(p.wrapping_add(16), m1, row[1]);
            }
        }
    }
}

/// [`crate::pack`]'s interleave with gathers: per group of `W` rows (of `d`) and column c,
/// the group's values of column c (16 rows a gather), written in order; every element of
/// `dst` is written (zero past the last row).
///
/// # Safety
/// The CPU must have AVX-512F; `dst` must hold `src.len().div_ceil(W·d)·W·d` elements and
/// `d` must be below 2³¹ / 16.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn interleave<const W: usize>(src: &[f32], dst: &mut [f32], d: usize) {
    let step = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(d as i32),
    );
    for (rows, out) in src.chunks(W * d).zip(dst.chunks_exact_mut(W * d)) {
        let h = rows.len() / d;
        for (c, col) in out.chunks_exact_mut(W).enumerate() {
            for (half, part) in col.chunks_mut(16).enumerate() {
                let first = half * 16;
                let n = h.saturating_sub(first).min(part.len());
                let (read, write) = (lanes(n), lanes(part.len()));
                // SAFETY: lane l (< n) reads row first + l (< h) at column c (< d): inside
                // `rows`; the store writes the part's lanes, zero past the group's rows.
                unsafe {
                    let base = rows.as_ptr().wrapping_add(first * d + c);
                    let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), read, step, base);
                    _mm512_mask_storeu_ps(part.as_mut_ptr(), write, v);
                }
            }
        }
    }
}
