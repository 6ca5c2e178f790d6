//! Each input copied once per call into the f32 layouts the matrix products read directly:
//! contiguous rows (B, H, T, D), then per head the panels of a left operand, of a right
//! operand, or of a transposed right operand, so that the kernel's every step reads memory
//! in order. All are O(T·D) per head, against the O(T²·D) products that read them.

use crate::dtype::Float;
use crate::matmul::{Lhs, Rhs, MR, NR};
use crate::scratch::Buf;
use flagcore::TensorView;
use rayon::prelude::*;
use std::ops::Deref;

/// An input's rows: borrowed, or a converted copy.
pub(crate) enum Rows<'a> {
    Borrowed(&'a [f32]),
    Copied(Buf),
}

impl Deref for Rows<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Rows::Borrowed(s) => s,
            Rows::Copied(b) => b,
        }
    }
}

/// A (B, H, T, D) view as contiguous f32, whatever its strides and element type: borrowed
/// when it already is.
pub(crate) fn rows<'a, T: Float>(v: &TensorView<'a, T>) -> Rows<'a> {
    match v.as_slice().and_then(T::as_f32) {
        Some(f) => Rows::Borrowed(f),
        None => Rows::Copied(copy(v)),
    }
}

/// Each (q, k) score pair's rows.
pub(crate) fn pair_rows<'a, T: Float>(
    pairs: &[(&TensorView<'a, T>, &TensorView<'a, T>)],
) -> Vec<(Rows<'a>, Rows<'a>)> {
    pairs.iter().map(|(q, k)| (rows(*q), rows(*k))).collect()
}

/// [`pair_rows`] as slices, as the score routines take them.
pub(crate) fn pair_slices<'b>(pairs: &'b [(Rows<'_>, Rows<'_>)]) -> Vec<(&'b [f32], &'b [f32])> {
    pairs.iter().map(|(q, k)| (&q[..], &k[..])).collect()
}

fn copy<T: Float>(v: &TensorView<'_, T>) -> Buf {
    let (sh, s) = (v.shape(), v.strides());
    let (heads, t, d) = (sh[1], sh[2], sh[3]);
    let data = v.data();
    let mut out = Buf::for_overwrite(v.numel());
    if t * d == 0 {
        return out;
    }
    out.par_chunks_mut(t * d)
        .enumerate()
        .for_each(|(bh, head)| {
            let base = (bh / heads) * s[0] + (bh % heads) * s[1];
            for (r, row) in head.chunks_exact_mut(d).enumerate() {
                let at = base + r * s[2];
                if s[3] == 1 {
                    T::rows_to_f32(&data[at..at + d], row);
                } else {
                    row.iter_mut()
                        .enumerate()
                        .for_each(|(c, x)| *x = data[at + c * s[3]].to_f32());
                }
            }
        });
    out
}

/// A (B, H, T, D) input as a left operand A(i, c) = row i, column c: per head, groups of
/// [`MR`] rows stored column by column, so the kernel reads each step's MR values from one
/// place (a plain row-major or transposed layout would stride by a power of two and thrash
/// one cache set).
pub(crate) struct LhsPack {
    data: Buf,
    head: usize,
    d: usize,
}

impl LhsPack {
    pub fn new(rows: &[f32], t: usize, d: usize) -> Self {
        let head = t.div_ceil(MR) * MR * d;
        let data = per_head(rows, t, d, head, |src, dst| interleave::<MR>(src, dst, d));
        LhsPack { data, head, d }
    }

    /// Head `hd`'s rows from `r0` (a multiple of [`MR`]) on.
    pub fn from(&self, hd: usize, r0: usize) -> Lhs<'_> {
        debug_assert!(r0.is_multiple_of(MR));
        Lhs {
            data: &self.data[hd * self.head..(hd + 1) * self.head][r0 * self.d..],
            rs: 1,
            cs: MR,
            gs: MR * self.d,
        }
    }
}

/// A (B, H, T, D) input as a right operand, transposed: B(c, j) = row j, column c; per head,
/// panels of [`NR`] rows stored column by column.
pub(crate) struct RhsT {
    data: Buf,
    head: usize,
    d: usize,
}

impl RhsT {
    pub fn new(rows: &[f32], t: usize, d: usize) -> Self {
        let head = t.div_ceil(NR) * NR * d;
        let data = per_head(rows, t, d, head, |src, dst| interleave::<NR>(src, dst, d));
        RhsT { data, head, d }
    }

    /// Head `hd`'s transpose from column (row of the input) `j0`, a multiple of [`NR`], on.
    pub fn from(&self, hd: usize, j0: usize) -> Rhs<'_> {
        debug_assert!(j0.is_multiple_of(NR));
        Rhs::panels(
            &self.data[hd * self.head..(hd + 1) * self.head][j0 * self.d..],
            self.d,
        )
    }
}

/// A (B, H, T, D) input as a right operand B(j, c) = row j, column c: per head, panels of
/// [`NR`] columns, each stored row by row.
pub(crate) struct RhsPack {
    data: Buf,
    head: usize,
    t: usize,
}

impl RhsPack {
    pub fn new(rows: &[f32], t: usize, d: usize) -> Self {
        let head = d.div_ceil(NR) * NR * t;
        let data = per_head(rows, t, d, head, |src, dst| {
            for (j, row) in src.chunks_exact(d).enumerate() {
                for (p, part) in row.chunks(NR).enumerate() {
                    let out = &mut dst[p * NR * t + j * NR..][..NR];
                    out[..part.len()].copy_from_slice(part);
                    out[part.len()..].fill(0.0);
                }
            }
        });
        RhsPack { data, head, t }
    }

