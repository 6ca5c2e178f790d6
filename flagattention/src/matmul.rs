//! A safe face on the matrix-product kernels: our AVX-512 one (`avx512.rs`) where the CPU has
//! it, our AVX2 + FMA one (`avx2.rs`) where it has that, else the `gemm` crate's (SSE, or
//! other architectures; one panel at a time): c = [c +] a·b with a by any strides and b in
//! column panels, bounds checked up front.

/// Columns per panel of the right operand (two 16-lane vectors).
pub(crate) const NR: usize = 32;
/// Rows per group of the left operand (the register tile's rows).
pub(crate) const MR: usize = 12;

/// The left operand in groups of [`MR`] rows: element (i, kk) at
/// `data[(i / MR)·gs + (i % MR)·rs + kk·cs]`; `gs = MR·rs` for a plain strided matrix.
#[derive(Clone, Copy)]
pub(crate) struct Lhs<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
    pub gs: usize,
}

impl<'a> Lhs<'a> {
    /// Row-major with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Lhs {
            data,
            rs: cols,
            cs: 1,
            gs: MR * cols,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Lhs {
            data,
            rs: 1,
            cs: cols,
            gs: MR,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        let at = |i: usize| (i / MR) * self.gs + (i % MR) * self.rs + (cols - 1) * self.cs;
        // The furthest element is the last row's or the previous group's last row's.
        rows == 0
            || cols == 0
            || (at(rows - 1) < self.data.len()
                && (rows <= MR || at((rows - 1) / MR * MR - 1) < self.data.len()))
    }
}

/// The right operand in panels of [`NR`] columns, unit stride within a panel: element (kk, j)
/// at `data[(j / NR)·ps + kk·ld + j % NR]`.
#[derive(Clone, Copy)]
pub(crate) struct Rhs<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub ps: usize,
}

impl<'a> Rhs<'a> {
    /// Panels of `k` rows, each NR wide, one after another.
    pub fn panels(data: &'a [f32], k: usize) -> Self {
        Rhs {
            data,
            ld: NR,
            ps: NR * k,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        let at = |j: usize| (j / NR) * self.ps + (rows - 1) * self.ld + j % NR;
        // The furthest element is the last column's or the previous panel's last column's.
        rows == 0
            || cols == 0
            || (at(cols - 1) < self.data.len()
                && (cols <= NR || at((cols - 1) / NR * NR - 1) < self.data.len()))
    }
}

/// c (m×n, row stride `ldc`) = [c +] a (m×k) · b (k×n), for sums over rows or keys. With
/// `accumulate`, every kernel sums the block from zero and then adds it to c, so sums across
/// blocks (thousands of keys) take one rounding of c per block.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    c: &mut [f32],
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Lhs<'_>,
    b: Rhs<'_>,
    accumulate: bool,
) {
    product(c, ldc, (m, n, k), a, b, accumulate, None, usize::MAX)
}

/// Depth of the partial sums in products over a head dim above [`DOT_RUNNING`] ([`dots`]).
const DOT_CHUNK: usize = 32;
/// Head dims up to this keep one running sum: on AVX2 `tests/torch.rs`'s errors at D = 64
/// are ≤ 0.38 of the bound (at D = 16, one chunk anyway, ≤ 0.69), and chunking costs the
/// kernel 7 % on those products.
const DOT_RUNNING: usize = 64;

fn dot_chunk(k: usize) -> usize {
    match k <= DOT_RUNNING {
        true => usize::MAX,
        false => DOT_CHUNK,
    }
}

/// c = a·b as [`matmul`] does, for sums over the head dim (scores and dP): above
/// [`DOT_RUNNING`] summed in [`DOT_CHUNK`]-term partial sums on AVX2, whose one running sum
/// over 128 products of std-4 inputs went past FlagAttention's bound (2× libtorch's error)
/// for o (1.02× the bound). Forward and backward must sum the scores alike (the backward
/// recomputes them against the forward's log-sum-exp).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dots(
    c: &mut [f32],
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Lhs<'_>,
    b: Rhs<'_>,
) {
    product(c, ldc, (m, n, k), a, b, false, None, dot_chunk(k))
}

/// c = a·b as [`dots`] does, and `colmax_j = max(colmax_j, max_i c_ij)` (NaNs passed
/// over) for j < n, taken from the kernel's registers rather than by another pass over c.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_colmax(
    c: &mut [f32],
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Lhs<'_>,
    b: Rhs<'_>,
    colmax: &mut [f32],
) {
    product(c, ldc, (m, n, k), a, b, false, Some(colmax), dot_chunk(k))
}

