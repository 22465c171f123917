//! Descriptors a process did not open itself: listening sockets handed over by systemd
//! (socket activation), by `--listen-fd N`, or by a running percore during a hot restart.
//! Before such a descriptor is used it is checked to be what it claims: an open, listening,
//! stream socket of an internet family.

use std::{
    io, mem,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

use super::with_context;

/// The facts `getsockopt` gives about an inherited descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketFacts {
    /// `SO_DOMAIN`: `AF_INET`, `AF_INET6`, `AF_UNIX`, ...
    pub domain: i32,
    /// `SO_TYPE`: `SOCK_STREAM`, `SOCK_DGRAM`, ...
    pub kind: i32,
    /// `SO_ACCEPTCONN`: `listen(2)` was called on it.
    pub listening: bool,
}

impl SocketFacts {
    /// Why these facts do not make a TCP listener, or `None` when they do.
    pub(crate) fn refusal(&self) -> Option<String> {
        let family = match self.domain {
            libc::AF_INET => "IPv4",
            libc::AF_INET6 => "IPv6",
            libc::AF_UNIX => return Some("a Unix socket, not a TCP one".into()),
            other => return Some(format!("a socket of address family {other}, not IPv4/IPv6")),
        };
        if self.kind != libc::SOCK_STREAM {
            return Some(format!(
                "an {family} socket of type {} (datagram or raw), not a stream (TCP) socket",
                self.kind
            ));
        }
        if !self.listening {
            return Some(format!(
                "an {family} TCP socket that is not listening (listen(2) was not called)"
            ));
        }
        None
    }
}

/// Reads the domain, type and listening state of `fd`. `ENOTSOCK` when it is not a socket,
/// `EBADF` when it is not open.
pub(crate) fn socket_facts(fd: RawFd) -> io::Result<SocketFacts> {
    // The errors are the calls' own (ENOTSOCK, EBADF), unwrapped, so callers can tell them.
    Ok(SocketFacts {
        domain: int_opt(fd, libc::SO_DOMAIN)?,
        kind: int_opt(fd, libc::SO_TYPE)?,
        listening: int_opt(fd, libc::SO_ACCEPTCONN)? != 0,
    })
}

fn int_opt(fd: RawFd, name: libc::c_int) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes passed; getsockopt writes at
    // most `len` bytes into `value`. A bad fd is reported as EBADF, not undefined behaviour.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Whether `fd` is an open descriptor of this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads the descriptor flags; on a closed fd it fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Takes ownership of an inherited descriptor number after checking that it is open, and
/// marks it close-on-exec (systemd and `--listen-fd` hand it over without the flag; a
/// process this one spawns must not keep the listener alive).
///
/// The caller promises that nothing else in the process owns `fd` (it came from the
/// environment or the command line and is taken once).
pub(crate) fn adopt(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 || !is_open(fd) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `fd` is open (checked above) and, by this function's contract, owned by no
    // other object of this process; the `OwnedFd` becomes its one owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(owned.as_raw_fd(), true)?;
    Ok(owned)
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD read and write the descriptor flags only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(with_context(io::Error::last_os_error(), "fcntl(F_GETFD)"));
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(with_context(io::Error::last_os_error(), "fcntl(F_SETFD)"));
    }
    Ok(())
}

/// A second descriptor of the same open socket (close-on-exec): each shard that shares an
/// inherited listener arms its own accept on its own descriptor.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
        .map_err(|e| with_context(e, "dup of a listening socket"))
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_listening_tcp_socket_passes_and_others_are_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let facts = socket_facts(listener.as_raw_fd()).unwrap();
        assert_eq!(facts.domain, libc::AF_INET);
        assert!(facts.listening);
        assert_eq!(facts.refusal(), None);

        let connected = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let refusal = socket_facts(connected.as_raw_fd()).unwrap().refusal();
        assert!(refusal.unwrap().contains("not listening"));

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let refusal = socket_facts(udp.as_raw_fd()).unwrap().refusal().unwrap();
        assert!(refusal.contains("not a stream"), "{refusal}");

        let (unix, _) = std::os::unix::net::UnixStream::pair().unwrap();
        let refusal = socket_facts(unix.as_raw_fd()).unwrap().refusal().unwrap();
        assert!(refusal.contains("Unix"), "{refusal}");

        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let err = socket_facts(file.as_raw_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
    }

    #[test]
    fn a_descriptor_that_is_not_open_is_not_adopted() {
        // Far above any descriptor a test opens: reliably closed.
        let fd = i32::MAX - 7;
        assert!(!is_open(fd));
        assert_eq!(adopt(fd).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(adopt(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
