//! Network faults through a proxy (R23): the HTTP demo server (`percore serve`, two shards),
//! and the kv service (`percore kv`), behind a proxy that adds latency, one-byte segments, stalls, half-closes and resets on
//! chosen connections. Every request on a connection without a destructive fault is answered
//! correctly; a half-closed or reset connection ends (it never hangs) after correct answers
//! only; and afterwards the server holds no connection, operation or buffer.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/http_client.rs"]
mod http_client;
#[path = "support/proxy.rs"]
mod proxy;

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    thread,
    time::Duration,
};

use binary::Server;
use http_client::{Framing, body_for, echo_request, id_of, read_response};
use proxy::{Fault, Proxy};

const CONNECTIONS: usize = 64;
const REQUESTS_PER_CONNECTION: u64 = 12;

/// Connection `i`'s fault for the HTTP clients, whose requests span ~5 KB.
fn plan(i: usize) -> Fault {
    plan_within(i, 2500)
}

/// Connection `i`'s fault for the kv clients, whose commands span ~850 bytes.
fn kv_plan(i: usize) -> Fault {
    plan_within(i, 700)
}

/// Three in eight clean, then one each of latency, tiny segments, a stall, a half-close and
/// a reset, with the cut points spread over the first `span` bytes the client sends.
fn plan_within(i: usize, span: usize) -> Fault {
    let cut = 20 + (i * 397) % span;
    match i % 8 {
        3 => Fault::Latency(Duration::from_millis(3)),
        4 => Fault::TinySegments,
        5 => Fault::Stall {
            after: cut,
            pause: Duration::from_millis(400),
        },
        6 => Fault::HalfClose { after: cut },
        7 => Fault::Reset { after: cut },
        _ => Fault::None,
    }
}

/// What one client connection saw.
#[derive(Debug)]
struct Outcome {
    fault: Fault,
    /// Responses that matched their request, in order.
    answered: u64,
    /// The first thing that went wrong, if anything did.
    failure: Option<String>,
}

/// Sends `REQUESTS_PER_CONNECTION` echo requests on `stream` (every third pair pipelined)
/// and checks each response against its request.
fn client(stream: TcpStream, index: usize, fault: Fault) -> Outcome {
    let mut outcome = Outcome {
        fault,
        answered: 0,
        failure: None,
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut next = 0u64;
    while next < REQUESTS_PER_CONNECTION {
        let batch = if next % 3 == 0 { 2 } else { 1 }.min(REQUESTS_PER_CONNECTION - next);
        let ids: Vec<u64> = (next..next + batch)
            .map(|k| ((index as u64) << 32) | k)
            .collect();
        let mut wire = Vec::new();
        let mut bodies = Vec::new();
        for &id in &ids {
            let body = body_for(id, 20 + (id as usize * 131) % 600);
            let framing = if id % 4 == 1 {
                Framing::Chunked
            } else {
                Framing::ContentLength
            };
            wire.extend_from_slice(&echo_request(&body, framing, false));
            bodies.push(body);
        }
        if let Err(e) = writer.write_all(&wire) {
            outcome.failure = Some(format!("write of request {next}: {e}"));
            return outcome;
        }
        for body in bodies {
            match read_response(&mut reader) {
                Ok(Some(r)) if r.status == 200 && r.body == body => outcome.answered += 1,
                Ok(Some(r)) => {
                    outcome.failure = Some(format!(
                        "request {next}: status {} body id {:?} (expected {:?})",
                        r.status,
                        id_of(&r.body),
                        id_of(&body)
                    ));
                    return outcome;
                }
                Ok(None) => {
                    outcome.failure = Some(format!("closed before response {next}"));
                    return outcome;
                }
                Err(e) => {
                    outcome.failure = Some(format!("reading response {next}: {e}"));
                    return outcome;
                }
            }
            next += 1;
        }
    }
    outcome
}

#[test]
fn unfaulted_requests_are_all_answered_and_faulted_connections_end_alone() {
    let server = Server::start("serve", &["--shards", "2"]);
    let proxy = Proxy::start(server.addr, plan);
    let baseline = server.metrics();

    // Connected one after another from this thread, so the proxy accepts connection i
    // as its i-th (the listen queue is first in, first out) and gives it plan(i).
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let stream = TcpStream::connect(proxy.addr()).expect("connect to the proxy");
            thread::spawn(move || client(stream, i, plan(i)))
        })
        .collect();
    let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let mut cut_short = 0;
    for (i, o) in outcomes.iter().enumerate() {
        if o.fault.is_benign() {
            assert!(
                o.failure.is_none() && o.answered == REQUESTS_PER_CONNECTION,
                "connection {i} ({:?}) must be fully answered: {o:?}",
                o.fault
            );
        } else if o.answered < REQUESTS_PER_CONNECTION {
            cut_short += 1;
            // A cut connection ends with an error or EOF, never a wrong answer.
            let why = o.failure.as_deref().unwrap_or("");
            assert!(
                !why.contains("status") && !why.contains("body id"),
                "connection {i} ({:?}) got a wrong answer: {o:?}",
                o.fault
            );
        }
    }
    assert!(
        cut_short >= CONNECTIONS / 8,
        "the proxy cut only {cut_short} connections short: the faults did not happen"
    );
    assert!(proxy.cuts() >= CONNECTIONS / 8, "cuts: {}", proxy.cuts());

    // The server has let go of every connection, operation and buffer. (The baseline's
    // open connection is the scrape's own, served by the admin listener.)
    let open = baseline.sum("percore_connections_open");
    let after = server.wait_for_metrics(Duration::from_secs(10), |m| {
        m.sum("percore_connections_open") == open
            && m.sum("percore_recv_buffers_lent") == 0.0
            && m.sum("percore_ops_in_flight") == baseline.sum("percore_ops_in_flight")
    });
    assert_eq!(
        after.sum("percore_connections_open"),
        open,
        "connections still open; the proxy relays {} ({after:?})",
        proxy.active()
    );
    assert_eq!(after.sum("percore_recv_buffers_lent"), 0.0);
    assert_eq!(
        after.sum("percore_ops_in_flight"),
        baseline.sum("percore_ops_in_flight")
    );
    assert_eq!(after.sum("percore_panics_total"), 0.0);
    assert_eq!(
        after.sum_with("percore_http_responses_total", "class=\"5xx\""),
        0.0
    );

    // And it still serves directly.
    let direct = client(
        TcpStream::connect(server.addr).unwrap(),
        CONNECTIONS,
        Fault::None,
    );
    assert_eq!(direct.answered, REQUESTS_PER_CONNECTION, "{direct:?}");
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}

