//! Least privilege (R3): `percore serve` runs as an unprivileged user with no capabilities,
//! its rings have no kernel submission-polling thread (`SqThread: -1` in fdinfo, no
//! `iou-sqp-*` task), and under load the io-wq workers the kernel starts for it stay within
//! the cap percore sets on each ring (2 bounded + 2 unbounded).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/http_client.rs"]
mod http_client;

use std::{
    fs,
    io::{BufReader, Write},
    net::TcpStream,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use binary::{Server, binary, free_addr};
use http_client::{Framing, body_for, echo_request, read_response};

const SHARDS: usize = 2;
/// `RingConfig::iowq_max_workers`' default: [bounded, unbounded] per ring.
const IOWQ_CAP_PER_RING: usize = 2 + 2;

/// The kernel threads of `pid` whose name starts with `prefix`.
fn tasks_named(pid: u32, prefix: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix)))
        .count()
}

fn status_field(pid: u32, field: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

#[test]
fn an_unprivileged_server_has_no_sq_thread_and_few_io_wq_workers() {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let command = if root {
        // Drop to `nobody` with no capabilities and no supplementary groups.
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(binary());
        c
    } else {
        Command::new(binary())
    };
    // Rings and io-wq workers: an io_uring test on either test pass.
    let args = [
        "--shards",
        "2",
        "--max-requests",
        "100000000",
        "--driver",
        "io_uring",
    ];
    let server = match Server::start_with(command, "serve", free_addr(), &args) {
        Ok(server) => server,
        Err(e)
            if root && e.contains("cannot run") && std::env::var("CI").as_deref() != Ok("true") =>
        {
            eprintln!("skipped: setpriv (util-linux) is missing: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let pid = server.pid();
    let uid = status_field(pid, "Uid:");
    assert!(
        uid.split_whitespace().all(|id| id != "0"),
        "runs without root: Uid {uid}"
    );
    assert_eq!(
        status_field(pid, "CapEff:"),
        "0000000000000000",
        "no effective capabilities"
    );

    // Every ring: no SQ polling thread.
    let mut rings = 0;
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let target = fs::read_link(fd.path()).unwrap_or_default();
        if target.to_string_lossy().contains("io_uring") {
            rings += 1;
            let info = fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .unwrap();
            assert!(info.contains("SqThread:\t-1"), "no SQPOLL thread:\n{info}");
        }
    }
    assert_eq!(rings, SHARDS, "one ring per shard");

    // Under load, sample the process's threads.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8u64)
        .map(|c| {
            let (stop, served, addr) = (stop.clone(), served.clone(), server.addr);
            thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut conn = BufReader::new(stream);
                let mut id = c << 32;
                while !stop.load(Ordering::Relaxed) {
                    let bodies: Vec<_> = (0..8)
                        .map(|_| {
                            id += 1;
                            body_for(id, 512)
                        })
                        .collect();
                    let wire: Vec<u8> = bodies
                        .iter()
                        .flat_map(|b| echo_request(b, Framing::ContentLength, false))
                        .collect();
                    conn.get_mut().write_all(&wire).unwrap();
                    for b in bodies {
                        let r = read_response(&mut conn).unwrap().expect("answered");
                        assert_eq!(r.body, b);
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let until = Instant::now() + Duration::from_millis(1500);
    let (mut most_workers, mut sq_threads) = (0, 0);
    while Instant::now() < until {
        most_workers = most_workers.max(tasks_named(pid, "iou-wrk"));
        sq_threads = sq_threads.max(tasks_named(pid, "iou-sqp"));
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    assert!(served.load(Ordering::Relaxed) > 100, "the load ran");
    assert_eq!(sq_threads, 0, "no iou-sqp thread");
    assert!(
        most_workers <= SHARDS * IOWQ_CAP_PER_RING,
        "{most_workers} io-wq workers, cap {}",
        SHARDS * IOWQ_CAP_PER_RING
    );
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}
