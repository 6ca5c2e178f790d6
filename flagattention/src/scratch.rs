//! Scratch buffers reused across calls. The packed copies and the backward's per-share sums
//! are allocated on every call, and a fresh large allocation costs page faults (the kernel
//! maps and zeroes every page on first touch, and unmapping stops the other threads to
//! flush their TLBs): 10–15 % of a backward at N = 1k on two cores. Freed buffers go to one
//! process-wide list (buffers are often freed on another thread than the one that took
//! them), up to a cap, and are handed out again; a few are taken per call, so the lock is
//! never contended for long.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// The most the list keeps, in bytes.
const KEEP_BYTES: usize = 256 << 20;

static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A zeroed f32 buffer that goes back to the free list when dropped.
pub(crate) struct Buf(Vec<f32>);

impl Buf {
    pub fn zeroed(len: usize) -> Buf {
        let mut b = Buf::for_overwrite(len);
        b.fill(0.0);
        b
    }

    /// A buffer whose contents are left from earlier use (zero when fresh): for callers that
    /// write every element (zeroing a reused buffer first would be a pass for nothing).
    pub fn for_overwrite(len: usize) -> Buf {
        if len == 0 {
            // Not a free buffer held for nothing (every one would fit).
            return Buf(Vec::new());
        }
        // A poisoned lock only means a panic elsewhere: the list is still a list.
        let reused = {
            let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
            let fit = (free.iter().enumerate())
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            fit.map(|i| free.swap_remove(i))
        };
        let mut v = reused.unwrap_or_default();
        // Only elements past the old length are written here.
        v.resize(len, 0.0);
        Buf(v)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() == 0 || v.capacity() * 4 > KEEP_BYTES {
            return;
        }
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        free.push(v);
        // Oldest first out, until the list fits the cap.
        while free.iter().map(|v| v.capacity() * 4).sum::<usize>() > KEEP_BYTES {
            free.remove(0);
        }
    }
}

impl Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_zeroed() {
        // A size no other test uses, so that the list's best fit is this buffer.
        let mut a = Buf::zeroed(1_234_567);
        a.fill(7.0);
        let p = a.as_ptr();
        drop(a);
        let b = Buf::zeroed(1_234_560);
        assert_eq!(b.as_ptr(), p, "the freed buffer is reused");
        assert!(b.len() == 1_234_560 && b.iter().all(|&x| x == 0.0));
    }
}
