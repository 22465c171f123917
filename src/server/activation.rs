//! Listening sockets a server takes over instead of binding them: systemd socket activation
//! (`LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`), descriptors named on the command line
//! (`--listen-fd N`), or the sockets a running percore hands to its successor during a hot
//! restart (see `upgrade`).
//!
//! Every descriptor is checked before use: open, a socket, of an internet family (IPv4 or
//! IPv6), a stream (TCP) socket, and listening (`SO_ACCEPTCONN`). Anything else stops the
//! start with one line naming the descriptor and what it is instead (exit status 2).
//!
//! # Shards and inherited sockets
//!
//! Binding, percore gives each shard its own socket of one `SO_REUSEPORT` group. Inherited
//! sockets are spread over the shards instead: with as many sockets as shards (a percore
//! predecessor with the same shard count hands over exactly its group), shard `i` takes
//! socket `i`; with more, shard `i` takes sockets `i`, `i + n`, ...; with fewer (systemd's
//! usual single socket), shard `i` takes a duplicate of socket `i mod k`, and the shards
//! sharing a socket each arm their own multishot accept on it: the kernel wakes one waiter
//! per connection. What steering does then:
//!
//! - `reuseport`: with one socket per shard, the kernel's 4-tuple hash as usual; with
//!   shared sockets, the kernel's wake-up order among the shards waiting on a socket.
//! - `cpu`: needs one socket per shard in one reuseport group (the cBPF program picks the
//!   socket of the CPU); otherwise it falls back to `reuseport`, said in the report.
//! - `balanced`: unchanged: each accepted connection is placed on the least-loaded shard.
//! - The stall detector takes connections queued on a stalled shard's socket in every case.

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    os::fd::{AsFd, AsRawFd, OwnedFd, RawFd},
    sync::mpsc,
    time::Duration,
};

use super::{
    ServerBuilder, ServerHandle,
    builder::{Front, accept_loop},
};
use crate::{
    error::Error,
    net::{Steering, TcpListener, TcpStream},
    sys,
};

/// How long the shards may take to start accepting on inherited sockets.
const ARM_TIMEOUT: Duration = Duration::from_secs(10);

/// systemd passes descriptors from 3 on (`SD_LISTEN_FDS_START`).
const SD_LISTEN_FDS_START: RawFd = 3;
/// Descriptors taken from one source at most.
pub(crate) const MAX_INHERITED: usize = 64;
/// The `LISTEN_FDNAMES` name (systemd's `FileDescriptorName=`) of a socket that is the
/// admin listener rather than a service listener.
pub const ADMIN_FD_NAME: &str = "admin";

/// Listening sockets handed to this process, checked, with their addresses; give them to
/// [`ServerBuilder::inherit`](super::ServerBuilder::inherit).
pub struct InheritedListeners {
    /// Where they came from, for messages (`systemd`, `--listen-fd`, `hot restart from PATH`).
    pub(crate) origin: String,
    pub(crate) service: Vec<(OwnedFd, SocketAddr)>,
    pub(crate) admin: Option<(OwnedFd, SocketAddr)>,
    /// The predecessor to tell once this process serves (hot restart only).
    pub(crate) successor_of: Option<super::upgrade::Predecessor>,
}

impl fmt::Debug for InheritedListeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InheritedListeners")
            .field("origin", &self.origin)
            .field("service", &self.addrs())
            .field("admin", &self.admin.as_ref().map(|(_, a)| *a))
            .finish()
    }
}

impl InheritedListeners {
    /// The sockets systemd passed (socket activation), or `None` when this process was not
    /// socket-activated (`LISTEN_PID` unset or naming another process). A socket named
    /// [`ADMIN_FD_NAME`] in `LISTEN_FDNAMES` becomes the admin listener.
    pub fn from_systemd() -> Result<Option<InheritedListeners>, Error> {
        let var = |name| std::env::var(name).ok();
        let Some(count) = systemd_count(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            sys::inherit::pid(),
        )
        .map_err(Error::Config)?
        else {
            return Ok(None);
        };
        let names = var("LISTEN_FDNAMES").unwrap_or_default();
        let names: Vec<&str> = names.split(':').collect();
        let mut listeners = InheritedListeners::empty("systemd socket activation");
        for i in 0..count {
            let fd = SD_LISTEN_FDS_START + i as RawFd;
            let name = names.get(i).copied().filter(|n| !n.is_empty());
            let what = match name {
                Some(name) => format!("fd {fd} ({name})"),
                None => format!("fd {fd}"),
            };
            let owned = adopt_checked(fd, &listeners.origin, &what)?;
            listeners.push(owned, name == Some(ADMIN_FD_NAME), &what)?;
        }
        if listeners.service.is_empty() {
            return Err(Error::Config(format!(
                "{}: no service socket among the {count} passed (only `{ADMIN_FD_NAME}`)",
                listeners.origin
            )));
        }
        Ok(Some(listeners))
    }

