//! Hot restart (binary upgrade): a running percore hands its listening sockets to the
//! process that replaces it, so that no connection is refused during the switch.
//!
//! 1. The running process (`--upgrade-socket PATH`) listens on a Unix socket at `PATH`.
//!    `SIGUSR2` makes it start its successor itself: the same program (as resolved when it
//!    started, so a binary replaced on disk is the one that runs) with the same arguments
//!    and `--upgrade-from PATH`.
//! 2. The successor (`--upgrade-from PATH`) connects and receives, in one message, a header
//!    line and every listening socket (`SCM_RIGHTS`): the service's sockets in shard order
//!    and the admin listener, if any. It checks each one, starts its shards, and arms
//!    accepting on every shard.
//! 3. Once every shard accepts, it sends `READY`; the old process stops accepting at once
//!    (health checks answer 503, the admin thread ends) and drains its open connections
//!    within its drain deadline, then exits. It answers `STOPPING`, and the successor binds
//!    `PATH` anew for the next upgrade.
//!
//! Both processes accept on the same sockets for a moment: every connection is accepted
//! by exactly one of them, and connections arriving meanwhile wait in the socket's backlog.
//! A listener that stops accepting still serves the connections its last accept completions
//! brought (see `net::listener`), so none is dropped.
//!
//! When the successor fails before `READY` (bad arguments, a shard that cannot start, a
//! crash), the connection closes, the old process logs it and goes on serving, and a later
//! upgrade may be tried. It waits [`READY_TIMEOUT`] at most.

use std::{
    ffi::OsString,
    io::{self, Write},
    os::{
        fd::{AsFd, AsRawFd, OwnedFd, RawFd},
        unix::{
            fs::MetadataExt,
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use super::{activation::InheritedListeners, control::ServerControl};
use crate::{error::Error, sys};

/// The first word of the header line.
const MAGIC: &str = "PERCORE-UPGRADE/1";
/// How long the old process waits for its successor's `READY`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each side waits for the other's next line otherwise.
const LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest line either side sends.
const MAX_LINE: usize = 1024;
/// How often the upgrade thread looks whether the server is stopping.
const POLL_MS: i32 = 100;

/// How a running server offers its sockets to a successor; see the module docs.
#[derive(Clone, Debug)]
pub struct UpgradeConfig {
    /// The Unix socket the successor connects to.
    pub socket: PathBuf,
    /// What `SIGUSR2` runs (`--upgrade-from PATH` is appended); `None`: `SIGUSR2` is
    /// ignored with a warning, and successors are started by hand.
    pub successor: Option<SuccessorCommand>,
}

/// The program and arguments of a successor.
#[derive(Clone, Debug)]
pub struct SuccessorCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// The sockets the running process keeps to hand over (duplicates of its listeners).
pub(crate) struct Handover {
    pub(crate) service: Vec<OwnedFd>,
    pub(crate) admin: Option<OwnedFd>,
}

/// The old process, as its successor sees it: told once the successor serves.
pub(crate) struct Predecessor {
    stream: UnixStream,
    pid: u32,
    path: PathBuf,
}

/// Receives the listening sockets of the percore listening on `path` (`--upgrade-from`).
pub fn take_over(path: &Path) -> Result<InheritedListeners, Error> {
    let origin = format!("--upgrade-from {}", path.display());
    let fail = |what: String| Error::Config(format!("{origin}: {what}"));
    let stream = UnixStream::connect(path).map_err(|e| {
        fail(format!(
            "cannot connect ({e}); is a percore running with --upgrade-socket {}?",
            path.display()
        ))
    })?;
    stream
        .set_read_timeout(Some(LINE_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    let (line, fds) = read_line_with_fds(&stream).map_err(|e| fail(format!("no handover: {e}")))?;
    let header = Header::parse(&line).map_err(fail)?;
    if fds.len() != header.listeners + usize::from(header.admin) {
        return Err(fail(format!(
            "the header announces {} sockets but {} came",
            header.listeners + usize::from(header.admin),
            fds.len()
        )));
    }
    let mut listeners = InheritedListeners::empty(format!(
        "hot restart from pid {} ({})",
        header.pid,
        path.display()
    ));
    for (i, fd) in fds.into_iter().enumerate() {
        listeners.push(fd, i >= header.listeners, &format!("socket {i}"))?;
    }
    listeners.successor_of = Some(Predecessor {
        stream,
        pid: header.pid,
        path: path.to_path_buf(),
    });
    Ok(listeners)
}

impl Predecessor {
    /// Tells the old process that every shard accepts; it stops accepting and drains.
    pub(crate) fn confirm(mut self) -> Result<(), Error> {
        let line = format!("READY pid={}\n", sys::inherit::pid());
        self.stream.write_all(line.as_bytes()).map_err(|e| {
            Error::io(
                format!("telling pid {} that this process serves", self.pid),
                e,
            )
        })?;
        match read_line_with_fds(&self.stream) {
            Ok((line, _)) if line == "STOPPING" => {
                tracing::info!(
                    "hot restart: took over from pid {} ({}), which drains and exits",
                    self.pid,
                    self.path.display()
                );
                Ok(())
            }
            Ok((line, _)) => Err(Error::Config(format!(
                "hot restart: pid {} answered {line:?} instead of STOPPING",
                self.pid
            ))),
            Err(e) => Err(Error::io(
                format!(
                    "hot restart: waiting for pid {} to stop accepting",
                    self.pid
                ),
                e,
            )),
        }
    }
}

/// The header line: `PERCORE-UPGRADE/1 pid=N listeners=K admin=0|1`.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    pid: u32,
    listeners: usize,
    admin: bool,
}

impl Header {
    fn line(&self) -> String {
        format!(
            "{MAGIC} pid={} listeners={} admin={}\n",
            self.pid,
            self.listeners,
            u8::from(self.admin)
        )
    }

    fn parse(line: &str) -> Result<Header, String> {
        let mut words = line.split(' ');
        if words.next() != Some(MAGIC) {
            return Err(format!("not a percore upgrade socket (it said {line:?})"));
        }
        let mut field = |name: &str| -> Result<usize, String> {
            words
                .next()
                .and_then(|w| w.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("malformed handover header {line:?} (at `{name}`)"))
        };
        let pid = field("pid")?;
        let listeners = field("listeners")?;
        let admin = field("admin")?;
        if words.next().is_some()
            || !(1..=super::activation::MAX_INHERITED).contains(&listeners)
            || admin > 1
            || pid > u32::MAX as usize
        {
            return Err(format!("malformed handover header {line:?}"));
        }
        Ok(Header {
            pid: pid as u32,
            listeners,
            admin: admin == 1,
        })
    }
}

/// Reads one line (without its newline) and the descriptors that came with it. Reads a
/// byte at a time after the first message so that nothing past the line is consumed.
fn read_line_with_fds(stream: &UnixStream) -> io::Result<(String, Vec<OwnedFd>)> {
    let mut line = Vec::with_capacity(128);
    let mut fds = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let (n, mut got) = sys::fdpass::recv_with_fds(stream.as_fd(), &mut byte)?;
        fds.append(&mut got);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other process closed the connection",
            ));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
    String::from_utf8(line)
        .map(|l| (l, fds))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "line is not UTF-8"))
}

