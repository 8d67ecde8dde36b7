//! Page-aligned buffers for O_DIRECT I/O (the crate's only `unsafe`).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};

/// Alignment of every buffer: enough for 4096-byte logical sectors and O_DIRECT.
pub const ALIGN: usize = 4096;

/// A zeroed, 4096-byte-aligned heap buffer with a fixed capacity and a settable length.
pub struct AlignedBuf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer owns its allocation exclusively; moving it between threads is fine.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// A buffer of `cap` bytes (rounded up to the alignment), with length `cap`.
    pub fn new(cap: usize) -> AlignedBuf {
        let cap = cap.max(ALIGN).div_ceil(ALIGN) * ALIGN;
        let layout = Layout::from_size_align(cap, ALIGN).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, cap, len: cap }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Set the visible length (at most the capacity).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.cap, "length {len} over capacity {}", self.cap);
        self.len = len;
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for cap ≥ len initialised (zeroed) bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { dealloc(self.ptr, Layout::from_size_align(self.cap, ALIGN).expect("valid layout")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let mut b = AlignedBuf::new(5000);
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        assert!(b.iter().all(|&x| x == 0));
        b.set_len(10);
        b[9] = 7;
        assert_eq!(b.len(), 10);
        assert_eq!(b[9], 7);
    }
}
