//! Matrix products of the CPU forward through MKL's CBLAS, as libtorch carries it: the PyPI
//! builds link MKL into `libtorch_cpu` and export its CBLAS entry points, among them
//! `cblas_sgemm_pack` / `cblas_sgemm_compute`, which libtorch's own operators do not reach: a
//! weight packed once into MKL's internal layout, then reused by every product. Through `mm`
//! MKL repacks the weight at every call: packed, an f32 encode of disfl_qa with MiniLM runs
//! 12 % faster (2 AMD EPYC cores; 4–9 % of the time on a Sapphire Rapids was the repacking).
//!
//! The symbols are looked up at run time: a libtorch without MKL (ARM wheels, builds from
//! source) only loses the fast path, [`available`] says so.

use std::ffi::{c_char, c_float, c_int, c_void, CStr};
use std::sync::OnceLock;

// CBLAS enumerations (mkl_cblas.h).
const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;
const PACKED: c_int = 151;
const B_MATRIX: c_int = 162;

type PackGetSize = unsafe extern "C" fn(c_int, c_int, c_int, c_int) -> usize;
type Pack = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_float,
    *const c_float,
    c_int,
    *mut c_float,
);
type Compute = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const c_float,
    c_int,
    *const c_float,
    c_int,
    c_float,
    *mut c_float,
    c_int,
);

struct Mkl {
    pack_get_size: PackGetSize,
    pack: Pack,
    compute: Compute,
}

/// # Safety
/// `T` must be the function pointer type of the C symbol `name`.
unsafe fn symbol<T: Copy>(name: &CStr) -> Option<T> {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the libraries the
    // process loaded (libtorch_cpu among them).
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr() as *const c_char) };
    // SAFETY: a non-null symbol of the caller's type.
    (!p.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

fn mkl() -> Option<&'static Mkl> {
    static MKL: OnceLock<Option<Mkl>> = OnceLock::new();
    MKL.get_or_init(|| {
        // SAFETY: each type is the symbol's prototype in mkl_cblas.h (LP64: MKL_INT is int).
        unsafe {
            Some(Mkl {
                pack_get_size: symbol(c"cblas_sgemm_pack_get_size")?,
                pack: symbol(c"cblas_sgemm_pack")?,
                compute: symbol(c"cblas_sgemm_compute")?,
            })
        }
    })
    .as_ref()
}

/// Whether the process has MKL's CBLAS (through libtorch).
pub fn available() -> bool {
    mkl().is_some()
}

/// A buffer of f32 aligned to 64 bytes (MKL's packed layout reads it in cache lines).
struct Aligned {
    ptr: std::ptr::NonNull<f32>,
    layout: std::alloc::Layout,
}

// SAFETY: an owned allocation, read only after it is filled.
unsafe impl Send for Aligned {}
// SAFETY: as above.
unsafe impl Sync for Aligned {}

impl Aligned {
    fn new(bytes: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(bytes.max(64), 64).expect("a valid size");
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) } as *mut f32;
        let ptr =
            std::ptr::NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Aligned { ptr, layout }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr() as *mut u8, self.layout) }
    }
}

/// A weight W (n, k) packed for products x·Wᵀ with any number of rows x.
pub struct PackedWeight {
    buf: Aligned,
    n: usize,
    k: usize,
}

impl std::fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedWeight({}×{})", self.n, self.k)
    }
}

impl PackedWeight {
    /// Packs W (n, k), row-major f32; `None` without MKL or for sizes beyond its int.
    pub fn new(w: &[f32], n: usize, k: usize) -> Option<Self> {
        let mkl = mkl()?;
        assert_eq!(w.len(), n * k, "a weight of n·k values");
        let (ni, ki) = (c_int::try_from(n).ok()?, c_int::try_from(k).ok()?);
        // The packed layout does not depend on the rows of x (checked for 1 to 3,000 rows).
        // SAFETY: MKL's prototypes; the source holds n·k values, the buffer the size MKL asks.
        unsafe {
            let bytes = (mkl.pack_get_size)(B_MATRIX, 1, ni, ki);
            let buf = Aligned::new(bytes);
            (mkl.pack)(
                ROW_MAJOR,
                B_MATRIX,
                TRANS,
                1,
                ni,
                ki,
                1.0,
                w.as_ptr(),
                ki,
                buf.ptr.as_ptr(),
            );
            Some(PackedWeight { buf, n, k })
        }
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    /// out (m, n) = x (m, k) · Wᵀ, row-major with leading dimensions `ldx` and `ldout`.
    pub fn product(&self, x: &[f32], ldx: usize, out: &mut [f32], ldout: usize) {
        let m = check(x.len(), ldx, self.k, out.len(), ldout, self.n);
        let mkl = mkl().expect("packed only where MKL is");
        // SAFETY: the bounds checked above; the packed buffer is W's.
        unsafe {
            (mkl.compute)(
                ROW_MAJOR,
                NO_TRANS,
                PACKED,
                m,
                self.n as c_int,
                self.k as c_int,
                x.as_ptr(),
                ldx as c_int,
                self.buf.ptr.as_ptr(),
                0,
                0.0,
                out.as_mut_ptr(),
                ldout as c_int,
            )
        }
    }
}

/// Rows of a row-major (rows, cols) matrix with leading dimension `ld` that `len` elements
/// hold; panics on sizes the products would overrun (callers size them from shapes).
fn rows_of(len: usize, ld: usize, cols: usize) -> usize {
    assert!(ld >= cols && cols > 0 && ld <= c_int::MAX as usize);
    if len < cols {
        0
    } else {
        (len - cols) / ld + 1
    }
}

/// The common row count m of x (·, k) and out (·, n), as MKL's int.
fn check(xlen: usize, ldx: usize, k: usize, outlen: usize, ldout: usize, n: usize) -> c_int {
    let m = rows_of(xlen, ldx, k);
    assert_eq!(m, rows_of(outlen, ldout, n), "x and out have as many rows");
    c_int::try_from(m).expect("rows within MKL's int")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn naive(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|l| x[i * k + l] as f64 * w[j * k + l] as f64)
                    .sum();
            }
        }
        out
    }

    #[test]
    fn packed_products_match_the_formula_for_any_rows() {
        if !available() {
            eprintln!("skipped: this libtorch carries no MKL");
            return;
        }
        let (n, k) = (70, 48);
        let w = numbers(n * k, 7);
        let p = PackedWeight::new(&w, n, k).expect("MKL packs");
        for m in [1, 5, 300] {
            let x = numbers(m * k, m as u32);
            let mut out = vec![f32::NAN; m * n];
            p.product(&x, k, &mut out, n);
            let want = naive(&x, &w, m, n, k);
            let err = out
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-4, "m = {m}: max error {err}");
        }
    }
}
