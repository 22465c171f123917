//! A stalled owner shard (R24), through `percore kv`: one shard's thread is stopped (a
//! ptrace interrupt stops that thread alone) while clients flood commands for keys it owns.
//! The other shard gives the flood backpressure instead of buffering it (it stops reading
//! the flooding connections; the server's memory stays flat), keeps answering commands for
//! its own keys, and once the owner runs again every command is answered exactly once: no
//! deadlock, nothing lost.

#[path = "support/binary.rs"]
mod binary;

use std::{
    io::{BufRead, BufReader, ErrorKind, Write},
    net::TcpStream,
    thread,
    time::{Duration, Instant},
};

use binary::{Server, rss_kib};

/// `INCR key` in RESP.
fn incr(key: &str) -> Vec<u8> {
    format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).into_bytes()
}

fn connect(server: &Server) -> BufReader<TcpStream> {
    let s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

/// One reply line without its CRLF, or `None` when none comes within the read timeout.
fn line(conn: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match conn.read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end().to_string()),
        _ => None,
    }
}

/// One integer reply, or `None` when none comes within the read timeout.
fn integer(conn: &mut BufReader<TcpStream>) -> Option<i64> {
    line(conn)?.strip_prefix(':')?.parse().ok()
}

/// The id of `pid`'s thread named `name`.
fn thread_id(pid: u32, name: &str) -> Option<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })?
        .file_name()
        .to_str()?
        .parse()
        .ok()
}

/// Stops one thread of a child process (and only that thread) until dropped. Must be
/// created and dropped on the same thread: ptrace belongs to the thread that attached.
struct StoppedThread(i32);

impl StoppedThread {
    fn stop(tid: i32) -> std::io::Result<StoppedThread> {
        // SAFETY: ptrace(2) on a thread of our own child; no memory is passed.
        let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above; the thread is now our tracee.
        let rc = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut status = 0;
        // SAFETY: waits for our tracee's stop; `status` outlives the call.
        let waited = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        assert_eq!(waited, tid, "the thread stopped");
        Ok(StoppedThread(tid))
    }
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        // SAFETY: detaching our own tracee, in its ptrace-stop, resumes it.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0) };
    }
}

const FLOODERS: usize = 2;
/// What each flooding client tries to send while the owner is stopped.
const FLOOD_BYTES: usize = 512 << 10;

