//! Conservation under load (R20): two shards, 256 connections at once, and every count
//! reconciles exactly.
//!
//! - HTTP (`percore serve`): connections mixing keep-alive, `Connection: close`, pipelining
//!   and chunked request bodies; each request carries an id that the response echoes. After
//!   the run: the ids sent = the ids answered, each once and in order on its connection; the
//!   server's response counter and accepted-connection counter moved by exactly what the
//!   clients sent and opened.
//! - kv (`percore kv`): pipelined `INCR`s on 64 counters spread over both shards. Per counter,
//!   the replies are exactly 1..=n (each value handed out once) and its final value is n, the
//!   number of acknowledged `INCR`s; the server counted exactly the commands sent.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/http_client.rs"]
mod http_client;

use std::{
    collections::{BTreeMap, HashSet},
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    thread,
    time::Duration,
};

use binary::{Metrics, Server};
use http_client::{Framing, body_for, echo_request, id_of, read_response};

const THREADS: usize = 16;
const CONNECTIONS_PER_THREAD: usize = 16;
const IO_TIMEOUT: Duration = Duration::from_secs(20);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// How an HTTP connection is used.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// One request at a time, kept alive.
    KeepAlive,
    /// One request per connection, `Connection: close`, then a new connection.
    Close,
    /// Eight requests per write.
    Pipelined,
    /// Larger chunked bodies (1–16 KiB), kept alive.
    Bodies,
}

impl Mode {
    fn of(connection: usize) -> Mode {
        [Mode::KeepAlive, Mode::Close, Mode::Pipelined, Mode::Bodies][connection % 4]
    }
}

struct HttpConn {
    mode: Mode,
    reader: Option<BufReader<TcpStream>>,
}

/// What one client thread did: ids sent and answered, connections opened.
#[derive(Default)]
struct HttpTally {
    sent: Vec<u64>,
    answered: Vec<u64>,
    opened: u64,
}

fn http_thread(addr: SocketAddr, thread_index: usize, rounds: usize) -> HttpTally {
    let mut tally = HttpTally::default();
    let mut conns: Vec<HttpConn> = (0..CONNECTIONS_PER_THREAD)
        .map(|c| HttpConn {
            mode: Mode::of(c),
            reader: None,
        })
        .collect();
    let mut next_id = (thread_index as u64) << 40;
    for _ in 0..rounds {
        for conn in &mut conns {
            let reader = conn.reader.get_or_insert_with(|| {
                tally.opened += 1;
                BufReader::new(connect(addr))
            });
            let (count, close, framing) = match conn.mode {
                Mode::KeepAlive => (1, false, Framing::ContentLength),
                Mode::Close => (1, true, Framing::ContentLength),
                Mode::Pipelined => (8, false, Framing::ContentLength),
                Mode::Bodies => (1, false, Framing::Chunked),
            };
            let mut wire = Vec::new();
            let mut bodies = Vec::new();
            for _ in 0..count {
                let id = next_id;
                next_id += 1;
                let len = match conn.mode {
                    Mode::Bodies => 1024 + (id as usize * 7919) % (15 * 1024),
                    _ => 20 + (id as usize * 131) % 200,
                };
                let body = body_for(id, len);
                wire.extend_from_slice(&echo_request(&body, framing, close));
                bodies.push((id, body));
            }
            reader
                .get_mut()
                .write_all(&wire)
                .unwrap_or_else(|e| panic!("write ({:?}): {e}", conn.mode));
            tally.sent.extend(bodies.iter().map(|(id, _)| *id));
            for (id, body) in bodies {
                let response = read_response(reader)
                    .unwrap_or_else(|e| panic!("response to {id:x} ({:?}): {e}", conn.mode))
                    .unwrap_or_else(|| panic!("closed before the response to {id:x}"));
                assert_eq!(response.status, 200, "request {id:x}");
                assert_eq!(
                    id_of(&response.body),
                    Some(id),
                    "the response answers its own request"
                );
                assert!(response.body == body, "request {id:x}: body echoed intact");
                assert_eq!(response.close, close, "request {id:x}: Connection: close");
                tally.answered.push(id);
            }
            if close {
                // The server closes after a `Connection: close` response: EOF, nothing more.
                let mut rest = Vec::new();
                let read = reader.read_to_end(&mut rest);
                assert!(matches!(read, Ok(0)), "after close: {read:?} {rest:?}");
                conn.reader = None;
            }
        }
    }
    tally
}

fn responses(m: &Metrics) -> f64 {
    m.sum("percore_http_responses_total")
}

