//! `percore-bench resp` against a tiny in-test Redis-protocol server (GET/SET on a shared
//! map): the books reconcile with what the server executed, the GET/SET mix is the one asked
//! for, and error replies are counted.

mod common;

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use common::{assert_reconciled, config, run, spawn_server};
use percore_bench::resp::{
    Resp, RespWorkload,
    parse::{Reply, parse_reply},
};

/// The bulk strings of one command frame (`*N` of `$len` strings).
fn arguments(frame: &[u8]) -> Vec<Vec<u8>> {
    let mut args = Vec::new();
    let mut lines = frame
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let _count = lines.next();
    while let (Some(_len), Some(arg)) = (lines.next(), lines.next()) {
        args.push(arg.to_vec());
    }
    args
}

#[derive(Default)]
struct Stats {
    gets: AtomicU64,
    sets: AtomicU64,
}

/// Serves GET/SET on `map`; anything else gets `-ERR`. With `always_error`, every
/// command gets `-ERR`.
fn serve(
    mut stream: TcpStream,
    map: &Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    stats: &Stats,
    always_error: bool,
) {
    let mut input = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        // A command is a RESP array of bulk strings: the reply parser frames it.
        while let Reply::Done { len, .. } = parse_reply(&input) {
            let args = arguments(&input[..len]);
            input.drain(..len);
            let mut map = map.lock().unwrap();
            match (always_error, args.first().map(Vec::as_slice)) {
                (false, Some(b"GET")) => {
                    stats.gets.fetch_add(1, Ordering::Relaxed);
                    match map.get(&args[1]) {
                        Some(v) => {
                            out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
                            out.extend_from_slice(v);
                            out.extend_from_slice(b"\r\n");
                        }
                        None => out.extend_from_slice(b"$-1\r\n"),
                    }
                }
                (false, Some(b"SET")) => {
                    stats.sets.fetch_add(1, Ordering::Relaxed);
                    map.insert(args[1].clone(), args[2].clone());
                    out.extend_from_slice(b"+OK\r\n");
                }
                _ => out.extend_from_slice(b"-ERR unknown command\r\n"),
            }
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

#[test]
fn a_get_set_mix_reconciles_with_the_server_and_has_the_asked_ratio() {
    let map: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    let stats: Arc<Stats> = Arc::default();
    let (m, s) = (map.clone(), stats.clone());
    let target = spawn_server(move |stream| serve(stream, &m, &s, false));
    let mut cfg = config(target);
    cfg.pipeline = 8;
    let workload = RespWorkload {
        set_ratio: 0.3,
        keyspace: 100,
        value_size: 32,
        seed: 5,
    };
    let report = run(cfg, Resp::new(workload).unwrap());
    assert_reconciled(&report);
    assert_eq!(report.errors(), 0, "{}", report.to_text());
    let (gets, sets) = (
        stats.gets.load(Ordering::Relaxed),
        stats.sets.load(Ordering::Relaxed),
    );
    assert_eq!(report.total_ok(), gets + sets, "{}", report.to_text());
    let ratio = sets as f64 / (gets + sets) as f64;
    assert!((ratio - 0.3).abs() < 0.03, "SET share {ratio}");
    // The values written are the asked size, on keys of the key space.
    let map = map.lock().unwrap();
    assert!(map.len() <= 100 && !map.is_empty());
    assert!(
        map.iter()
            .all(|(k, v)| k.starts_with(b"key:") && v.len() == 32)
    );
}

#[test]
fn error_replies_count_as_errors() {
    let map: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    let stats: Arc<Stats> = Arc::default();
    let target = spawn_server(move |stream| serve(stream, &map, &stats, true));
    let report = run(config(target), Resp::new(RespWorkload::default()).unwrap());
    assert_reconciled(&report);
    assert_eq!(report.total_ok(), 0, "{}", report.to_text());
    assert!(report.measured.status > 10, "{}", report.to_text());
    assert_eq!(report.measured.errors(), report.measured.status);
}