#[test]
fn a_stalled_owner_pushes_back_on_its_callers_and_loses_nothing() {
    let server = Server::start("kv", &["--shards", "2"]);
    // Connections made and served before the stop, on both shards.
    let mut conns: Vec<_> = (0..128)
        .map(|_| {
            let mut c = connect(&server);
            c.get_mut().write_all(b"PING\r\n").unwrap();
            assert_eq!(line(&mut c).as_deref(), Some("+PONG"));
            c
        })
        .collect();
    let tid = thread_id(server.pid(), "percore-shard-1").expect("shard 1's thread");
    let stopped = match StoppedThread::stop(tid) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: this host does not let a test ptrace its child ({e})");
            return;
        }
    };

    // Which connections shard 0 serves: those that still answer. The others wait on the
    // stopped shard 1 (their PING is answered after it resumes).
    let (mut on_zero, mut on_one) = (Vec::new(), Vec::new());
    for c in &mut conns {
        c.get_mut().write_all(b"PING\r\n").unwrap();
    }
    // Shard 0 answers in well under this; shard 1 not at all while it is stopped.
    thread::sleep(Duration::from_millis(300));
    for mut c in conns.drain(..) {
        c.get_mut()
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        match line(&mut c).as_deref() {
            Some("+PONG") => on_zero.push(c),
            _ => on_one.push(c),
        }
    }
    assert!(
        on_zero.len() >= 24,
        "{} connections on shard 0",
        on_zero.len()
    );

    // A key answered at once is shard 0's own; one that is not answered within 300 ms
    // belongs to the stopped shard 1 (its probe connection then waits for it).
    let (mut local, mut remote, mut remote_probe) = (None, None, None);
    for k in 0..16 {
        let key = format!("owner:{k}");
        let mut probe = on_zero.pop().unwrap();
        probe
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        probe.get_mut().write_all(&incr(&key)).unwrap();
        match integer(&mut probe) {
            Some(1) if local.is_none() => local = Some(key),
            Some(_) => {}
            None if remote.is_none() => {
                remote = Some(key);
                remote_probe = Some(probe);
            }
            None => on_one.push(probe),
        }
        if local.is_some() && remote.is_some() {
            break;
        }
    }
    let (local, remote) = (
        local.expect("a key of shard 0"),
        remote.expect("a key of shard 1"),
    );
    let mut remote_probe = remote_probe.unwrap();

    // Flood the stopped owner: every command goes to shard 1 through the mesh.
    let rss_before = rss_kib(server.pid());
    let command = incr(&remote);
    let stream: Vec<u8> = command
        .iter()
        .copied()
        .cycle()
        .take(FLOOD_BYTES / command.len() * command.len())
        .collect();
    let mut flooders: Vec<(BufReader<TcpStream>, usize)> =
        (0..FLOODERS).map(|_| (on_zero.pop().unwrap(), 0)).collect();
    let paused_before = server.metrics().sum("percore_recv_paused_total");
    for (conn, written) in &mut flooders {
        // Each flooder writes for up to a second, or until it has sent everything.
        let flood_until = Instant::now() + Duration::from_secs(1);
        conn.get_mut().set_nonblocking(true).unwrap();
        while *written < stream.len() && Instant::now() < flood_until {
            match conn.get_mut().write(&stream[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("flood write: {e}"),
            }
        }
    }
    // Meanwhile shard 0 still answers for its own keys.
    let mut own = on_zero.pop().unwrap();
    own.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut slowest = Duration::ZERO;
    for i in 2..=101 {
        let sent = Instant::now();
        own.get_mut().write_all(&incr(&local)).unwrap();
        assert_eq!(integer(&mut own), Some(i), "shard 0 answers its own key");
        slowest = slowest.max(sent.elapsed());
    }
    let rss_during = rss_kib(server.pid());
    let paused = server.metrics().sum("percore_recv_paused_total") - paused_before;
    drop(stopped);

    assert!(
        paused >= FLOODERS as f64,
        "the shard stopped reading each flooding connection ({paused} pauses; {:?} bytes sent)",
        flooders.iter().map(|(_, w)| w).collect::<Vec<_>>()
    );
    assert!(
        slowest < Duration::from_millis(500),
        "shard 0's own keys waited {slowest:?} behind the stalled owner"
    );
    assert!(
        rss_during < rss_before + 16 * 1024,
        "the server buffered the flood: RSS {rss_before} → {rss_during} KiB"
    );

    // The owner runs again: the flood's commands, finished to a whole command, are all
    // answered, each value handed out once, and the probes that waited are answered too.
    let mut replies = Vec::new();
    let mut sent = 0;
    for (conn, written) in &mut flooders {
        conn.get_mut().set_nonblocking(false).unwrap();
        conn.get_mut()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let whole = written.div_ceil(command.len()) * command.len();
        conn.get_mut()
            .write_all(&stream[*written..whole])
            .expect("finish the last command");
        let commands = whole / command.len();
        sent += commands;
        for _ in 0..commands {
            replies.push(integer(conn).expect("every flooded command is answered"));
        }
    }
    // The remote key's probe made one of its INCRs, in whatever order shard 1 ran them.
    remote_probe
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    replies.push(integer(&mut remote_probe).expect("the remote probe is answered"));
    replies.sort_unstable();
    assert!(
        replies.iter().copied().eq(1..=sent as i64 + 1),
        "each value handed out exactly once ({} replies, {sent} flooded + 1 probe)",
        replies.len()
    );
    // Every connection that waited on shard 1 is answered (a PONG or an INCR).
    for c in &mut on_one {
        c.get_mut()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reply = line(c).expect("a connection of the stopped shard is answered");
        assert!(reply == "+PONG" || reply == ":1", "reply {reply:?}");
    }
    assert_eq!(server.metrics().sum("percore_panics_total"), 0.0);
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}