/// The old process's side: listens on `listener` (bound at `config.socket` by
/// [`bind_unix`]) and hands `handover` to the first successor that becomes ready, from a
/// thread that ends when the server stops or the handover is done.
pub(crate) fn spawn_listener(
    config: &UpgradeConfig,
    listener: UnixListener,
    handover: Handover,
    control: Arc<ServerControl>,
) -> Result<thread::JoinHandle<()>, Error> {
    let path = config.socket.clone();
    let ino = std::fs::metadata(&path).map(|m| m.ino()).ok();
    if let Some(successor) = config.successor.clone() {
        let spawning = Arc::new(AtomicBool::new(false));
        let socket = path.clone();
        let control_for_signal = control.clone();
        let _ = control.on_upgrade_signal.set(Box::new(move || {
            if control_for_signal.handed_over.load(Ordering::SeqCst) {
                tracing::warn!("SIGUSR2: already handed over to a successor; ignored");
            } else if spawning.swap(true, Ordering::SeqCst) {
                tracing::warn!("SIGUSR2: a successor is already starting; ignored");
            } else {
                spawn_successor(&successor, &socket, spawning.clone());
            }
        }));
    }
    thread::Builder::new()
        .name("percore-upgrade".into())
        .spawn(move || {
            serve_handovers(&listener, &handover, &control);
            // The socket file is this process's unless a successor bound it anew.
            let ours = std::fs::metadata(&path).map(|m| m.ino()).ok() == ino;
            if ours && !control.handed_over.load(Ordering::SeqCst) {
                let _ = std::fs::remove_file(&path);
            }
            // Dropping `handover` closes the duplicates: a draining server's sockets close
            // once its shards let go of them.
        })
        .map_err(|e| Error::io("spawning the upgrade thread", e))
}

