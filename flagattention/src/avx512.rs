//! An AVX-512 matrix-product kernel for the block shapes attention uses (a few dozen to a few
//! hundred on each side): B packed in panels of 32 columns, A in panels of 12 rows, and a
//! 12×32 register tile (24 accumulators) updated with one fused multiply-add per A element
//! and B half-row. The `gemm` crate only reaches AVX-512 on nightly Rust; the intrinsics used
//! here are stable.

use std::arch::x86_64::*;

const MR: usize = 12;
const NR: usize = 32;

/// c (m×n, row stride `ldc`) = [c +] a·b with a (m×k) and b (k×n) given by element strides.
///
/// # Safety
/// The CPU must have AVX-512F, and every index the strides reach must lie inside the
/// pointed-to buffers (the caller checks this).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let panels_b = n.div_ceil(NR);
    let panels_a = m.div_ceil(MR);
    // Packed, zero-padded operands: b as [panel][k][32], a as [panel][k][12].
    let mut pb = vec![0f32; panels_b * k * NR];
    for p in 0..panels_b {
        for kk in 0..k {
            let row = &mut pb[(p * k + kk) * NR..(p * k + kk + 1) * NR];
            for (j, x) in row.iter_mut().enumerate().take(NR.min(n - p * NR)) {
                // SAFETY: (kk, p·NR + j) lies inside b (caller's contract).
                *x = unsafe { *b.add(kk * b_rs + (p * NR + j) * b_cs) };
            }
        }
    }
    let mut pa = vec![0f32; panels_a * k * MR];
    for p in 0..panels_a {
        for kk in 0..k {
            let col = &mut pa[(p * k + kk) * MR..(p * k + kk + 1) * MR];
            for (i, x) in col.iter_mut().enumerate().take(MR.min(m - p * MR)) {
                // SAFETY: (p·MR + i, kk) lies inside a (caller's contract).
                *x = unsafe { *a.add((p * MR + i) * a_rs + kk * a_cs) };
            }
        }
    }
    let mut tile = [0f32; MR * NR];
    for ip in 0..panels_a {
        let rows = MR.min(m - ip * MR);
        for jp in 0..panels_b {
            let cols = NR.min(n - jp * NR);
            // SAFETY: the packed panels hold k·MR and k·NR elements; AVX-512F is enabled.
            unsafe {
                micro(
                    k,
                    pa.as_ptr().add(ip * k * MR),
                    pb.as_ptr().add(jp * k * NR),
                    tile.as_mut_ptr(),
                );
            }
            for i in 0..rows {
                for j in 0..cols {
                    // SAFETY: (ip·MR + i, jp·NR + j) is inside the m×n destination.
                    let dst = unsafe { &mut *c.add((ip * MR + i) * ldc + jp * NR + j) };
                    let v = tile[i * NR + j];
                    *dst = if accumulate { *dst + v } else { v };
                }
            }
        }
    }
}

/// The 12×32 tile of packed a (k×12) times packed b (k×32), stored row-major in `out`.
#[target_feature(enable = "avx512f")]
unsafe fn micro(k: usize, a: *const f32, b: *const f32, out: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for kk in 0..k {
        // SAFETY: kk < k, so both rows lie inside the packed panels.
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_ps(b.add(kk * NR)),
                _mm512_loadu_ps(b.add(kk * NR + 16)),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let ai = _mm512_set1_ps(unsafe { *a.add(kk * MR + i) });
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: `out` holds MR·NR elements.
        unsafe {
            _mm512_storeu_ps(out.add(i * NR), row[0]);
            _mm512_storeu_ps(out.add(i * NR + 16), row[1]);
        }
    }
}
