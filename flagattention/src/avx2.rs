//! The AVX2 + FMA counterpart of `avx512.rs`, for CPUs without AVX-512 (AMD before Zen 4,
//! Intel client parts): the same operand layouts (12-row groups of a, 32-column panels of b),
//! each 12×32 block taken as four 6×16 register tiles — twelve 8-lane accumulators, two loads
//! of b and six broadcasts of a per step of the inner dimension, fifteen of the sixteen ymm
//! registers. Reading the packed layouts in place keeps the `gemm` crate's per-call packing
//! off these small blocks (that fallback ran attention at 0.5–0.9× libtorch's SDPA here).
//! Partial tiles use `vmaskmov` lane masks.

use crate::matmul::{Lhs, Rhs, MR, NR};
use std::arch::x86_64::*;

/// Rows of a register tile.
const TR: usize = 6;
/// Columns of a register tile (two 8-lane vectors).
const TC: usize = 16;
const _: () = assert!(MR.is_multiple_of(TR) && NR.is_multiple_of(TC));

/// c (m×n, row stride `ldc`) = [c +] a·b, the inner dimension summed in partial sums of
/// `chunk` terms (see [`Tile::run`]), and column maxima merged into `colmax` when it is not
/// null.
///
/// # Safety
/// The CPU must have AVX2 and FMA, every element the operands address for these sizes must
/// lie inside their buffers, `c`'s inside `c`, and `colmax` (when not null) must hold n values.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    a: Lhs<'_>,
    b: Rhs<'_>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    colmax: *mut f32,
    chunk: usize,
) {
    let (ap, bp) = (a.data.as_ptr(), b.data.as_ptr());
    let mut i = 0;
    while i < m {
        let r = TR.min(m - i);
        for j0 in (0..n).step_by(TC) {
            let cols = TC.min(n - j0);
            let masks = (lanes(cols.min(8)), lanes(cols.saturating_sub(8)));
            let (jp, jj) = (j0 / NR, j0 % NR);
            // SAFETY: rows i..i + r and columns j0..j0 + cols lie inside the operands and c.
            unsafe {
                let t = Tile {
                    k,
                    chunk: chunk.max(1),
                    a: ap.add(i / MR * a.gs + i % MR * a.rs),
                    a_rs: a.rs,
                    a_cs: a.cs,
                    b: bp.add(jp * b.ps + jj),
                    ldb: b.ld,
                    c: c.add(i * ldc + j0),
                    ldc,
                    masks,
                    accumulate,
                    colmax: match colmax.is_null() {
                        true => colmax,
                        false => colmax.add(j0),
                    },
                };
                // Full tiles load b unmasked; a with unit row stride is addressed by constant
                // offsets (as in the AVX-512 kernel).
                match (r, cols == TC, a.rs == 1) {
                    (6, true, true) => t.run::<6, false, true>(),
                    (6, true, false) => t.run::<6, false, false>(),
                    (6, false, true) => t.run::<6, true, true>(),
                    (6, false, false) => t.run::<6, true, false>(),
                    (5, ..) => t.run::<5, true, false>(),
                    (4, ..) => t.run::<4, true, false>(),
                    (3, ..) => t.run::<3, true, false>(),
                    (2, ..) => t.run::<2, true, false>(),
                    _ => t.run::<1, true, false>(),
                }
            }
        }
        i += r;
    }
}

/// The `vmaskmov` mask of the first `n` (≤ 8) lanes.
#[inline(always)]
pub(crate) fn lanes(n: usize) -> __m256i {
    debug_assert!(n <= 8);
    const ONES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 − n ≤ 8, so the eight values read lie inside ONES.
    unsafe { _mm256_loadu_si256(ONES.as_ptr().add(8 - n) as *const __m256i) }
}

/// One register tile: R (≤ 6) rows of a times 16 columns of b, into c.
struct Tile {
    k: usize,
    chunk: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    masks: (__m256i, __m256i),
    accumulate: bool,
    /// When not null, the tile's column maxima are merged into the 16 values here (masked).
    colmax: *mut f32,
}