    /// The listening sockets at descriptor numbers `fds` (`--listen-fd N`, repeatable).
    pub fn from_fds(fds: &[RawFd]) -> Result<InheritedListeners, Error> {
        let mut listeners = InheritedListeners::empty("--listen-fd");
        if fds.is_empty() || fds.len() > MAX_INHERITED {
            return Err(Error::Config(format!(
                "--listen-fd: give 1 to {MAX_INHERITED} descriptors (got {})",
                fds.len()
            )));
        }
        for (i, &fd) in fds.iter().enumerate() {
            if fds[..i].contains(&fd) {
                return Err(Error::Config(format!("--listen-fd: fd {fd} given twice")));
            }
            let what = format!("fd {fd}");
            let owned = adopt_checked(fd, &listeners.origin, &what)?;
            listeners.push(owned, false, &what)?;
        }
        Ok(listeners)
    }

    pub(crate) fn empty(origin: impl Into<String>) -> Self {
        InheritedListeners {
            origin: origin.into(),
            service: Vec::new(),
            admin: None,
            successor_of: None,
        }
    }

    /// Checks `fd` and adds it as a service socket, or as the admin listener.
    pub(crate) fn push(&mut self, fd: OwnedFd, admin: bool, what: &str) -> Result<(), Error> {
        check(&fd, &self.origin, what)?;
        let addr = sys::socket::local_addr(fd.as_raw_fd()).map_err(|e| {
            Error::Config(format!(
                "{}: {what}: its address is unknown: {e}",
                self.origin
            ))
        })?;
        if admin {
            if self.admin.is_some() {
                return Err(Error::Config(format!(
                    "{}: two admin sockets ({what} is the second)",
                    self.origin
                )));
            }
            self.admin = Some((fd, addr));
        } else {
            self.service.push((fd, addr));
        }
        Ok(())
    }

    /// The addresses of the service sockets, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.service.iter().map(|(_, a)| *a).collect()
    }

    /// The admin listener's address, when one was passed.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, a)| *a)
    }

    /// Where the sockets came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The number of descriptors systemd passed to this process, from the values of
/// `LISTEN_PID` and `LISTEN_FDS`: `None` when not activated (no `LISTEN_PID`, or one that
/// names another process: the variables were inherited from a parent).
pub(crate) fn systemd_count(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    my_pid: u32,
) -> Result<Option<usize>, String> {
    let Some(pid) = listen_pid else {
        return Ok(None);
    };
    let pid: u32 = pid.trim().parse().map_err(|_| {
        format!("systemd socket activation: LISTEN_PID={pid:?} is not a process id")
    })?;
    if pid != my_pid {
        return Ok(None);
    }
    let Some(fds) = listen_fds else {
        return Err("systemd socket activation: LISTEN_PID is set but LISTEN_FDS is not".into());
    };
    match fds.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_INHERITED).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "systemd socket activation: LISTEN_FDS={fds:?} is not a count in 1..={MAX_INHERITED}"
        )),
    }
}

fn adopt_checked(fd: RawFd, origin: &str, what: &str) -> Result<OwnedFd, Error> {
    // Checked before it is adopted, so a descriptor that is not ours to take (a file the
    // runtime opened) is left alone.
    if fd < 0 || !sys::inherit::is_open(fd) {
        return Err(Error::Config(format!(
            "{origin}: {what} is not an open descriptor"
        )));
    }
    let facts = sys::inherit::socket_facts(fd).map_err(|e| {
        Error::Config(if e.raw_os_error() == Some(libc::ENOTSOCK) {
            format!("{origin}: {what} is not a socket")
        } else {
            format!("{origin}: {what}: {e}")
        })
    })?;
    if let Some(refusal) = facts.refusal() {
        return Err(Error::Config(format!("{origin}: {what} is {refusal}")));
    }
    sys::inherit::adopt(fd).map_err(|e| Error::Config(format!("{origin}: {what}: {e}")))
}

