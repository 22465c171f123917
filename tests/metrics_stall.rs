//! The stall detector and the admin listener: a handler that spins 300 ms raises the stall
//! counter of its own shard only, while the other shard keeps answering; `GET /metrics`
//! shows every shard, and a stalled shard does not hold the scrape.

#[path = "support/common.rs"]
mod common;
#[path = "support/steer.rs"]
mod steer;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream as StdStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use percore::{Server, ServerHandle};

fn start(admin: bool) -> (ServerHandle, SocketAddr) {
    let mut builder = Server::builder()
        .shards(2)
        .stall_threshold(Duration::from_millis(100));
    if admin {
        builder = builder.admin("127.0.0.1:0".parse().unwrap());
    }
    let server = builder
        .serve("127.0.0.1:0".parse().unwrap(), steer::spin_or_pong)
        .unwrap();
    let addr = server.listen_addr().unwrap();
    (server, addr)
}

struct Client {
    reader: BufReader<StdStream>,
    writer: StdStream,
}

impl Client {
    fn ask(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut reply = String::new();
        self.reader.read_line(&mut reply).unwrap();
        reply.trim_end().to_string()
    }
}

/// One connection on each shard (the kernel's hash decides; open until both are covered).
fn one_per_shard(addr: SocketAddr) -> [Client; 2] {
    let mut found: [Option<Client>; 2] = [None, None];
    for _ in 0..200 {
        let stream = StdStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let reply = client.ask("ping");
        let shard: usize = reply.strip_prefix("pong ").unwrap().parse().unwrap();
        if found[shard].is_none() {
            found[shard] = Some(client);
        }
        if found.iter().all(Option::is_some) {
            return found.map(|c| c.unwrap());
        }
    }
    panic!("200 connections all landed on one shard");
}

#[test]
fn a_spinning_handler_stalls_only_its_own_shard() {
    let (server, addr) = start(false);
    let [mut on0, mut on1] = one_per_shard(addr);
    let (tx, rx) = mpsc::channel();
    let spinner = thread::spawn(move || {
        let started = Instant::now();
        tx.send(()).unwrap();
        let reply = on0.ask("spin 300");
        (reply, started.elapsed())
    });
    rx.recv().unwrap();
    // While shard 0 spins, shard 1 answers promptly, many times over.
    let during = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut answered = 0;
    while during.elapsed() < Duration::from_millis(250) {
        let asked = Instant::now();
        assert_eq!(on1.ask("ping"), "pong 1");
        slowest = slowest.max(asked.elapsed());
        answered += 1;
    }
    let (reply, spun_for) = spinner.join().unwrap();
    assert_eq!(reply, "spun 0");
    assert!(spun_for >= Duration::from_millis(300), "{spun_for:?}");
    assert!(
        answered > 10,
        "shard 1 answered only {answered} pings during the stall"
    );
    assert!(
        slowest < Duration::from_millis(100),
        "shard 1 was held up {slowest:?} by shard 0's stall"
    );

    let stats = server.shard_stats(Duration::from_secs(2));
    assert_eq!(
        stats[0].stalls, 1,
        "the one long iteration of shard 0 counted once"
    );
    assert_eq!(stats[1].stalls, 0, "shard 1 never stalled");
    assert!(
        stats[0].loop_.iteration_us.max_us() >= 300_000,
        "longest iteration recorded"
    );
    assert!(stats[1].loop_.iteration_us.max_us() < 100_000);
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}

fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = StdStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

fn sample(body: &str, line_start: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn metrics_cover_every_shard_and_a_stalled_shard_does_not_hold_the_scrape() {
    let (server, addr) = start(true);
    let admin = server.report().admin_addr.expect("admin listener reported");
    let [mut on0, mut on1] = one_per_shard(addr);
    assert_eq!(on1.ask("ping"), "pong 1");

    let (head, body) = http_get(admin, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"));
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "Content-Length matches the body");
    for shard in ["0", "1"] {
        assert_eq!(
            sample(&body, &format!("percore_shard_up{{shard=\"{shard}\"}}")),
            Some(1.0)
        );
        let accepted = sample(
            &body,
            &format!("percore_connections_accepted_total{{shard=\"{shard}\"}}"),
        )
        .unwrap();
        assert!(accepted >= 1.0, "shard {shard} accepted connections");
        assert!(
            sample(
                &body,
                &format!("percore_loop_iterations_total{{shard=\"{shard}\"}}")
            )
            .unwrap()
                > 0.0
        );
        assert!(body.contains(&format!(
            "percore_iteration_seconds_bucket{{shard=\"{shard}\",le=\"+Inf\"}}"
        )));
    }
    let (head, _) = http_get(admin, "/nothing");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // Stall shard 1 for 1.5 s: the scrape answers within its 1 s gather deadline, shard 1 down.
    let spinner = thread::spawn(move || on1.ask("spin 1500"));
    thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let (head, body) = http_get(admin, "/metrics");
    let took = asked.elapsed();
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert_eq!(
        sample(&body, "percore_shard_up{shard=\"1\"}"),
        Some(0.0),
        "stalled shard reported down"
    );
    assert_eq!(sample(&body, "percore_shard_up{shard=\"0\"}"), Some(1.0));
    assert!(
        took < Duration::from_millis(1400),
        "scrape waited for the stalled shard: {took:?}"
    );
    assert_eq!(spinner.join().unwrap(), "spun 1");
    assert_eq!(on0.ask("ping"), "pong 0");
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}
