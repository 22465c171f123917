//! Drives the embedding examples (issue 24) over real sockets: each example's `start` is
//! the one its `main` runs, here with two shards and port 0.

#[allow(dead_code)]
#[path = "../examples/blocking_periodic.rs"]
mod blocking_periodic;
#[allow(dead_code)]
#[path = "../examples/counter_mesh.rs"]
mod counter_mesh;
#[allow(dead_code)]
#[path = "../examples/graceful_metrics.rs"]
mod graceful_metrics;
#[path = "support/ports.rs"]
mod ports;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use percore::{Server, ServerHandle};

const WAIT: Duration = Duration::from_secs(10);

struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let writer = TcpStream::connect(addr).unwrap();
        writer.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        Client { writer, reader }
    }

    fn ask(&mut self, line: &str) -> String {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
        self.reply()
    }

    fn reply(&mut self) -> String {
        let mut reply = String::new();
        self.reader.read_line(&mut reply).unwrap();
        reply.trim_end().to_string()
    }
}

fn stop(server: ServerHandle) {
    server.stop_within(Duration::from_secs(2));
    server.join().unwrap();
}

#[test]
fn counter_mesh_counts_each_key_on_its_owner_shard_whatever_the_connection() {
    let server = counter_mesh::start(Server::builder().shards(2), "127.0.0.1:0").unwrap();
    let addr = server.listen_addr().unwrap();
    // Connections on both shards (the kernel's hash places them: 8 land on one shard about
    // once in 128 tries, so more are opened until each shard has served one); each key's
    // count is one count however they spread.
    let mut clients: Vec<Client> = Vec::new();
    let on_both =
        |server: &ServerHandle| server.shard_stats(WAIT).iter().all(|s| s.net.accepted > 0);
    while clients.len() < 8 || !on_both(&server) {
        assert!(clients.len() < 64, "64 connections all landed on one shard");
        let mut client = Client::connect(addr);
        // Answered, so accepted and counted before the stats are read.
        assert_eq!(client.ask("GET never"), "0");
        clients.push(client);
    }
    let n = clients.len() as u64;
    for round in 1..=5u64 {
        for (i, client) in clients.iter_mut().enumerate() {
            for key in ["a", "b", "c", "d"] {
                let expected = (round - 1) * n + i as u64 + 1;
                assert_eq!(client.ask(&format!("INCR {key}")), expected.to_string());
            }
        }
    }
    assert_eq!(clients[3].ask("GET a"), (5 * n).to_string());
    assert_eq!(clients[0].ask("GET never"), "0");
    assert!(clients[1].ask("DEL a").starts_with("ERR"));
    // A line over the limit is refused and the connection closed.
    let mut long = Client::connect(addr);
    long.writer.write_all(&[b'x'; 1000]).unwrap();
    assert_eq!(long.reply(), "ERR line too long");
    assert_eq!(long.reply(), "", "closed");
    stop(server);
}

#[test]
fn blocking_periodic_computes_off_the_shard() {
    // One shard: the quick requests share it with the long count.
    let server = blocking_periodic::start(Server::builder().shards(1), "127.0.0.1:0").unwrap();
    let addr = server.listen_addr().unwrap();
    let mut slow = Client::connect(addr);
    let mut quick = Client::connect(addr);
    assert_eq!(quick.ask("PRIMES 100"), "25");
    assert!(quick.ask("PRIMES 99999999").starts_with("ERR"));
    // A long count runs on the blocking pool: the shard answers others meanwhile. Had it
    // run on the shard, the quick requests would have waited for it.
    slow.writer.write_all(b"PRIMES 300000\n").unwrap();
    let began = Instant::now();
    for _ in 0..20 {
        assert!(quick.ask("STATS").starts_with("ticks "));
    }
    let quick_took = began.elapsed();
    assert_eq!(slow.reply(), "25997");
    let slow_took = began.elapsed();
    assert!(
        quick_took < slow_took,
        "quick {quick_took:?}, slow {slow_took:?}"
    );
    drop((slow, quick));
    stop(server);
}

#[test]
fn blocking_periodic_ticks_on_every_shard_and_does_not_hold_the_stop() {
    let server = blocking_periodic::start(Server::builder().shards(2), "127.0.0.1:0").unwrap();
    let addr = server.listen_addr().unwrap();
    // Wait (bounded) for a tick reported by connections on each shard.
    let deadline = Instant::now() + WAIT;
    let mut ticked = [false; 2];
    while ticked != [true, true] && Instant::now() < deadline {
        let reply = Client::connect(addr).ask("STATS");
        let words: Vec<&str> = reply.split_whitespace().collect();
        let ticks: u64 = words[1].parse().unwrap();
        let shard: usize = words[5].parse().unwrap();
        if ticks > 0 {
            ticked[shard] = true;
        }
    }
    assert_eq!(ticked, [true, true], "every shard's periodic task ticked");
    // The periodic tasks never look at the stop: it does not wait for them.
    let began = Instant::now();
    stop(server);
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
}

fn scrape(admin: SocketAddr) -> String {
    let mut conn = TcpStream::connect(admin).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn graceful_metrics_answers_the_request_in_progress_then_stops() {
    let admin_addr = ports::free_loopback_addr().to_string();
    let server = graceful_metrics::start(
        Server::builder()
            .shards(2)
            .drain_timeout(Duration::from_secs(20)),
        "127.0.0.1:0",
        &admin_addr,
    )
    .unwrap();
    let addr = server.listen_addr().unwrap();
    let admin = server.report().admin_addr.unwrap();
    // Registered up front: every metric is there at 0 before any request.
    let body = scrape(admin);
    for name in [
        "app_requests_total",
        "app_in_flight",
        "app_work_seconds_count",
    ] {
        assert_eq!(
            body.matches(&format!("{name}{{")).count(),
            2,
            "{name} per shard in {body}"
        );
        assert_eq!(metric(&body, name), 0.0, "{name}");
    }
    let mut client = Client::connect(addr);
    assert_eq!(client.ask("WORK 10"), "done");
    assert!(client.ask("WORK x").starts_with("ERR"));
    // One request in progress and one idle connection when the stop comes.
    let mut busy = Client::connect(addr);
    busy.writer.write_all(b"WORK 700\n").unwrap();
    let mut idle = Client::connect(addr);
    assert_eq!(idle.ask("WORK 1"), "done");
    let deadline = Instant::now() + WAIT;
    while metric(&scrape(admin), "app_in_flight") < 1.0 {
        assert!(Instant::now() < deadline, "the WORK 700 never started");
        thread::sleep(Duration::from_millis(10));
    }
    let body = scrape(admin);
    assert_eq!(metric(&body, "app_requests_total"), 3.0, "{body}");
    assert_eq!(metric(&body, "app_work_seconds_count"), 2.0, "{body}");

    let began = Instant::now();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        server.stop();
        let _ = tx.send(server.join());
    });
    // The idle connection closes at once; the busy one gets its answer, then closes.
    assert_eq!(idle.reply(), "", "the idle connection closed");
    assert!(
        began.elapsed() < Duration::from_millis(600),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(busy.reply(), "done");
    assert_eq!(busy.reply(), "", "then closed");
    rx.recv_timeout(WAIT).unwrap().unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
}