fn check(fd: &OwnedFd, origin: &str, what: &str) -> Result<(), Error> {
    let facts = sys::inherit::socket_facts(fd.as_raw_fd())
        .map_err(|e| Error::Config(format!("{origin}: {what}: {e}")))?;
    match facts.refusal() {
        Some(refusal) => Err(Error::Config(format!("{origin}: {what} is {refusal}"))),
        None => Ok(()),
    }
}

/// [`ServerBuilder::serve`] on inherited sockets. The shards start with no listener and
/// are given their sockets once every one of them runs, so a start that fails half-way has
/// accepted nothing (during a hot restart the predecessor goes on serving them).
pub(crate) fn serve_inherited<H, Fut>(
    mut builder: ServerBuilder,
    cpus: &[Option<usize>],
    mut inherited: InheritedListeners,
    handler: H,
) -> Result<ServerHandle, Error>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let shards = cpus.len();
    let addrs = inherited.addrs();
    let sockets: Vec<OwnedFd> = inherited.service.drain(..).map(|(fd, _)| fd).collect();
    if sockets.is_empty() {
        return Err(Error::Config(format!(
            "{}: no listening socket to serve",
            inherited.origin
        )));
    }
    if builder.steering == Steering::Cpu {
        if sockets.len() == shards {
            builder.attach_cpu_program(&sockets[0], cpus);
        } else {
            builder.cpu_fallback(format!(
                "cpu steering: {} inherited socket(s) for {shards} shards (it needs one per shard in one reuseport group); shards share the sockets and the kernel's wake-up order spreads connections",
                sockets.len()
            ));
        }
    }
    builder.listeners_note = Some(format!(
        "{} socket(s) from {} ({}), spread over {shards} shards",
        sockets.len(),
        inherited.origin,
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let handover = builder.handover_of(&sockets)?;
    let per_shard = spread(&sockets, shards)
        .map_err(|e| Error::io("sharing an inherited socket among the shards", e))?;
    drop(sockets);
    let mut handle = builder.clone().start(|_| Ok(std::future::ready(())))?;
    if let Err(e) = arm_all(&handle, per_shard, handler, builder.front()) {
        handle.stop_within(Duration::ZERO);
        let _ = handle.join();
        return Err(e);
    }
    handle.set_listen_addr(addrs[0]);
    if let Some(predecessor) = inherited.successor_of.take()
        && let Err(e) = predecessor.confirm()
    {
        // This process serves either way; the predecessor may have gone meanwhile.
        tracing::warn!("{e}");
    }
    handle.offer_upgrade(&builder, handover, None);
    Ok(handle)
}

/// Gives each shard its sockets (through its inbox, run on the shard) and waits until
/// every shard accepts on them.
fn arm_all<H, Fut>(
    handle: &ServerHandle,
    per_shard: Vec<Vec<OwnedFd>>,
    handler: H,
    front: Front,
) -> Result<(), Error>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (tx, rx) = mpsc::channel();
    let count = per_shard.len();
    for (id, fds) in per_shard.into_iter().enumerate() {
        let (tx, handler, front) = (tx.clone(), handler.clone(), front.clone());
        let posted = handle.run_on_shard(id, move || {
            let _ = tx.send((id, arm_here(fds, handler, front)));
        });
        if !posted {
            return Err(Error::Config(format!(
                "shard {id} stopped before it got its listening sockets"
            )));
        }
    }
    drop(tx);
    for _ in 0..count {
        match rx.recv_timeout(ARM_TIMEOUT) {
            Ok((_, Ok(()))) => {}
            Ok((id, Err(e))) => {
                return Err(Error::io(
                    format!("shard {id}: accepting on an inherited socket"),
                    e,
                ));
            }
            Err(_) => {
                return Err(Error::Config(format!(
                    "the shards did not all accept on the inherited sockets within {ARM_TIMEOUT:?}"
                )));
            }
        }
    }
    Ok(())
}

