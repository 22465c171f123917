//! Persistence: the append-only files replayed at start, torn tails, rewrites, snapshots,
//! and crashes (kill -9 of a server process during a write load).

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use common::{KvServer, bulk, key_on};
use percore_kv::{Config, persist::AppendFsync};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("percore-kv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path, appendonly: bool, fsync: AppendFsync) -> Config {
    Config {
        appendonly,
        appendfsync: fsync,
        dir: dir.to_path_buf(),
        ..Config::default()
    }
}

fn aof_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "aof"))
        .collect();
    files.sort();
    files
}

/// Polls INFO persistence until `done` holds (bounded).
fn wait_info(r: &mut common::Raw, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = r.cmd(&["INFO", "persistence"]);
        if done(&info) {
            return;
        }
        assert!(Instant::now() < deadline, "INFO never showed it: {info}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_type_survives_a_restart_and_a_torn_tail_is_cut_off() {
    let dir = temp_dir("restart");
    let (a, b) = (key_on(0, "p"), key_on(1, "p"));
    {
        let server = KvServer::with_config(config(&dir, true, AppendFsync::Always));
        let mut r = server.raw();
        assert_eq!(r.cmd(&["SET", "s", "v", "EX", "1000"]), "+OK\r\n");
        r.cmd(&["SET", "short", "v", "PX", "1"]);
        r.cmd(&["RPUSH", "l", "a", "b", "c"]);
        r.cmd(&["LPOP", "l"]);
        r.cmd(&["HSET", "h", "f", "1", "g", "2"]);
        r.cmd(&["SADD", "set", "x", "y"]);
        r.cmd(&["SPOP", "set"]);
        r.cmd(&["ZADD", "z", "1.5", "m", "-2", "n"]);
        r.cmd(&["MSET", &a, "1", &b, "2"]);
        r.cmd(&["RENAME", &a, "renamed"]);
        r.cmd(&["INCR", "counter"]);
        r.cmd(&["INCR", "counter"]);
        r.cmd(&["SELECT", "1"]);
        r.cmd(&["SET", "gone", "x"]);
        r.cmd(&["FLUSHDB"]);
        r.cmd(&["SET", "in1", "x"]);
        r.cmd(&["SWAPDB", "1", "2"]);
        r.cmd(&["SELECT", "0"]);
        r.cmd(&["DEL", "nothing", "s2"]);
        let info = r.cmd(&["INFO", "persistence"]);
        assert!(info.contains("aof_enabled:1"), "{info}");
    }
    let check = |r: &mut common::Raw| {
        let ttl: i64 = r
            .cmd(&["TTL", "s"])
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap();
        assert!(
            (990..=1000).contains(&ttl),
            "the expiry time survives: {ttl}"
        );
        assert_eq!(r.cmd(&["EXISTS", "short"]), ":0\r\n");
        assert_eq!(
            r.cmd(&["LRANGE", "l", "0", "-1"]),
            common::bulks(&["b", "c"])
        );
        assert_eq!(r.cmd(&["HGET", "h", "g"]), bulk("2"));
        assert_eq!(r.cmd(&["SCARD", "set"]), ":1\r\n");
        assert_eq!(
            r.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
            common::bulks(&["n", "-2", "m", "1.5"])
        );
        assert_eq!(r.cmd(&["GET", "renamed"]), bulk("1"));
        assert_eq!(r.cmd(&["EXISTS", &a]), ":0\r\n");
        assert_eq!(r.cmd(&["GET", &b]), bulk("2"));
        assert_eq!(r.cmd(&["GET", "counter"]), bulk("2"));
        r.cmd(&["SELECT", "1"]);
        assert_eq!(r.cmd(&["DBSIZE"]), ":0\r\n");
        r.cmd(&["SELECT", "2"]);
        assert_eq!(r.cmd(&["GET", "in1"]), bulk("x"));
        r.cmd(&["SELECT", "0"]);
    };
    {
        let server = KvServer::with_config(config(&dir, true, AppendFsync::Always));
        check(&mut server.raw());
    }
    // A torn record at the end of every file: cut off at start, the rest loads.
    let files = aof_files(&dir);
    assert_eq!(files.len(), common::SHARDS);
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    for f in &files {
        let mut file = std::fs::OpenOptions::new().append(true).open(f).unwrap();
        file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 0, 5]).unwrap();
    }
    {
        let server = KvServer::with_config(config(&dir, true, AppendFsync::Always));
        let mut r = server.raw();
        check(&mut r);
        // Every shard has started (and truncated) once the checks' reads were answered.
        for (f, size) in files.iter().zip(&sizes) {
            let now = std::fs::metadata(f).unwrap().len();
            assert_eq!(now, *size, "{} truncated back", f.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rewrite_compacts_the_log_and_snapshots_load_without_it() {
    let dir = temp_dir("rewrite");
    {
        let server = KvServer::with_config(config(&dir, true, AppendFsync::EverySec));
        let mut r = server.raw();
        for round in 0..20 {
            for i in 0..50 {
                r.cmd(&["SET", &format!("k{i}"), &format!("{round}")]);
            }
        }
        r.cmd(&["RPUSH", "list", "a"]);
        let before: u64 = aof_files(&dir)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(
            r.cmd(&["BGREWRITEAOF"]),
            "+Background append only file rewriting started\r\n"
        );
        wait_info(&mut r, |i| {
            i.contains("aof_rewrite_in_progress:0")
                && i.contains(&format!("aof_rewrites:{}", common::SHARDS))
        });
        // Written after the rewrite: goes to the new log.
        r.cmd(&["SET", "k0", "last"]);
        let after: u64 = aof_files(&dir)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(after * 5 < before, "compacted: {before} -> {after} bytes");
        // SAVE writes a snapshot; LASTSAVE moves.
        assert_eq!(r.cmd(&["SAVE"]), "+OK\r\n");
        let saved: u64 = r
            .cmd(&["LASTSAVE"])
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap();
        assert!(saved > 1_600_000_000);
        assert_eq!(r.cmd(&["BGSAVE"]), "+Background saving started\r\n");
        wait_info(&mut r, |i| i.contains("rdb_bgsave_in_progress:0"));
    }
    {
        let server = KvServer::with_config(config(&dir, true, AppendFsync::EverySec));
        let mut r = server.raw();
        assert_eq!(r.cmd(&["GET", "k0"]), bulk("last"));
        assert_eq!(r.cmd(&["GET", "k49"]), bulk("19"));
        assert_eq!(r.cmd(&["DBSIZE"]), ":51\r\n");
    }
    // Without the log, the snapshot loads.
    for f in aof_files(&dir) {
        std::fs::remove_file(f).unwrap();
    }
    {
        let server = KvServer::with_config(config(&dir, false, AppendFsync::EverySec));
        let mut r = server.raw();
        assert_eq!(r.cmd(&["GET", "k0"]), bulk("last"));
        assert_eq!(r.cmd(&["DBSIZE"]), ":51\r\n");
        assert!(r.cmd(&["INFO", "persistence"]).contains("aof_enabled:0"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Not a test on its own: the server process the crash test starts and kills. Runs only
/// when `KV_CHILD_DIR` is set (the crash test sets it).
#[test]
fn child_server() {
    let Ok(dir) = std::env::var("KV_CHILD_DIR") else {
        return;
    };
    let fsync = AppendFsync::parse(&std::env::var("KV_CHILD_FSYNC").unwrap()).unwrap();
    let server = KvServer::with_config(config(Path::new(&dir), true, fsync));
    println!("LISTEN {}", server.addr);
    std::io::stdout().flush().unwrap();
    // Until killed (bounded: a child left behind ends by itself).
    thread::sleep(Duration::from_secs(120));
}

/// One writer's acknowledged writes: sequence number and when.
type AckLog = Arc<Mutex<Vec<(u64, Instant)>>>;

fn start_child(dir: &Path, fsync: &str) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_server",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("KV_CHILD_DIR", dir)
        .env("KV_CHILD_FSYNC", fsync)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the child prints its address").unwrap();
        // The harness writes "test child_server ... " before it, on the same line.
        if let Some((_, addr)) = line.split_once("LISTEN ") {
            break addr.trim().to_string();
        }
    };
    (child, addr)
}

/// Writers SET their own keys in sequence, recording each acknowledged write and when;
/// the server is killed with SIGKILL at a random moment; after a restart, every write
/// acknowledged before (under `always`) or up to ~1 s before (under `everysec`) is there.
fn crash_rounds(fsync: &str, lost_window: Duration) {
    let rounds: usize = std::env::var("KV_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = temp_dir(&format!("crash-{fsync}"));
    // Per writer: (sequence number, when acknowledged) of every acknowledged SET.
    let mut acked: Vec<Vec<(u64, Instant)>> = vec![Vec::new(); 4];
    let mut next = [0u64; 4];
    for round in 0..rounds {
        let (mut child, addr) = start_child(&dir, fsync);
        let stop = Arc::new(AtomicBool::new(false));
        let logs: Vec<AckLog> = (0..4).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, log, addr) = (stop.clone(), logs[w].clone(), addr.clone());
                let mut seq = next[w];
                thread::spawn(move || {
                    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
                    let Ok(mut con) = client.get_connection() else {
                        return seq;
                    };
                    let _ = con.set_read_timeout(Some(Duration::from_secs(5)));
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let ok: redis::RedisResult<()> = redis::cmd("SET")
                            .arg(format!("w{w}:{seq}"))
                            .arg(seq)
                            .query(&mut con);
                        if ok.is_err() {
                            break;
                        }
                        log.lock().unwrap().push((seq, Instant::now()));
                    }
                    seq
                })
            })
            .collect();
        // A random moment between 150 and 650 ms into the load.
        let pause = 150 + (std::process::id() as u64 * 7919 + round as u64 * 104_729) % 500;
        thread::sleep(Duration::from_millis(pause));
        let killed_at = Instant::now();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for (w, writer) in writers.into_iter().enumerate() {
            next[w] = writer.join().unwrap() + 1;
            let mut log = logs[w].lock().unwrap();
            // What was acknowledged before the kill (an ack read after it was sent before).
            acked[w].extend(log.drain(..).filter(|(_, at)| *at <= killed_at));
        }
        // Restart and check.
        let (mut child, addr) = start_child(&dir, fsync);
        let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
        let mut con = client.get_connection().unwrap();
        let mut missing = Vec::new();
        for (w, log) in acked.iter().enumerate() {
            for (seq, at) in log {
                if killed_at.saturating_duration_since(*at) < lost_window {
                    continue;
                }
                let v: Option<u64> = redis::cmd("GET")
                    .arg(format!("w{w}:{seq}"))
                    .query(&mut con)
                    .unwrap();
                if v != Some(*seq) {
                    missing.push(format!("w{w}:{seq}"));
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let total: usize = acked.iter().map(Vec::len).sum();
        eprintln!(
            "{fsync} round {round}: {total} acknowledged writes so far, killed after {pause} ms"
        );
        assert!(
            missing.is_empty(),
            "{fsync}: {} acknowledged writes lost after kill -9: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert!(total > 0, "the load wrote nothing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_loses_no_acknowledged_write_under_always() {
    crash_rounds("always", Duration::ZERO);
}

#[test]
fn kill_9_loses_at_most_about_a_second_under_everysec() {
    crash_rounds("everysec", Duration::from_millis(1500));
}

#[test]
fn config_set_appendonly_starts_the_logs_with_the_data_already_there() {
    let dir = temp_dir("switch");
    {
        let server = KvServer::with_config(config(&dir, false, AppendFsync::Always));
        let mut r = server.raw();
        for i in 0..100 {
            r.cmd(&["SET", &format!("before{i}"), "v"]);
        }
        assert_eq!(
            r.cmd(&["CONFIG", "GET", "appendonly"]),
            common::bulks(&["appendonly", "no"])
        );
        assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "yes"]), "+OK\r\n");
        assert_eq!(
            r.cmd(&["CONFIG", "SET", "appendfsync", "always"]),
            "+OK\r\n"
        );
        assert_eq!(
            r.cmd(&["CONFIG", "GET", "appendfsync"]),
            common::bulks(&["appendfsync", "always"])
        );
        // The switch reaches the shards in the background; the base rewrite follows.
        wait_info(&mut r, |i| {
            i.contains("aof_rewrite_in_progress:0")
                && i.contains(&format!("aof_rewrites:{}", common::SHARDS))
        });
        r.cmd(&["SET", "after", "v"]);
    }
    {
        let server = KvServer::with_config(config(&dir, true, AppendFsync::Always));
        let mut r = server.raw();
        assert_eq!(r.cmd(&["DBSIZE"]), ":101\r\n");
        assert_eq!(r.cmd(&["GET", "after"]), bulk("v"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
