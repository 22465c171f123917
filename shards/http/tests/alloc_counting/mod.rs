//! A global allocator that counts allocations (and reallocations), for the zero-allocation
//! tests. Counting happens on threads that opted in: `thread_allocations` reads the calling
//! thread's own count, and a thread that called `count_into_shared` also adds to
//! `shared_allocations`, which any thread can read (for a shard thread watched from the
//! test thread).

#![allow(dead_code)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::atomic::{AtomicU64, Ordering},
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static INTO_SHARED: Cell<bool> = const { Cell::new(false) };
}
static SHARED: AtomicU64 = AtomicU64::new(0);

fn count() {
    // `try_with`: during thread teardown the slots may be gone; those allocations are not ours.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    if INTO_SHARED.try_with(Cell::get).unwrap_or(false) {
        SHARED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Allocations made so far by the calling thread.
pub fn thread_allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// From now on the calling thread's allocations also count in [`shared_allocations`].
pub fn count_into_shared() {
    INTO_SHARED.with(|on| on.set(true));
}

/// Allocations of every thread that called [`count_into_shared`].
pub fn shared_allocations() -> u64 {
    SHARED.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches only
// const-initialised thread-local `Cell`s and an atomic, none of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees (non-zero size layout).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through it) with
        // this `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`, and `new_size` is the caller's valid new size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