/// On a shard: adopts its sockets and spawns one accept loop for each.
fn arm_here<H, Fut>(fds: Vec<OwnedFd>, handler: H, front: Front) -> std::io::Result<()>
where
    H: Fn(TcpStream) -> Fut + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    for fd in fds {
        let listener = TcpListener::from_listening(fd)?;
        crate::task::spawn(accept_loop(listener, handler.clone(), front.clone()));
    }
    Ok(())
}

/// Spreads `sockets` over `shards` shards (see the module docs): each shard's sockets, in
/// shard order. Every shard gets at least one.
pub(crate) fn spread(sockets: &[OwnedFd], shards: usize) -> std::io::Result<Vec<Vec<OwnedFd>>> {
    let mut per_shard: Vec<Vec<OwnedFd>> = (0..shards).map(|_| Vec::new()).collect();
    if sockets.is_empty() || shards == 0 {
        return Ok(per_shard);
    }
    for (i, socket) in sockets.iter().enumerate() {
        per_shard[i % shards].push(sys::inherit::dup(socket.as_fd())?);
    }
    for i in sockets.len()..shards {
        per_shard[i].push(sys::inherit::dup(sockets[i % sockets.len()].as_fd())?);
    }
    Ok(per_shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_variables_are_read_strictly() {
        assert_eq!(systemd_count(None, Some("1"), 7), Ok(None));
        // The variables were meant for another process (a parent that was activated).
        assert_eq!(systemd_count(Some("8"), Some("1"), 7), Ok(None));
        assert_eq!(systemd_count(Some("7"), Some("2"), 7), Ok(Some(2)));
        assert_eq!(systemd_count(Some(" 7 "), Some("1\n"), 7), Ok(Some(1)));
        assert!(
            systemd_count(Some("x"), Some("1"), 7)
                .unwrap_err()
                .contains("LISTEN_PID")
        );
        assert!(
            systemd_count(Some("7"), None, 7)
                .unwrap_err()
                .contains("LISTEN_FDS")
        );
        assert!(
            systemd_count(Some("7"), Some("0"), 7)
                .unwrap_err()
                .contains("LISTEN_FDS=\"0\"")
        );
        assert!(systemd_count(Some("7"), Some("65"), 7).is_err());
        assert!(systemd_count(Some("7"), Some("-1"), 7).is_err());
    }

    fn listeners(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| OwnedFd::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap()))
            .collect()
    }

    fn addr(fd: &OwnedFd) -> SocketAddr {
        sys::socket::local_addr(fd.as_raw_fd()).unwrap()
    }

    #[test]
    fn fewer_sockets_than_shards_are_shared_and_more_are_dealt_out() {
        let one = listeners(1);
        let spread3 = spread(&one, 3).unwrap();
        assert!(spread3.iter().all(|s| s.len() == 1));
        assert!(spread3.iter().all(|s| addr(&s[0]) == addr(&one[0])));

        let five = listeners(5);
        let spread2 = spread(&five, 2).unwrap();
        let got: Vec<Vec<SocketAddr>> = spread2
            .iter()
            .map(|s| s.iter().map(addr).collect())
            .collect();
        assert_eq!(
            got,
            vec![
                vec![addr(&five[0]), addr(&five[2]), addr(&five[4])],
                vec![addr(&five[1]), addr(&five[3])]
            ]
        );
        let same = spread(&five[..2], 2).unwrap();
        assert_eq!(addr(&same[1][0]), addr(&five[1]));
    }

    #[test]
    fn descriptors_that_are_no_tcp_listeners_are_refused_with_what_they_are() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = adopt_checked(udp.as_raw_fd(), "--listen-fd", "fd X").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .starts_with("--listen-fd: fd X is an IPv4 socket of type"),
            "{err}"
        );
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let err = adopt_checked(file.as_raw_fd(), "--listen-fd", "fd Y").unwrap_err();
        assert_eq!(err.to_string(), "--listen-fd: fd Y is not a socket");
        let err = adopt_checked(i32::MAX - 3, "systemd", "fd Z").unwrap_err();
        assert_eq!(err.to_string(), "systemd: fd Z is not an open descriptor");
        let err = InheritedListeners::from_fds(&[]).unwrap_err();
        assert!(err.to_string().contains("give 1 to"));
    }
}
