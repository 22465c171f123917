//! TCP socket setup and `sockaddr` conversion; the I/O itself goes through
//! io_uring, so sockets stay in blocking mode.

use std::{
    io, mem,
    net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

use super::{os_error, with_context};

/// How a listening socket is configured.
#[derive(Debug, Clone)]
pub(crate) struct ListenOptions {
    /// Set `SO_REUSEPORT` so every shard can bind its own listener and the
    /// kernel balances connections between them.
    pub reuse_port: bool,
    /// `listen(2)` backlog; the kernel caps it at `net.core.somaxconn`.
    pub backlog: i32,
    /// Set `TCP_NODELAY` on the listener; Linux copies it to accepted sockets.
    pub nodelay: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            reuse_port: false,
            backlog: 4096,
            nodelay: false,
        }
    }
}

/// Creates a bound, listening TCP socket for `addr`.
pub(crate) fn tcp_listener(addr: SocketAddr, opts: &ListenOptions) -> io::Result<OwnedFd> {
    let fd = tcp_socket_for(&addr)?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    set_bool_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)
        .map_err(|e| with_context(e, &format!("setsockopt SO_REUSEADDR on {addr}")))?;
    if opts.reuse_port {
        set_bool_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, true)
            .map_err(|e| with_context(e, &format!("setsockopt SO_REUSEPORT on {addr}")))?;
    }
    if addr.is_ipv6() {
        // Dual-stack: a `[::]` listener also accepts IPv4-mapped peers,
        // regardless of the `net.ipv6.bindv6only` default.
        set_bool_opt(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, false)
            .map_err(|e| with_context(e, &format!("setsockopt IPV6_V6ONLY on {addr}")))?;
    }
    if opts.nodelay {
        set_nodelay(raw, true)?;
    }
    let sa = SockAddrBuf::from_socket_addr(&addr);
    // SAFETY: `sa` holds a valid sockaddr of `sa.len()` bytes for `addr`'s
    // family, and it outlives the call.
    let rc = unsafe { libc::bind(raw, sa.as_ptr(), sa.len()) };
    if rc != 0 {
        return Err(bind_error(io::Error::last_os_error(), addr));
    }
    // SAFETY: `raw` is a valid socket owned by `fd` for the duration.
    let rc = unsafe { libc::listen(raw, opts.backlog) };
    if rc != 0 {
        return Err(with_context(
            io::Error::last_os_error(),
            &format!("listen on {addr}"),
        ));
    }
    Ok(fd)
}

/// Checks that no socket listens on `addr` yet: binds a probe socket with `SO_REUSEADDR`
/// but **without** `SO_REUSEPORT`. Linux refuses that bind (`EADDRINUSE`) while any socket
/// listens on an overlapping address and port, whatever that socket's options; a socket
/// that is merely bound with `SO_REUSEADDR`, or in `TIME_WAIT` (a server killed a moment
/// ago), does not refuse it. The probe stays bound and never listens: keep it until the
/// real listeners listen (they join past it, both having `SO_REUSEADDR`), then drop it.
pub(crate) fn probe_unlistened(addr: SocketAddr) -> io::Result<OwnedFd> {
    let fd = tcp_socket_for(&addr)?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    set_bool_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, true)
        .map_err(|e| with_context(e, &format!("setsockopt SO_REUSEADDR on {addr}")))?;
    if addr.is_ipv6() {
        // The same dual-stack address space as the listeners will use.
        set_bool_opt(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, false)
            .map_err(|e| with_context(e, &format!("setsockopt IPV6_V6ONLY on {addr}")))?;
    }
    let sa = SockAddrBuf::from_socket_addr(&addr);
    // SAFETY: `sa` holds a valid sockaddr of `sa.len()` bytes for `addr`'s
    // family, and it outlives the call.
    let rc = unsafe { libc::bind(raw, sa.as_ptr(), sa.len()) };
    if rc != 0 {
        return Err(bind_error(io::Error::last_os_error(), addr));
    }
    Ok(fd)
}