/// Pipelined `INCR`s on counters only this connection touches (on both shards), so each
/// reply is known in advance: the n-th `INCR` of a counter answers n.
fn kv_client(stream: TcpStream, index: usize, fault: Fault) -> Outcome {
    let mut outcome = Outcome {
        fault,
        answered: 0,
        failure: None,
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut counts = [0i64; 4];
    for batch in 0..REQUESTS_PER_CONNECTION {
        let keys: Vec<usize> = (0..1 + batch as usize % 4)
            .map(|j| (j + batch as usize) % 4)
            .collect();
        let wire: Vec<u8> = keys
            .iter()
            .flat_map(|&k| {
                let key = format!("proxy:{index}:{k}");
                format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).into_bytes()
            })
            .collect();
        if let Err(e) = writer.write_all(&wire) {
            outcome.failure = Some(format!("write of batch {batch}: {e}"));
            return outcome;
        }
        for k in keys {
            counts[k] += 1;
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => {
                    outcome.failure = Some(format!("closed before a reply of batch {batch}"));
                    return outcome;
                }
                Err(e) => {
                    outcome.failure = Some(format!("reading batch {batch}: {e}"));
                    return outcome;
                }
                Ok(_) if line == format!(":{}\r\n", counts[k]) => outcome.answered += 1,
                Ok(_) => {
                    outcome.failure = Some(format!(
                        "wrong reply {line:?} to INCR #{} of counter {k}",
                        counts[k]
                    ));
                    return outcome;
                }
            }
        }
    }
    outcome
}

#[test]
fn kv_unfaulted_commands_are_all_answered_and_faulted_connections_end_alone() {
    let server = Server::start("kv", &["--shards", "2"]);
    let proxy = Proxy::start(server.addr, kv_plan);
    let baseline = server.metrics();
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let stream = TcpStream::connect(proxy.addr()).expect("connect to the proxy");
            thread::spawn(move || kv_client(stream, i, kv_plan(i)))
        })
        .collect();
    let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let commands: u64 = (0..REQUESTS_PER_CONNECTION).map(|b| 1 + b % 4).sum();
    let mut cut_short = 0;
    for (i, o) in outcomes.iter().enumerate() {
        if o.fault.is_benign() {
            assert!(
                o.failure.is_none() && o.answered == commands,
                "connection {i} ({:?}) must be fully answered: {o:?}",
                o.fault
            );
        } else if o.answered < commands {
            cut_short += 1;
            let why = o.failure.as_deref().unwrap_or("");
            assert!(
                !why.contains("wrong reply"),
                "connection {i} ({:?}): {o:?}",
                o.fault
            );
        }
    }
    assert!(cut_short >= CONNECTIONS / 8, "only {cut_short} cut short");

    let open = baseline.sum("percore_connections_open");
    let after = server.wait_for_metrics(Duration::from_secs(10), |m| {
        m.sum("percore_connections_open") == open && m.sum("percore_recv_buffers_lent") == 0.0
    });
    assert_eq!(after.sum("percore_connections_open"), open);
    assert_eq!(after.sum("percore_recv_buffers_lent"), 0.0);
    assert_eq!(after.sum("percore_panics_total"), 0.0);
    assert_eq!(server.stop(Duration::from_secs(10)), Some(0));
}
