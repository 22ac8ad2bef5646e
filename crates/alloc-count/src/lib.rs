//! The system allocator, counting per thread the bytes allocated minus the bytes freed there.
//!
//! The server installs [`Counting`] as its global allocator so that a custom metric evaluation,
//! which runs on one thread from start to end, can be stopped once it holds more than its memory
//! budget: the sandbox reads [`thread_net_bytes`] at the start and after every Rhai operation.
//! Nothing else changes: every call goes to [`System`], and the count is one thread-local add.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // `const`-initialised and without a destructor: reading it never allocates or registers
    // anything, which an allocator must not do.
    static NET: Cell<i64> = const { Cell::new(0) };
}

fn add(bytes: i64) {
    let _ = NET.try_with(|c| c.set(c.get().wrapping_add(bytes)));
}

fn size(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// [`System`], counting.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches only a thread-local integer and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(size(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(size(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator (so `System`) gave, with its layout.
        unsafe { System.dealloc(ptr, layout) };
        add(-size(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block `System` gave, its layout and a valid new size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(size(new_size) - size(layout.size()));
        }
        p
    }
}

/// Bytes allocated minus bytes freed on this thread so far. Only differences mean anything:
/// memory allocated on another thread and freed here counts negative.
pub fn thread_net_bytes() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`Counting`] is the global allocator of this program (otherwise the count never
/// moves, and a budget built on it bounds nothing).
pub fn is_installed() -> bool {
    let before = thread_net_bytes();
    let probe = std::hint::black_box(vec![0u8; 256]);
    let after = thread_net_bytes();
    drop(probe);
    after - before >= 256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: Counting = Counting;

    #[test]
    fn counts_this_threads_allocations_and_frees() {
        assert!(is_installed());
        let before = thread_net_bytes();
        let mut v: Vec<u8> = Vec::with_capacity(1000);
        assert_eq!(thread_net_bytes() - before, 1000);
        v.reserve_exact(3000);
        assert_eq!(thread_net_bytes() - before, size(v.capacity()));
        let on_another_thread = std::thread::spawn(|| {
            let b = thread_net_bytes();
            let w = vec![1u8; 500];
            (thread_net_bytes() - b, w)
        });
        let (there, w) = on_another_thread.join().unwrap();
        assert_eq!(there, 500);
        // Freed here, allocated there: negative here.
        let here = thread_net_bytes();
        drop(w);
        assert_eq!(thread_net_bytes() - here, -500);
        let here = thread_net_bytes();
        let capacity = size(v.capacity());
        drop(v);
        assert_eq!(thread_net_bytes() - here, -capacity);
    }
}