/// `chunk`: the depth of the AVX2 kernel's partial sums (the AVX-512 kernel keeps one running
/// sum over the depth: it met the bound on the AVX-512 machine it was measured on; the `gemm`
/// fallback always sums in [`KC`] chunks).
#[allow(clippy::too_many_arguments)]
fn product(
    c: &mut [f32],
    ldc: usize,
    (m, n, k): (usize, usize, usize),
    a: Lhs<'_>,
    b: Rhs<'_>,
    accumulate: bool,
    colmax: Option<&mut [f32]>,
    chunk: usize,
) {
    assert!(
        (m == 0 || n == 0 || (n <= ldc && (m - 1) * ldc + n <= c.len()))
            && a.fits(m, k)
            && b.fits(k, n)
            && colmax.as_ref().is_none_or(|t| t.len() >= n),
        "matmul operands too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if k > 0 && wide_kernel() {
        let top = colmax.map_or(std::ptr::null_mut(), |t| t.as_mut_ptr());
        // SAFETY: AVX-512F is present (checked just above); every element addressed lies
        // inside its slice (checked at the top), and nothing is aliased.
        unsafe { crate::avx512::matmul(m, n, k, a, b, c.as_mut_ptr(), ldc, accumulate, top) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if k > 0 && crate::cpu::avx2_fma() {
        let top = colmax.map_or(std::ptr::null_mut(), |t| t.as_mut_ptr());
        // SAFETY: AVX2 and FMA are present (checked just above); every element addressed lies
        // inside its slice (checked at the top), and nothing is aliased.
        unsafe {
            crate::avx2::matmul((m, n, k), a, b, c.as_mut_ptr(), ldc, accumulate, top, chunk)
        };
        return;
    }
    match k {
        0 if !accumulate => c.chunks_mut(ldc).take(m).for_each(|r| r[..n].fill(0.0)),
        0 => {}
        _ => fallback(c, ldc, m, n, k, a, b, accumulate),
    }
    if let Some(top) = colmax {
        for row in c.chunks(ldc).take(m) {
            for (t, &x) in top[..n].iter_mut().zip(&row[..n]) {
                *t = if x > *t { x } else { *t };
            }
        }
    }
}

/// Whether products run on the AVX-512 kernel (the block sizes were measured with it).
pub(crate) fn wide_kernel() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::cpu::avx512();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Depth of one `gemm` call in [`fallback`]: each call sums its products from zero before
/// adding them to c, so sums over the head dim (128 products of scores with std 4 inputs) are
/// four partial sums instead of one running sum: rounding error within FlagAttention's bound
/// (2× libtorch's) where the `gemm` crate's own summation order went past it.
const KC: usize = 32;

/// [`matmul`] through the `gemm` crate, one 12-row group, one panel and [`KC`] of the depth at
/// a time; the operands are checked by the caller.
#[allow(clippy::too_many_arguments)]
fn fallback(
    c: &mut [f32],
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Lhs<'_>,
    b: Rhs<'_>,
    accumulate: bool,
) {
    for (g, i0) in (0..m).step_by(MR).enumerate() {
        let rows = MR.min(m - i0);
        for jp in 0..n.div_ceil(NR) {
            let cols = NR.min(n - jp * NR);
            for k0 in (0..k).step_by(KC) {
                let depth = KC.min(k - k0);
                // SAFETY: every element the kernel reads or writes lies inside the slices
                // (checked above: the furthest index of each operand is below its length), and
                // `c` is not aliased.
                unsafe {
                    gemm::gemm(
                        rows,
                        cols,
                        depth,
                        c.as_mut_ptr().add(i0 * ldc + jp * NR),
                        1,
                        ldc as isize,
                        accumulate || k0 > 0,
                        a.data.as_ptr().add(g * a.gs + k0 * a.cs),
                        a.cs as isize,
                        a.rs as isize,
                        b.data.as_ptr().add(jp * b.ps + k0 * b.ld),
                        1,
                        b.ld as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flagcore::rng::Rng;

    /// Every shape class the kernel splits on (full and partial 12-row and 32-column tiles,
    /// k = 1), with a by rows, transposed and in groups of rows, b by rows (a wider row stride) and in panels,
    /// into a wider c, against the plain triple loop. Small integers keep every sum exact.
    #[test]
    fn products_equal_the_triple_loop() {
        let mut rng = Rng::new(5);
        for &(m, n, k) in &[
            (1, 1, 1),
            (12, 32, 7),
            (13, 33, 1),
            (29, 70, 40),
            (64, 64, 64),
            (5, 17, 3),
            (18, 24, 5),
            (6, 8, 2),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.below(7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.below(7) as f32 - 3.0).collect();
            let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
            let ld = n + 3;
            let mut b_wide = vec![f32::NAN; k * ld];
            let mut b_panels = vec![0f32; n.div_ceil(NR) * NR * k];
            for kk in 0..k {
                for j in 0..n {
                    b_wide[kk * ld + j] = b[kk * n + j];
                    b_panels[(j / NR) * NR * k + kk * NR + j % NR] = b[kk * n + j];
                }
            }
            let want: Vec<f32> = (0..m * n)
                .map(|x| {
                    (0..k)
                        .map(|kk| a[(x / n) * k + kk] * b[kk * n + x % n])
                        .sum()
                })
                .collect();
            let mut a_groups = vec![0f32; m.div_ceil(MR) * MR * k];
            for i in 0..m {
                for kk in 0..k {
                    a_groups[(i / MR) * MR * k + kk * MR + i % MR] = a[i * k + kk];
                }
            }
            let grouped = Lhs {
                data: &a_groups,
                rs: 1,
                cs: MR,
                gs: MR * k,
            };
            let lhs = [Lhs::rows(&a, k), Lhs::transposed(&at, m), grouped];
            let b_rows = Rhs {
                data: &b_wide,
                ld,
                ps: NR,
            };
            let rhs = [b_rows, Rhs::panels(&b_panels, k)];
            for (la, rb) in lhs.iter().flat_map(|l| rhs.iter().map(move |r| (*l, *r))) {
                let ldc = n + 1;
                // The portable path, the AVX2 kernel where the CPU has it (also on AVX-512
                // CPUs, which would not pick it), then the kernel this CPU picks.
                let mut c = vec![1f32; m * ldc];
                fallback(&mut c, ldc, m, n, k, la, rb, true);
                for x in 0..m * n {
                    assert_eq!(c[(x / n) * ldc + x % n], want[x] + 1.0, "fallback at {x}");
                }
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::avx2_fma() {
                    // Partial sums of 3 terms: chunks, a partial last one (and c added).
                    let avx2 = |c: &mut [f32], accumulate: bool, top: *mut f32| {
                        // SAFETY: AVX2 and FMA are present; the operands were built for
                        // these sizes (`matmul` checks the same below), c holds m rows of
                        // ldc and top, when not null, n values.
                        unsafe {
                            crate::avx2::matmul(
                                (m, n, k),
                                la,
                                rb,
                                c.as_mut_ptr(),
                                ldc,
                                accumulate,
                                top,
                                3,
                            )
                        }
                    };
                    let mut c = vec![1f32; m * ldc];
                    let mut top = vec![-1.0f32; n];
                    avx2(&mut c, true, top.as_mut_ptr());
                    for x in 0..m * n {
                        assert_eq!(c[(x / n) * ldc + x % n], want[x] + 1.0, "avx2 at {x}");
                    }
                    for j in 0..n {
                        let best = (0..m)
                            .map(|i| want[i * n + j] + 1.0)
                            .fold(-1.0f32, f32::max);
                        assert_eq!(top[j], best, "avx2 column {j}");
                    }
                    assert!((0..m).all(|i| c[i * ldc + n] == 1.0));
                    // Overwriting c over several chunks (the first stored, the rest added).
                    avx2(&mut c, false, std::ptr::null_mut());
                    for x in 0..m * n {
                        assert_eq!(c[(x / n) * ldc + x % n], want[x], "avx2 over c at {x}");
                    }
                }
                let mut c = vec![1f32; m * ldc];
                matmul(&mut c, ldc, m, n, k, la, rb, true);
                for x in 0..m * n {
                    assert_eq!(
                        c[(x / n) * ldc + x % n],
                        want[x] + 1.0,
                        "{m}×{n}×{k} at {x}"
                    );
                }
                matmul(&mut c, ldc, m, n, k, la, rb, false);
                for x in 0..m * n {
                    assert_eq!(c[(x / n) * ldc + x % n], want[x], "{m}×{n}×{k} at {x}");
                }
                // The same with column maxima taken on the way, merged into earlier ones.
                let mut top = vec![-1.0f32; n];
                c.fill(1.0);
                matmul_colmax(&mut c, ldc, m, n, k, la, rb, &mut top);
                for j in 0..n {
                    let best = (0..m).map(|i| want[i * n + j]).fold(-1.0f32, f32::max);
                    assert_eq!(top[j], best, "{m}×{n}×{k} column {j}");
                    assert!((0..m).all(|i| c[i * ldc + j] == want[i * n + j]));
                }
                // The column past n in each row is left alone.
                assert!((0..m).all(|i| c[i * ldc + n] == 1.0));
            }
        }
    }

    /// A NaN product in a tile's first row is passed over by the column maxima, as in the
    /// separate maximum pass: the other rows' maxima still count.
    #[test]
    fn column_maxima_pass_over_nan() {
        let (m, n, k) = (13, 40, 2);
        let mut a = vec![1f32; m * k];
        a[0] = f32::NAN; // row 0: NaN in every column
        let b: Vec<f32> = (0..k * n).map(|x| (x % n) as f32).collect();
        let mut b_panels = vec![0f32; n.div_ceil(NR) * NR * k];
        for kk in 0..k {
            for j in 0..n {
                b_panels[(j / NR) * NR * k + kk * NR + j % NR] = b[kk * n + j];
            }
        }
        let mut c = vec![0f32; m * n];
        let mut top = vec![f32::NEG_INFINITY; n];
        let (la, rb) = (Lhs::rows(&a, k), Rhs::panels(&b_panels, k));
        matmul_colmax(&mut c, n, m, n, k, la, rb, &mut top);
        for (j, t) in top.iter().enumerate() {
            assert_eq!(*t, 2.0 * j as f32, "column {j}");
            assert!(c[j].is_nan());
        }
    }
}
