//! Heap accounting for benchmarks and reports: a global-allocator wrapper
//! that tracks live and peak bytes.
//!
//! A binary opts in with
//! `#[global_allocator] static A: attend_cli::memory::Counting<std::alloc::System> = attend_cli::memory::Counting(std::alloc::System);`
//! (the `attend` CLI wraps mimalloc). Without it every reading is `None`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Wraps an allocator and counts the bytes it hands out.
pub struct Counting<A>(pub A);

impl<A> Counting<A> {
    #[inline]
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Relaxed) + size;
        PEAK.fetch_max(live, Relaxed);
    }
}

// Safety: every call is forwarded to the inner allocator unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                Self::grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

/// Marks the counting allocator as installed (call once from `main`).
pub fn enable() {
    ACTIVE.store(true, Relaxed);
}

/// Bytes allocated and not yet freed, if counting is enabled.
pub fn live() -> Option<usize> {
    ACTIVE.load(Relaxed).then(|| LIVE.load(Relaxed))
}

/// Starts a new peak measurement at the current live size.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// Highest live size since the last [`reset_peak`], if counting is enabled.
pub fn peak() -> Option<usize> {
    ACTIVE.load(Relaxed).then(|| PEAK.load(Relaxed))
}
