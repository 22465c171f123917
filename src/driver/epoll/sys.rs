//! The system calls of the readiness driver, each returning `Ok` or the errno.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::socket::SockAddrBuf;

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

pub(super) fn epoll_create() -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall with a constant flag.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `epoll_create1` just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(op, fd)` with `events`; the event's data is the fd itself.
pub(super) fn ctl(epoll: &OwnedFd, op: i32, fd: RawFd, events: u32) -> Result<(), i32> {
    let mut event = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: `event` is a live local; the kernel copies it before returning.
    let rc = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

/// Waits up to `timeout_ms` (-1: no limit) and fills `events`; returns how many.
pub(super) fn wait(
    epoll: &OwnedFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> Result<usize, i32> {
    let max = events.len().min(i32::MAX as usize) as i32;
    // SAFETY: `events` is a live, writable buffer of `max` entries.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// One `accept4` (non-blocking, close-on-exec): the new socket, or the errno.
pub(super) fn accept(listener: RawFd) -> Result<OwnedFd, i32> {
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
        return Err(errno());
    }
    // SAFETY: a new descriptor from a successful accept4 that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One non-blocking `recv` into `buf`, whatever the socket's own mode.
pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: `buf` is live and writable for its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// One non-blocking `send` of `buf`; a peer that went away gives EPIPE, never SIGPIPE.
pub(super) fn send(fd: RawFd, buf: &[u8]) -> Result<usize, i32> {
    // SAFETY: `buf` is live and readable for its length.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// `pwrite` of `buf` at `offset`: the count written.
pub(super) fn pwrite(fd: RawFd, buf: &[u8], offset: u64) -> Result<usize, i32> {
    let offset = libc::off_t::try_from(offset).map_err(|_| libc::EINVAL)?;
    // SAFETY: `buf` is live and readable for its length.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// `fdatasync` (`data_only`) or `fsync` of `fd`.
pub(super) fn fsync(fd: RawFd, data_only: bool) -> Result<(), i32> {
    // SAFETY: plain syscalls on a descriptor the caller keeps open.
    let rc = unsafe {
        if data_only {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

/// Starts a connect on `fd` (made non-blocking first): `Ok(true)` when it completed at
/// once, `Ok(false)` while in progress (wait for writability, then [`socket_error`]).
pub(super) fn connect(fd: RawFd, addr: &SockAddrBuf) -> Result<bool, i32> {
    set_nonblocking(fd)?;
    // SAFETY: `addr` holds a valid sockaddr of `addr.len()` bytes and outlives the call.
    let rc = unsafe { libc::connect(fd, addr.as_ptr(), addr.len()) };
    if rc == 0 {
        return Ok(true);
    }
    match errno() {
        libc::EINPROGRESS | libc::EINTR => Ok(false),
        e => Err(e),
    }
}

/// The outcome of a finished connect: 0, or the errno `SO_ERROR` holds.
pub(super) fn socket_error(fd: RawFd) -> i32 {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes the call expects.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc < 0 { errno() } else { value }
}

/// `O_NONBLOCK` on the socket's open file (an accept on a listener must never block the
/// shard, even if another thread took the connection the readiness announced).
pub(super) fn set_nonblocking(fd: RawFd) -> Result<(), i32> {
    let mut on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one live c_int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}
