//! Drives a [`Connection`] the way the I/O layer does — unconsumed input is offered again
//! with the next read appended — over every way of splitting the input into reads, and
//! checks that the transcript never depends on the split (R15).

#![allow(dead_code)]

use percore_http::{BodyKind, Connection, Event, Limits, Response, Version};

/// An owned copy of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Continue,
    Request(Req),
    Error(u16, &'static str),
    Closed,
}

/// An owned copy of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub path: String,
    pub query: Option<String>,
    pub authority: Option<String>,
    pub version: Version,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_kind: BodyKind,
    pub keep_alive: bool,
    pub head: bool,
    pub expect_continue: bool,
}

/// Everything observable after all reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub events: Vec<Seen>,
    pub should_close: bool,
    pub in_request: bool,
    pub requests_served: u64,
}

impl Transcript {
    pub fn requests(&self) -> Vec<&Req> {
        self.events
            .iter()
            .filter_map(|e| {
                if let Seen::Request(r) = e {
                    Some(r)
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn error(&self) -> Option<u16> {
        self.events.iter().find_map(|e| {
            if let Seen::Error(s, _) = e {
                Some(*s)
            } else {
                None
            }
        })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn owned(event: &Event<'_>) -> Option<Seen> {
    Some(match event {
        Event::NeedMore => return None,
        Event::Continue => Seen::Continue,
        Event::Closed => Seen::Closed,
        Event::Error(e) => Seen::Error(e.status, e.reason),
        Event::Request(r) => Seen::Request(Req {
            method: text(r.method()),
            target: text(r.target()),
            path: text(r.path()),
            query: r.query().map(text),
            authority: r.authority().map(text),
            version: r.version(),
            headers: r.headers().map(|(n, v)| (text(n), text(v))).collect(),
            body: r.body().to_vec(),
            body_kind: r.body_kind(),
            keep_alive: r.keep_alive(),
            head: r.is_head(),
            expect_continue: r.expect_continue(),
        }),
    })
}

/// Feeds `reads` one after another, as the I/O layer would.
pub fn run(reads: &[&[u8]], limits: &Limits) -> Transcript {
    let mut conn = Connection::new(limits.clone());
    let mut buffered: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    'reads: for read in reads {
        buffered.extend_from_slice(read);
        loop {
            let (consumed, event) = conn.feed(&buffered);
            assert!(consumed <= buffered.len(), "consumed more than offered");
            let seen = owned(&event);
            buffered.drain(..consumed);
            match seen {
                None => break,
                Some(seen) => {
                    let end = matches!(seen, Seen::Error(..) | Seen::Closed);
                    events.push(seen);
                    if end {
                        break 'reads;
                    }
                }
            }
        }
    }
    Transcript {
        events,
        should_close: conn.should_close(),
        in_request: conn.in_request(),
        requests_served: conn.requests_served(),
    }
}

/// What [`Connection::serve`] writes for `reads` with an echo-ish handler.
pub fn serve_output(reads: &[&[u8]], limits: &Limits) -> Vec<u8> {
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    let mut conn = Connection::new(limits.clone());
    let mut buffered: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for read in reads {
        buffered.extend_from_slice(read);
        loop {
            let before = out.len();
            let consumed = conn.serve(&buffered, &mut out, date, |req| {
                Response::new(200, req.body())
            });
            buffered.drain(..consumed);
            // `serve` stops early only at max_output; a real I/O layer flushes then.
            if consumed == 0 && out.len() == before || conn.should_close() {
                break;
            }
        }
        if conn.should_close() {
            break;
        }
    }
    out
}

/// Ways to split `input` into reads: whole, every 2-way split, byte by byte, and every
/// 3-way split of short inputs. Long inputs get a sample of 2-way splits.
pub fn splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
    let n = input.len();
    let mut all = vec![vec![input]];
    let step = if n <= 4096 { 1 } else { n / 1500 + 1 };
    let mut points: Vec<usize> = (1..n).step_by(step).collect();
    // Always the points around every line end, where off-by-ones live.
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' || b == b'\r' {
            points.extend(
                [i.saturating_sub(1), i, i + 1, i + 2]
                    .into_iter()
                    .filter(|&p| p > 0 && p < n),
            );
        }
    }
    points.sort_unstable();
    points.dedup();
    for &p in &points {
        all.push(vec![&input[..p], &input[p..]]);
    }
    all.push(input.chunks(1).collect());
    all.push(input.chunks(7).collect());
    if n <= 80 {
        for a in 1..n {
            for b in a + 1..n {
                all.push(vec![&input[..a], &input[a..b], &input[b..]]);
            }
        }
    }
    all
}

/// The transcript of `input` in one read, after checking that every split gives the same
/// transcript and the same output from `serve`.
pub fn check_split_invariant(name: &str, input: &[u8], limits: &Limits) -> Transcript {
    let whole = run(&[input], limits);
    let whole_out = serve_output(&[input], limits);
    let large = input.len() > 4096;
    for reads in splits(input) {
        let got = run(&reads, limits);
        assert_eq!(
            got,
            whole,
            "{name}: transcript differs for reads of {:?}",
            lens(&reads)
        );
        if !large || reads.len() <= 2 {
            let out = serve_output(&reads, limits);
            assert!(
                out == whole_out,
                "{name}: output differs for reads of {:?}",
                lens(&reads)
            );
        }
    }
    whole
}

fn lens(reads: &[&[u8]]) -> Vec<usize> {
    reads.iter().map(|r| r.len()).collect()
}
