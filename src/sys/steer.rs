//! Syscalls of connection steering: attaching a classic-BPF socket selector to a
//! SO_REUSEPORT group, and the non-blocking `poll`/`accept4` the stall detector uses to take
//! connections queued on a stalled shard's listener.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

use super::os_error;

/// One classic-BPF instruction (`struct sock_filter`, <linux/filter.h>).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// `SO_ATTACH_REUSEPORT_CBPF` (Linux 4.5): the program returns the index of the socket, in
/// the order the sockets joined the group, that gets a new connection.
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Attaches `program` as the reuseport selector of the group `fd` belongs to.
pub(crate) fn attach_reuseport_cbpf(fd: RawFd, program: &[SockFilter]) -> io::Result<()> {
    let len = libc::c_ushort::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cBPF program too long"))?;
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    // SAFETY: `prog` points at `program`, which lives through the call; the kernel copies
    // the instructions and keeps no pointer to them.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&raw const prog).cast(),
            std::mem::size_of::<SockFprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error("setsockopt SO_ATTACH_REUSEPORT_CBPF"));
    }
    Ok(())
}

/// Waits up to `timeout_ms` for any of `fds` to be readable; `ready[i]` tells which. A plain
/// `poll` waiter is woken by every new connection (it is not an exclusive waiter, unlike an
/// io_uring accept), so a stalled ring's pending accept cannot hide a connection from it.
pub(crate) fn poll_readable(
    fds: &[RawFd],
    timeout_ms: i32,
    ready: &mut Vec<bool>,
) -> io::Result<()> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `polls` is a valid array of `polls.len()` pollfd entries for the whole call.
    let rc = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_ms) };
    ready.clear();
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            ready.resize(fds.len(), false);
            return Ok(());
        }
        return Err(err);
    }
    ready.extend(polls.iter().map(|p| p.revents & libc::POLLIN != 0));
    Ok(())
}

/// Accepts one connection: `Ok(None)` when none is queued. The listener is in blocking
/// mode, so call it only after `poll_readable`, on a socket with an accept timeout.
pub(crate) fn accept_now(listener: RawFd) -> io::Result<Option<OwnedFd>> {
    // SAFETY: null address pointers are allowed (the peer address is not wanted).
    let fd = unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ECONNABORTED) | Some(libc::EINTR) => Ok(None),
            _ => Err(err),
        };
    }
    // The connection is driven by io_uring like any other: blocking mode, as io_uring's
    // own accept leaves it.
    set_blocking(fd);
    // SAFETY: `fd` is a new descriptor from a successful accept4 that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn set_blocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own; failures leave the flag as it was (harmless).
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
}

/// Bounds how long a blocking `accept` on `fd` waits (SO_RCVTIMEO on a listening socket).
/// io_uring's own accept never blocks, so only the stall detector's `accept_now` sees it.
pub(crate) fn set_accept_timeout(fd: RawFd, timeout: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error("setsockopt SO_RCVTIMEO"));
    }
    Ok(())
}

/// A second descriptor for the same socket (close-on-exec).
pub(crate) fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor returns a new one or fails.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(os_error("fcntl F_DUPFD_CLOEXEC"));
    }
    // SAFETY: `new` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}
