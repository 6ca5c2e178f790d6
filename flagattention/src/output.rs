//! Outputs allocated without zeroing. `vec![0; len]` zeroes the whole output on the calling
//! thread before the parallel loop starts (2 MiB per output at B·H = 4, N = 1024, D = 128:
//! ~1 % of a forward there, and the backward has three); instead each task initialises its
//! own part, by writing it (or zeroing it first when it is small and about to be written in
//! cache).

use crate::dtype::Float;
use std::mem::MaybeUninit;

/// A vector of `len` elements written in parts: [`Output::parts`] hands out the elements,
/// every one of which must be initialised (through [`zeroed`] or [`write_rows`]) before
/// [`Output::finish`].
pub(crate) struct Output<T> {
    v: Vec<T>,
    len: usize,
}

impl<T> Output<T> {
    pub fn new(len: usize) -> Self {
        Output {
            v: Vec::with_capacity(len),
            len,
        }
    }

    pub fn parts(&mut self) -> &mut [MaybeUninit<T>] {
        &mut self.v.spare_capacity_mut()[..self.len]
    }

    /// The vector.
    ///
    /// # Safety
    /// Every element of [`Output::parts`] must have been initialised.
    pub unsafe fn finish(mut self) -> Vec<T> {
        // SAFETY: the capacity is `len` and the caller initialised every element.
        unsafe { self.v.set_len(self.len) };
        self.v
    }
}

/// `part`, every element set to `zero`.
pub(crate) fn zeroed<T: Copy>(part: &mut [MaybeUninit<T>], zero: T) -> &mut [T] {
    for x in part.iter_mut() {
        x.write(zero);
    }
    // SAFETY: every element was written just above, and MaybeUninit<T> has T's layout.
    unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `dst` (as long as `src`) initialised with `src` converted to `T`.
pub(crate) fn write_rows<T: Float>(src: &[f32], dst: &mut [MaybeUninit<T>]) {
    assert_eq!(src.len(), dst.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(T::from_f32(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_written_make_the_vector() {
        let mut out = Output::<half::bf16>::new(10);
        let (a, b) = out.parts().split_at_mut(4);
        zeroed(a, half::bf16::from_f32(0.0))[1] = half::bf16::from_f32(2.0);
        write_rows(&[1.0, 3.0, 5.0, 7.0, 9.0, 11.0], b);
        // SAFETY: both parts were initialised above.
        let v = unsafe { out.finish() };
        let f: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
        assert_eq!(f, [0.0, 2.0, 0.0, 0.0, 1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
    }
}