/// Binds the upgrade socket at `path`, replacing a stale socket file (one nobody listens
/// on, or the predecessor's during a hot restart, which it no longer needs).
pub(crate) fn bind_unix(path: &Path) -> Result<UnixListener, Error> {
    let context = || format!("--upgrade-socket {}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "{}: the path exists and is not a socket",
                context()
            )));
        }
        std::fs::remove_file(path).map_err(|e| Error::io(context(), e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::io(context(), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(context(), e))?;
    Ok(listener)
}

fn serve_handovers(listener: &UnixListener, handover: &Handover, control: &ServerControl) {
    let mut ready = Vec::with_capacity(1);
    let fd = listener.as_raw_fd();
    while !control.stop_requested() {
        match sys::steer::poll_readable(&[fd], POLL_MS, &mut ready) {
            Ok(()) if ready.first() == Some(&true) => {}
            Ok(()) => continue,
            Err(e) => {
                tracing::warn!("upgrade socket: poll failed: {e}; hot restart is off");
                return;
            }
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!("upgrade socket: accept failed: {e}");
                continue;
            }
        };
        match hand_over(stream, handover, control) {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("hot restart: the successor did not take over ({e}); still serving")
            }
        }
    }
}

/// Sends the sockets, waits for `READY`, then stops this server. `Err` leaves it serving.
fn hand_over(stream: UnixStream, handover: &Handover, control: &ServerControl) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(LINE_TIMEOUT))?;
    let header = Header {
        pid: sys::inherit::pid(),
        listeners: handover.service.len(),
        admin: handover.admin.is_some(),
    }
    .line();
    let fds: Vec<RawFd> = handover
        .service
        .iter()
        .chain(handover.admin.iter())
        .map(AsRawFd::as_raw_fd)
        .collect();
    let sent = sys::fdpass::send_with_fds(stream.as_fd(), header.as_bytes(), &fds)?;
    (&stream).write_all(&header.as_bytes()[sent..])?;
    tracing::info!("hot restart: sockets sent to a successor; waiting for it to serve");
    let deadline = Instant::now() + READY_TIMEOUT;
    stream.set_read_timeout(Some(Duration::from_millis(POLL_MS as u64)))?;
    let line = loop {
        match read_line_with_fds(&stream) {
            Ok((line, _)) => break line,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if control.stop_requested() {
                    return Err(io::Error::other("this server is stopping anyway"));
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("not ready within {READY_TIMEOUT:?}"),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    };
    if !line.starts_with("READY ") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it said {line:?} instead of READY"),
        ));
    }
    control.handed_over.store(true, Ordering::SeqCst);
    control.request_stop();
    tracing::info!(
        "hot restart: the successor serves ({line}); no longer accepting, draining within {:?}",
        control.drain_timeout
    );
    let _ = (&stream).write_all(b"STOPPING\n");
    Ok(())
}

/// `SIGUSR2`: starts the successor; a thread reaps it and logs how it ended if it failed.
fn spawn_successor(command: &SuccessorCommand, socket: &Path, spawning: Arc<AtomicBool>) {
    let mut child = Command::new(&command.program);
    child
        .args(&command.args)
        .arg("--upgrade-from")
        .arg(socket)
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES");
    match child.spawn() {
        Ok(mut child) => {
            tracing::info!(
                "SIGUSR2: started {} (pid {}) to take over",
                command.program.display(),
                child.id()
            );
            let reaper = thread::Builder::new()
                .name("percore-successor".into())
                .spawn(move || {
                    // Once the successor took over this process stops; the successor lives on
                    // (re-parented) and this thread ends with the process.
                    match child.wait() {
                        Ok(status) if !status.success() => tracing::warn!(
                            "hot restart: the successor (pid {}) exited with {status}; still serving",
                            child.id()
                        ),
                        _ => {}
                    }
                    spawning.store(false, Ordering::SeqCst);
                });
            if let Err(e) = reaper {
                tracing::warn!("hot restart: no thread to wait for the successor: {e}");
            }
        }
        Err(e) => {
            tracing::warn!(
                "SIGUSR2: cannot start {}: {e}; still serving",
                command.program.display()
            );
            spawning.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_anything_else_is_refused() {
        let header = Header {
            pid: 42,
            listeners: 4,
            admin: true,
        };
        let line = header.line();
        assert_eq!(line, "PERCORE-UPGRADE/1 pid=42 listeners=4 admin=1\n");
        assert_eq!(Header::parse(line.trim_end()), Ok(header));
        for bad in [
            "",
            "HELLO",
            "PERCORE-UPGRADE/2 pid=1 listeners=1 admin=0",
            "PERCORE-UPGRADE/1 pid=1 listeners=0 admin=0",
            "PERCORE-UPGRADE/1 pid=1 listeners=65 admin=0",
            "PERCORE-UPGRADE/1 pid=1 listeners=1 admin=2",
            "PERCORE-UPGRADE/1 pid=1 listeners=1",
            "PERCORE-UPGRADE/1 pid=1 listeners=1 admin=0 extra",
            "PERCORE-UPGRADE/1 pid=x listeners=1 admin=0",
            "PERCORE-UPGRADE/1 listeners=1 pid=1 admin=0",
        ] {
            assert!(Header::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