#[test]
fn http_every_request_id_sent_is_answered_once_and_counted_once() {
    const ROUNDS: usize = 30;
    let server = Server::start("serve", &["--shards", "2"]);
    let before = server.metrics();
    let addr = server.addr;
    let tallies: Vec<HttpTally> = (0..THREADS)
        .map(|t| thread::spawn(move || http_thread(addr, t, ROUNDS)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();

    let sent: Vec<u64> = tallies.iter().flat_map(|t| t.sent.clone()).collect();
    let answered: Vec<u64> = tallies.iter().flat_map(|t| t.answered.clone()).collect();
    let opened: u64 = tallies.iter().map(|t| t.opened).sum();
    let per_round = CONNECTIONS_PER_THREAD / 4 * (1 + 1 + 8 + 1);
    assert_eq!(sent.len(), THREADS * ROUNDS * per_round);
    let sent_set: HashSet<u64> = sent.iter().copied().collect();
    let answered_set: HashSet<u64> = answered.iter().copied().collect();
    assert_eq!(sent_set.len(), sent.len(), "ids are unique");
    assert_eq!(answered_set.len(), answered.len(), "no id answered twice");
    assert_eq!(
        sent_set, answered_set,
        "client-sent = client-answered, per id"
    );

    // Server side: every request answered exactly once, every connection accepted once.
    // A response is counted before it is sent, and every one has been read: one scrape
    // sees them all.
    let after = server.metrics();
    assert_eq!(
        responses(&after) - responses(&before),
        sent.len() as f64,
        "server-answered = client-sent"
    );
    assert_eq!(
        after.sum_with("percore_http_responses_total", "class=\"2xx\"")
            - before.sum_with("percore_http_responses_total", "class=\"2xx\""),
        sent.len() as f64
    );
    let accepted = after.sum("percore_connections_accepted_total")
        - before.sum("percore_connections_accepted_total");
    // The admin listener runs on a thread of its own (it answers while a shard is stuck):
    // its scrapes are not shard connections.
    assert_eq!(accepted, opened as f64, "server-accepted = client-opened");
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}

/// `INCR key` in RESP.
fn incr(key: &str) -> Vec<u8> {
    format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).into_bytes()
}

/// One RESP integer reply (`:N\r\n`).
fn read_integer(reader: &mut impl BufRead) -> i64 {
    let mut line = String::new();
    reader.read_line(&mut line).expect("reply");
    line.strip_prefix(':')
        .and_then(|n| n.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {line:?}"))
}

const COUNTERS: u64 = 64;

fn counter(k: u64) -> String {
    format!("conservation:{k}")
}

/// Pipelined INCRs on random counters; the (counter, reply) pairs, in order.
fn kv_thread(addr: SocketAddr, thread_index: usize, rounds: usize) -> Vec<(u64, i64)> {
    let mut replies = Vec::new();
    let mut conns: Vec<BufReader<TcpStream>> = (0..CONNECTIONS_PER_THREAD)
        .map(|_| BufReader::new(connect(addr)))
        .collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (thread_index as u64 + 1);
    for _ in 0..rounds {
        for (c, conn) in conns.iter_mut().enumerate() {
            let depth = 1 + c % 8;
            let keys: Vec<u64> = (0..depth)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng % COUNTERS
                })
                .collect();
            let wire: Vec<u8> = keys.iter().flat_map(|&k| incr(&counter(k))).collect();
            conn.get_mut().write_all(&wire).expect("write INCRs");
            for k in keys {
                replies.push((k, read_integer(conn)));
            }
        }
    }
    replies
}

#[test]
fn kv_counters_equal_the_acknowledged_incrs_and_every_value_is_handed_out_once() {
    const ROUNDS: usize = 20;
    let server = Server::start("kv", &["--shards", "2"]);
    let before = server.metrics();
    let addr = server.addr;
    let replies: Vec<(u64, i64)> = (0..THREADS)
        .map(|t| thread::spawn(move || kv_thread(addr, t, ROUNDS)))
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    let per_thread: usize = (0..CONNECTIONS_PER_THREAD).map(|c| 1 + c % 8).sum();
    assert_eq!(replies.len(), THREADS * ROUNDS * per_thread);

    let mut by_counter: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for (k, v) in &replies {
        by_counter.entry(*k).or_default().push(*v);
    }
    assert!(by_counter.len() as u64 > COUNTERS / 2, "counters spread");
    let mut check = BufReader::new(connect(addr));
    for (k, mut values) in by_counter {
        values.sort_unstable();
        let n = values.len() as i64;
        assert!(
            values.iter().copied().eq(1..=n),
            "counter {k}: the replies are 1..={n}, each once"
        );
        let key = counter(k);
        check
            .get_mut()
            .write_all(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes())
            .unwrap();
        let mut header = String::new();
        check.read_line(&mut header).unwrap();
        let mut value = String::new();
        check.read_line(&mut value).unwrap();
        assert_eq!(
            value.trim_end().parse::<i64>().ok(),
            Some(n),
            "counter {k} ({header:?}) = acknowledged INCRs"
        );
    }
    let after = server.metrics();
    let incrs = |m: &Metrics| m.sum_with("percore_kv_commands_total", "command=\"incr\"");
    assert_eq!(
        incrs(&after) - incrs(&before),
        replies.len() as f64,
        "server-counted INCRs = client-acknowledged"
    );
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}
