//! Thin libc layer: every raw syscall that is not an io_uring operation.
//!
//! Together with `ring/`, this is the only place in the crate allowed to
//! contain `unsafe`. Keeping the FFI boundary here means the rest of the
//! kernel deals only in `io::Result` and owned file descriptors, and every
//! unsafe block can be audited in one small directory. Linux only (x86_64 and
//! aarch64).

pub(crate) mod cpu;
pub(crate) mod eventfd;
pub(crate) mod fdpass;
pub(crate) mod inherit;
pub(crate) mod kernel;
#[cfg(feature = "tls")]
pub(crate) mod ktls;
pub(crate) mod rlimit;
pub(crate) mod sched;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod steer;

/// Wraps an OS error with the name of the call that produced it, keeping the
/// original `ErrorKind` so callers can still match on it.
pub(crate) fn os_error(call: &str) -> std::io::Error {
    let err = std::io::Error::last_os_error();
    with_context(err, call)
}

/// Prefixes `err` with `context` while preserving its `ErrorKind`.
pub(crate) fn with_context(err: std::io::Error, context: &str) -> std::io::Error {
    std::io::Error::new(err.kind(), format!("{context}: {err}"))
}
