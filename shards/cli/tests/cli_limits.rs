//! Out of file descriptors (R10): with a tiny open-files limit and more clients than fds,
//! accepting backs off instead of spinning, and service resumes once fds are free again.

#[path = "support/process.rs"]
mod process;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use process::{free_addr, sigterm, wait_until_listening};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12th and 13th after ')'.
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

fn start(limit: u32) -> (Child, String) {
    let addr = free_addr();
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(env!("CARGO_BIN_EXE_percore"))
        .args([
            "echo",
            "--listen",
            &addr,
            "--shards",
            "1",
            "--drain-timeout-secs",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs");
    wait_until_listening(&mut child);
    (child, addr)
}

fn echo_once(addr: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"still here")?;
    let mut got = vec![0; 10];
    stream.read_exact(&mut got)?;
    Ok(got)
}

#[test]
fn emfile_on_accept_backs_off_without_spinning_and_service_resumes() {
    // 32 fds: stdio, eventfd, ring, listener and a few spare; the rest of 100 clients wait.
    let (mut child, addr) = start(32);
    let clients: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(
        clients.len() > 32,
        "the kernel backlog took more clients than the server has fds"
    );

    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_millis(600));
    let used = cpu_ticks(child.id()) - before;
    assert!(
        used <= 6,
        "server used {used} ticks (10 ms each) in 600 ms while out of fds: spinning"
    );

    drop(clients);
    // Once the clients are gone the server frees its fds; accepting resumes within a backoff.
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        match echo_once(&addr) {
            Ok(got) => break got,
            Err(e) => {
                assert!(Instant::now() < deadline, "service did not resume: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(resumed, b"still here");
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// R2: a low locked-memory limit does not stop percore (rings are charged to the memory
/// cgroup on Linux ≥ 5.12); it serves 10,000 requests under `prlimit --memlock=65536`.
#[test]
fn a_low_memlock_limit_still_serves_ten_thousand_requests() {
    let addr = free_addr();
    let mut child = Command::new("prlimit")
        .arg("--memlock=65536:65536")
        .arg(env!("CARGO_BIN_EXE_percore"))
        .args(["echo", "--listen", &addr, "--shards", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs");
    wait_until_listening(&mut child);
    let mut served = 0;
    for conn in 0..10 {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for i in 0..1000u32 {
            let message = (conn * 1000 + i).to_le_bytes();
            stream.write_all(&message).unwrap();
            let mut got = [0u8; 4];
            stream.read_exact(&mut got).unwrap();
            assert_eq!(got, message);
            served += 1;
        }
    }
    assert_eq!(served, 10_000);
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
