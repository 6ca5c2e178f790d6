//! A safe face on the matrix-product kernels: our AVX-512 one (`avx512.rs`) where the CPU has
//! it, else the `gemm` crate's (AVX2 / SSE, dispatched at run time):
//! c (m×n, row-major) = [c +] a·b, with a and b given by strides, bounds checked up front.

/// A matrix operand: its slice and the strides of a row step and a column step.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// c (m×n, row-major, `c.len() ≥ m·n`) = a (m×k) · b (k×n), added to c when `accumulate`.
pub(crate) fn matmul(
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
) {
    assert!(
        c.len() >= m * n && a.fits(m, k) && b.fits(k, n),
        "matmul operands too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present (checked just above); every index lies inside the
        // slices (checked at the top), and `c` is not aliased.
        unsafe {
            crate::avx512::matmul(
                m,
                n,
                k,
                a.data.as_ptr(),
                a.rs,
                a.cs,
                b.data.as_ptr(),
                b.rs,
                b.cs,
                c.as_mut_ptr(),
                n,
                accumulate,
            );
        }
        return;
    }
    // SAFETY: every element the kernel reads or writes lies inside the slices (checked above:
    // the furthest index of each operand is below its length), and `c` is not aliased.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_transposes() {
        // a = [[1, 2, 3], [4, 5, 6]], b = aᵀ: a·aᵀ = [[14, 32], [32, 77]]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut c = [1.0f32; 4];
        matmul(
            &mut c,
            2,
            2,
            3,
            Mat::rows(&a, 3),
            Mat::transposed(&a, 3),
            false,
        );
        assert_eq!(c, [14.0, 32.0, 32.0, 77.0]);
        matmul(
            &mut c,
            2,
            2,
            3,
            Mat::rows(&a, 3),
            Mat::transposed(&a, 3),
            true,
        );
        assert_eq!(c, [28.0, 64.0, 64.0, 154.0]);
        // aᵀ·a (3×3) from the transposed view as the left operand
        let mut d = [0.0f32; 9];
        matmul(
            &mut d,
            3,
            3,
            2,
            Mat::transposed(&a, 3),
            Mat::rows(&a, 3),
            false,
        );
        assert_eq!(d, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }
}
