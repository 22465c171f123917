//! Test support: the `percore` command as a child process. Tests that go through the binary
//! see what a user sees, and keep working whatever the kernel's modules are called.
//!
//! The binary belongs to another package (`percore-cli`), so Cargo does not build it for
//! this one's tests: [`binary`] builds it once per test process, with the same profile as the
//! test, through the `cargo` that runs the tests (a no-op when it is up to date).

#![allow(dead_code)]

#[path = "ports.rs"]
mod ports;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    thread,
    time::{Duration, Instant},
};

/// How long a started server may take to print that it listens.
pub const START_WAIT: Duration = Duration::from_secs(20);

/// The `percore` binary, built on first use.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // target/<profile>/deps/<this test> → target/<profile>/percore
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lies in target/<profile>/deps");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", "percore-cli", "--bin", "percore"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the percore binary failed");
        let path = profile_dir.join("percore");
        assert!(path.exists(), "no binary at {}", path.display());
        path
    })
}

/// A loopback address whose port is free now (outside the ephemeral range, see `ports`).
pub fn free_addr() -> SocketAddr {
    ports::free_loopback_addr()
}

/// A running `percore` child with its admin (metrics) listener.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// Everything the child wrote to stderr so far.
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `percore SERVICE --listen ADDR --admin ADMIN ARGS...` on a free port; panics
    /// with the child's output if it does not come up.
    pub fn start(service: &str, args: &[&str]) -> Server {
        Server::start_on(service, free_addr(), args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the service on `addr`; the child's output when it exits or does not say it
    /// listens within [`START_WAIT`].
    pub fn start_on(service: &str, addr: SocketAddr, args: &[&str]) -> Result<Server, String> {
        Server::start_with(Command::new(binary()), service, addr, args)
    }

    /// Like [`Server::start_on`] with a prepared command (for example `prlimit ... percore`:
    /// the command's own arguments come first).
    pub fn start_with(
        mut command: Command,
        service: &str,
        addr: SocketAddr,
        args: &[&str],
    ) -> Result<Server, String> {
        let admin = free_addr();
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .arg(service)
            .args(["--listen", &addr.to_string(), "--admin", &admin.to_string()])
            .args(args)
            // SIGTERM stops at once unless a test asks for the drain delay.
            .args(if args.contains(&"--drain-delay") {
                &[][..]
            } else {
                &["--drain-delay", "0"][..]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (listening_tx, listening_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" listening on ") {
                    let _ = listening_tx.send(());
                }
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let server = Server {
            child,
            addr,
            admin,
            log,
        };
        match listening_rx.recv_timeout(START_WAIT) {
            Ok(()) => Ok(server),
            Err(_) => Err(format!(
                "percore {service} on {addr} did not say it listens within {START_WAIT:?}; it wrote:\n{}",
                server.log()
            )),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current metrics, scraped from the admin listener.
    pub fn metrics(&self) -> Metrics {
        scrape(self.admin).unwrap_or_else(|e| panic!("scraping {}: {e}", self.admin))
    }

    /// Polls the metrics until `done` holds or `limit` passes; returns the last sample.
    /// No event tells a test that the server has finished closing, so a bounded poll.
    pub fn wait_for_metrics(&self, limit: Duration, done: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + limit;
        loop {
            let metrics = self.metrics();
            if done(&metrics) || Instant::now() >= deadline {
                return metrics;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.id());
    }

    /// SIGTERM, then the exit code within `limit` (`None`: it did not exit and was killed).
    pub fn stop(mut self, limit: Duration) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait_exit(limit)
    }

    /// `kill -9`, then reaps the child.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// The exit code once it exits within `limit`; `None`: it did not, and was killed.
    pub fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        self.wait_exit(limit)
    }

    /// Whether the child still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One scrape of Prometheus text: samples by their full name with labels.
#[derive(Clone, Debug, Default)]
pub struct Metrics(HashMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (name, value) = l.rsplit_once(' ')?;
                    Some((name.to_string(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The sum of every sample of `name` (all shards, all label sets).
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    /// The sum of the samples of `name` whose labels contain `label` (e.g. `class="2xx"`).
    pub fn sum_with(&self, name: &str, label: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(label))
            .map(|(_, v)| v)
            .sum()
    }
}

/// `GET /metrics` from an admin listener.
pub fn scrape(admin: SocketAddr) -> std::io::Result<Metrics> {
    let mut stream = TcpStream::connect(admin)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok(Metrics::parse(body))
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU ticks (utime + stime, 10 ms each) process `pid` has used.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line: the 12th and 13th after ')'.
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}