    /// Head `hd`'s rows from `r0` on.
    pub fn from(&self, hd: usize, r0: usize) -> Rhs<'_> {
        Rhs {
            data: &self.data[hd * self.head..(hd + 1) * self.head][r0 * NR..],
            ld: NR,
            ps: NR * self.t,
        }
    }
}

/// Rows of `d` in groups of `W`, each group stored column by column: element (j, c) at
/// `(j / W)·W·d + c·W + j % W`. Column by column within a group, reading its W rows (a few
/// KiB, in cache) with a stride and writing in order.
fn interleave<const W: usize>(src: &[f32], dst: &mut [f32], d: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512() && d < 1 << 26 {
        // SAFETY: AVX-512F is present and d is small (checked just above); `dst` is a head's
        // packed part, a whole number of groups covering `src`.
        return unsafe { crate::avx512::interleave::<W>(src, dst, d) };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        // SAFETY: AVX2 is present (checked just above); W is MR or NR (multiples of 4) and
        // `dst` is a head's packed part, a whole number of groups covering `src`.
        return unsafe { crate::avx2::interleave::<W>(src, dst, d) };
    }
    interleave_portable::<W>(src, dst, d)
}

fn interleave_portable<const W: usize>(src: &[f32], dst: &mut [f32], d: usize) {
    for (rows, out) in src.chunks(W * d).zip(dst.chunks_exact_mut(W * d)) {
        let h = rows.len() / d;
        for (c, col) in out.chunks_exact_mut(W).enumerate() {
            for (jj, x) in col[..h].iter_mut().enumerate() {
                *x = rows[jj * d + c];
            }
            col[h..].fill(0.0);
        }
    }
}

/// `fill(head's rows, head's packed part)` for every head, in parallel; `fill` writes every
/// element of the part.
fn per_head(
    rows: &[f32],
    t: usize,
    d: usize,
    head: usize,
    fill: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Buf {
    let heads = rows.len() / (t * d).max(1);
    let mut out = Buf::for_overwrite(heads * head);
    if head > 0 {
        out.par_chunks_mut(head)
            .zip(rows.par_chunks(t * d))
            .for_each(|(dst, src)| fill(src, dst));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every packed layout, from a free list poisoned with NaN-filled buffers (they must be
    /// overwritten everywhere, padding included), on sizes that leave partial groups and
    /// panels, by the kernel's path and the portable one.
    #[test]
    fn packs_hold_the_layouts_whatever_the_reused_buffers_held() {
        for len in [10_000, 20_000, 40_000] {
            let mut b = Buf::for_overwrite(len);
            b.fill(f32::NAN);
        }
        let (heads, t, d) = (2, 37, 40);
        let rows: Vec<f32> = (0..heads * t * d).map(|x| x as f32).collect();
        let at = |h: usize, j: usize, c: usize| {
            if j < t && c < d {
                rows[(h * t + j) * d + c]
            } else {
                0.0
            }
        };
        let lhs = LhsPack::new(&rows, t, d);
        let rt = RhsT::new(&rows, t, d);
        let rp = RhsPack::new(&rows, t, d);
        for h in 0..heads {
            let head = |data: &Buf, len: usize| data[h * len..(h + 1) * len].to_vec();
            let l = head(&lhs.data, lhs.head);
            let g = t.div_ceil(MR) * MR;
            for j in 0..g {
                for c in 0..d {
                    assert_eq!(l[(j / MR) * MR * d + c * MR + j % MR], at(h, j, c));
                }
            }
            let r = head(&rt.data, rt.head);
            for j in 0..t.div_ceil(NR) * NR {
                for c in 0..d {
                    assert_eq!(r[(j / NR) * NR * d + c * NR + j % NR], at(h, j, c));
                }
            }
            let p = head(&rp.data, rp.head);
            for j in 0..t {
                for c in 0..d.div_ceil(NR) * NR {
                    assert_eq!(p[(c / NR) * NR * t + j * NR + c % NR], at(h, j, c));
                }
            }
        }
        // The portable interleave gives what the kernels' do (AVX2's where the CPU has it,
        // also on AVX-512 CPUs), with a tail of columns past a multiple of 8 (d = 20).
        for (d, w) in [(d, MR), (d, NR), (20, MR), (20, NR)] {
            let size = t.div_ceil(w) * w * d;
            let src = &rows[..t * d];
            let run = |f: &dyn Fn(&[f32], &mut [f32])| {
                let mut out = vec![f32::NAN; size];
                f(src, &mut out);
                out
            };
            let (picked, portable) = match w {
                MR => (
                    run(&|s, o| interleave::<MR>(s, o, d)),
                    run(&|s, o| interleave_portable::<MR>(s, o, d)),
                ),
                _ => (
                    run(&|s, o| interleave::<NR>(s, o, d)),
                    run(&|s, o| interleave_portable::<NR>(s, o, d)),
                ),
            };
            assert_eq!(picked, portable, "d {d}, groups of {w}");
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::avx2_fma() {
                // SAFETY: AVX2 is present; `out` holds whole groups covering `src`.
                let avx2 = match w {
                    MR => run(&|s, o| unsafe { crate::avx2::interleave::<MR>(s, o, d) }),
                    _ => run(&|s, o| unsafe { crate::avx2::interleave::<NR>(s, o, d) }),
                };
                assert_eq!(avx2, portable, "AVX2, d {d}, groups of {w}");
            }
        }
    }
}
