//! Cooperative budget: how much I/O one task may consume in one poll before it must yield.
//!
//! Each poll of a task starts with [`POLL_BUDGET`] units; every ready read or accept costs one.
//! A task that spends its budget sees `Pending` (after waking itself), so a connection that
//! always has data cannot keep its shard from serving the others.

use std::cell::Cell;

/// Units per task poll: enough to batch a burst of pipelined requests, small enough that
/// one stream cannot hog an iteration.
pub(crate) const POLL_BUDGET: u32 = 64;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(POLL_BUDGET) };
}

pub(crate) fn reset() {
    BUDGET.with(|b| b.set(POLL_BUDGET));
}

/// Takes one unit; false means the task must yield now.
pub(crate) fn consume() -> bool {
    BUDGET.with(|b| {
        let left = b.get();
        if left == 0 {
            false
        } else {
            b.set(left - 1);
            true
        }
    })
}