/// Turns a `bind` failure into a message an operator can act on.
fn bind_error(err: io::Error, addr: SocketAddr) -> io::Error {
    let msg = match err.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "address {addr} is already in use (another socket is listening on it; \
             stop it, choose another --listen address, or share it on purpose with \
             --reuse-port-shared / ServerBuilder::reuse_port_shared)"
        ),
        Some(libc::EACCES) => format!(
            "permission denied binding {addr} (ports below 1024 are privileged: \
             run with CAP_NET_BIND_SERVICE or choose a port >= 1024): {err}"
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "address {addr} is not available on this host (no local interface has it): {err}"
        ),
        _ => format!("bind {addr}: {err}"),
    };
    io::Error::new(err.kind(), msg)
}

/// Creates an unbound TCP socket of `addr`'s family, for outbound connects.
pub(crate) fn tcp_socket_for(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain syscall with constant arguments; no memory is passed.
    let raw = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(os_error(&format!("socket for {addr}")));
    }
    // SAFETY: `socket` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A `sockaddr_storage` plus its meaningful length, for passing to syscalls
/// and io_uring ops that take `(const sockaddr *, socklen_t)`.
#[derive(Clone)]
pub(crate) struct SockAddrBuf {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl SockAddrBuf {
    /// Encodes `addr` in the kernel's layout (network byte order).
    pub(crate) fn from_socket_addr(addr: &SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned
                // for sockaddr_in (that is its purpose).
                unsafe {
                    std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin);
                }
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned
                // for sockaddr_in6.
                unsafe {
                    std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6);
                }
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            storage,
            len: len as libc::socklen_t,
        }
    }

    /// An empty buffer sized for any address family, for `accept`-style
    /// calls that fill it in; set the length with [`Self::len_mut`].
    pub(crate) fn zeroed() -> Self {
        Self {
            // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&raw mut self.storage).cast()
    }

    pub(crate) fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// The length slot, for calls that take `socklen_t *` (in: capacity,
    /// out: actual length).
    pub(crate) fn len_mut(&mut self) -> &mut libc::socklen_t {
        &mut self.len
    }

    pub(crate) fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        sockaddr_to_socket_addr(&self.storage, self.len)
    }
}

impl std::fmt::Debug for SockAddrBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_socket_addr() {
            Ok(a) => write!(f, "SockAddrBuf({a})"),
            Err(_) => write!(
                f,
                "SockAddrBuf(family={}, len={})",
                self.storage.ss_family, self.len
            ),
        }
    }
}

/// Decodes an `AF_INET`/`AF_INET6` address filled in by the kernel.
pub(crate) fn sockaddr_to_socket_addr(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> io::Result<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, the
            // length covers it, and sockaddr_storage is aligned for it.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unsupported socket address (family {family}, length {len})"),
        )),
    }
}

/// The address `fd` is bound to (e.g. to learn the port after binding `:0`).
pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    let mut buf = SockAddrBuf::zeroed();
    // SAFETY: `buf` provides sockaddr_storage-sized space and its length slot
    // states that capacity; both outlive the call.
    let rc = unsafe { libc::getsockname(fd, buf.as_mut_ptr(), buf.len_mut()) };
    if rc != 0 {
        return Err(os_error(&format!("getsockname fd {fd}")));
    }
    buf.to_socket_addr()
}

/// The address of the peer `fd` is connected to.
pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    let mut buf = SockAddrBuf::zeroed();
    // SAFETY: as in `local_addr`.
    let rc = unsafe { libc::getpeername(fd, buf.as_mut_ptr(), buf.len_mut()) };
    if rc != 0 {
        return Err(os_error(&format!("getpeername fd {fd}")));
    }
    buf.to_socket_addr()
}