impl Tile {
    /// # Safety
    /// As [`matmul`]'s, for R rows of a, k steps and the tile's masked columns.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn run<const R: usize, const MASKED: bool, const UNIT: bool>(&self) {
        let (m0, m1) = self.masks;
        // Full tiles load and store c unmasked: `vmaskmov` stores are microcoded on AMD's
        // cores before Zen 4, several cycles each.
        // SAFETY (both): the masked lanes lie inside their buffer (all 8 when not MASKED).
        let load = |p: *const f32, m: __m256i| unsafe {
            match MASKED {
                true => _mm256_maskload_ps(p, m),
                false => _mm256_loadu_ps(p),
            }
        };
        let store = |p: *mut f32, m: __m256i, x: __m256| unsafe {
            match MASKED {
                true => _mm256_maskstore_ps(p, m, x),
                false => _mm256_storeu_ps(p, x),
            }
        };
        let (mut a, mut b) = (self.a, self.b);
        // The inner dimension in chunks, each summed from zero and then added to c (in L1):
        // partial sums where the caller asks for them (see `matmul::dots`).
        let mut done = 0;
        while done < self.k {
            let steps = self.chunk.min(self.k - done);
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for _ in 0..steps {
                // SAFETY: one step of the inner dimension: inside both operands (masked lanes
                // are not read).
                unsafe {
                    let (b0, b1) = (load(b, m0), load(b.wrapping_add(8), m1));
                    for (i, row) in acc.iter_mut().enumerate() {
                        let rs = if UNIT { 1 } else { self.a_rs };
                        let ai = _mm256_broadcast_ss(&*a.add(i * rs));
                        row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                        row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                    }
                    // Wrapping: the step past the last one may point beyond the buffers,
                    // unread.
                    a = a.wrapping_add(self.a_cs);
                    b = b.wrapping_add(self.ldb);
                }
            }
            let add = done > 0 || self.accumulate;
            for (i, row) in acc.iter_mut().enumerate() {
                let p = self.c.wrapping_add(i * self.ldc);
                if add {
                    row[0] = _mm256_add_ps(row[0], load(p, m0));
                    row[1] = _mm256_add_ps(row[1], load(p.wrapping_add(8), m1));
                }
                store(p, m0, row[0]);
                store(p.wrapping_add(8), m1, row[1]);
            }
            done += steps;
            if done == self.k {
                // SAFETY: the closures are this tile's; `colmax` holds its columns.
                unsafe { self.merge_colmax(&acc, load, store) };
            }
        }
    }

    /// Merges the tile's column maxima (of its final values `acc`) into `colmax`, if asked.
    ///
    /// # Safety
    /// `load` and `store` must be [`Tile::run`]'s (masked as the tile's columns), and
    /// `colmax`, when not null, must hold the tile's columns.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn merge_colmax<const R: usize>(
        &self,
        acc: &[[__m256; 2]; R],
        load: impl Fn(*const f32, __m256i) -> __m256,
        store: impl Fn(*mut f32, __m256i, __m256),
    ) {
        let (m0, m1) = self.masks;
        if !self.colmax.is_null() {
            // maxps returns its second operand when either is NaN: folding every row into
            // the stored maxima passes NaN products over, as the separate maximum pass does.
            let p = self.colmax;
            let (mut top0, mut top1) = (load(p, m0), load(p.wrapping_add(8), m1));
            for row in acc {
                top0 = _mm256_max_ps(row[0], top0);
                top1 = _mm256_max_ps(row[1], top1);
            }
            store(p, m0, top0);
            store(p.wrapping_add(8), m1, top1);
        }
    }
}

/// [`crate::pack`]'s interleave by 8×8 transposes in registers: per group of `W` rows (of
/// `d`), each group stored column by column, zero past the last row; columns past the last
/// multiple of 8 one at a time.
///
/// # Safety
/// The CPU must have AVX2; `W` must be a multiple of 4 and `dst` must hold
/// `src.len().div_ceil(W·d)·W·d` elements.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn interleave<const W: usize>(src: &[f32], dst: &mut [f32], d: usize) {
    const { assert!(W.is_multiple_of(4), "stores of 4 or 8 rows") };
    let c8 = d / 8 * 8;
    for (rows, out) in src.chunks(W * d).zip(dst.chunks_exact_mut(W * d)) {
        let h = rows.len() / d;
        for r0 in (0..W).step_by(8) {
            let nr = (W - r0).min(8);
            for c0 in (0..c8).step_by(8) {
                let mut v = [_mm256_setzero_ps(); 8];
                for (i, x) in v.iter_mut().enumerate().take(nr.min(h.saturating_sub(r0))) {
                    let row = &rows[(r0 + i) * d + c0..][..8];
                    // SAFETY: `row` holds the 8 values read.
                    *x = unsafe { _mm256_loadu_ps(row.as_ptr()) };
                }
                let v = transpose8(v);
                for (c, col) in v.iter().enumerate() {
                    let o = &mut out[(c0 + c) * W + r0..][..nr];
                    // SAFETY: `o` holds the nr (8 or 4) values written.
                    unsafe {
                        match nr {
                            8 => _mm256_storeu_ps(o.as_mut_ptr(), *col),
                            _ => _mm_storeu_ps(o.as_mut_ptr(), _mm256_castps256_ps128(*col)),
                        }
                    }
                }
            }
        }
        for c in c8..d {
            for (j, x) in out[c * W..][..W].iter_mut().enumerate() {
                *x = if j < h { rows[j * d + c] } else { 0.0 };
            }
        }
    }
}

/// The transpose of an 8×8 block held as 8 row vectors.
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        match i % 2 {
            0 => _mm256_unpacklo_ps(a, b),
            _ => _mm256_unpackhi_ps(a, b),
        }
    });
    // t[0] = r0,r1 interleaved low halves of each 128-bit lane, t[1] the high; t[2], t[3]
    // for r2, r3; and so on. Now pairs of pairs: columns 4k..4k+4 of four rows per lane.
    let u = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
        _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
        _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
        _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
        _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
    ]
}