pub(crate) fn set_nodelay(fd: RawFd, on: bool) -> io::Result<()> {
    set_bool_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on)
        .map_err(|e| with_context(e, &format!("setsockopt TCP_NODELAY fd {fd}")))
}

pub(crate) fn shutdown(fd: RawFd, how: Shutdown) -> io::Result<()> {
    let how_raw = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: plain syscall on an integer descriptor; no memory is passed.
    let rc = unsafe { libc::shutdown(fd, how_raw) };
    if rc != 0 {
        return Err(os_error(&format!("shutdown({how:?}) fd {fd}")));
    }
    Ok(())
}

fn set_bool_opt(fd: RawFd, level: libc::c_int, name: libc::c_int, on: bool) -> io::Result<()> {
    let value = libc::c_int::from(on);
    // SAFETY: `value` is a live c_int and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        os::fd::AsRawFd,
    };

    use super::*;

    fn loopback0() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn two_reuseport_listeners_share_a_port() {
        let opts = ListenOptions {
            reuse_port: true,
            ..ListenOptions::default()
        };
        let a = tcp_listener(loopback0(), &opts).unwrap();
        let addr = local_addr(a.as_raw_fd()).unwrap();
        assert_ne!(addr.port(), 0);
        let b = tcp_listener(addr, &opts).unwrap();
        assert_eq!(local_addr(b.as_raw_fd()).unwrap(), addr);
    }

    #[test]
    fn addr_in_use_has_actionable_message() {
        let opts = ListenOptions::default();
        let a = tcp_listener(loopback0(), &opts).unwrap();
        let addr = local_addr(a.as_raw_fd()).unwrap();
        let err = tcp_listener(addr, &opts).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("address {addr} is already in use")),
            "{msg}"
        );
        assert!(msg.contains("--listen"), "{msg}");
    }

    #[test]
    fn sockaddr_round_trips() {
        for s in [
            "127.0.0.1:7000",
            "0.0.0.0:0",
            "10.1.2.3:65535",
            "[::1]:443",
            "[fe80::1%3]:8080",
            "[2001:db8::dead:beef]:1",
        ] {
            let addr: SocketAddr = s.parse().unwrap();
            let buf = SockAddrBuf::from_socket_addr(&addr);
            assert_eq!(buf.to_socket_addr().unwrap(), addr, "{s}");
            let expected_len = if addr.is_ipv4() {
                mem::size_of::<libc::sockaddr_in>()
            } else {
                mem::size_of::<libc::sockaddr_in6>()
            };
            assert_eq!(buf.len() as usize, expected_len);
        }
        // Byte order check against the kernel layout.
        let buf = SockAddrBuf::from_socket_addr(&"1.2.3.4:258".parse().unwrap());
        // SAFETY: test-only; buf holds a sockaddr_in.
        let sin = unsafe { &*buf.as_ptr().cast::<libc::sockaddr_in>() };
        assert_eq!(sin.sin_port.to_ne_bytes(), [1, 2]);
        assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [1, 2, 3, 4]);
    }

    #[test]
    fn rejects_unknown_family() {
        let buf = SockAddrBuf::zeroed();
        assert!(buf.to_socket_addr().is_err());
    }

    #[test]
    fn v6_listener_peer_and_options() {
        let Ok(l) = tcp_listener("[::1]:0".parse().unwrap(), &ListenOptions::default()) else {
            // No IPv6 loopback in this environment.
            return;
        };
        let addr = local_addr(l.as_raw_fd()).unwrap();
        let listener = std::net::TcpListener::from(l);
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert_eq!(
            peer_addr(server.as_raw_fd()).unwrap(),
            client.local_addr().unwrap()
        );
        set_nodelay(client.as_raw_fd(), true).unwrap();
        assert!(client.nodelay().unwrap());
        client.write_all(b"x").unwrap();
        shutdown(client.as_raw_fd(), Shutdown::Write).unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"x");
    }
}
