//! `percore-bench resp`: RESP (Redis protocol) load: a mix of `GET key` and `SET key value`
//! over a key space, each connection drawing keys from its own seeded generator (so a run
//! replays). Error replies (`-ERR …`) count as `status` errors; a GET of a missing key (a
//! null reply) is a success.

pub mod parse;

use std::io::Write as _;

use self::parse::{Reply, parse_reply};
use crate::load::{AtEof, Parsed, Protocol};

/// What to send.
#[derive(Clone, Debug)]
pub struct RespWorkload {
    /// Share of requests that are SET (0.0 = only GET, 1.0 = only SET).
    pub set_ratio: f64,
    /// Keys are `key:0` … `key:{keyspace-1}`.
    pub keyspace: u64,
    /// Bytes of each SET value.
    pub value_size: usize,
    /// Seed of the key and command choices (each connection mixes in its id).
    pub seed: u64,
}

impl Default for RespWorkload {
    fn default() -> Self {
        RespWorkload {
            set_ratio: 0.1,
            keyspace: 10_000,
            value_size: 64,
            seed: 1,
        }
    }
}

/// The RESP protocol for the load engine.
pub struct Resp {
    workload: RespWorkload,
    /// `set_ratio` as a threshold on a random u32.
    set_below: u64,
    value: Vec<u8>,
}

impl Resp {
    pub fn new(workload: RespWorkload) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&workload.set_ratio) {
            return Err("--set-ratio must be between 0 and 1".into());
        }
        if workload.keyspace == 0 {
            return Err("--keyspace must be at least 1".into());
        }
        let set_below = (workload.set_ratio * f64::from(u32::MAX) + 0.5) as u64;
        let value = (0..workload.value_size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        Ok(Resp {
            workload,
            set_below,
            value,
        })
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        let w = &self.workload;
        format!(
            "GET/SET {:.0}% SET, {} keys, {} B values",
            w.set_ratio * 100.0,
            w.keyspace,
            w.value_size
        )
    }
}

/// Per-connection state: a xorshift64* generator.
pub struct RespConn {
    rng: u64,
}

impl RespConn {
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Protocol for Resp {
    type Conn = RespConn;

    fn name(&self) -> &'static str {
        "resp"
    }

    fn conn(&self, id: usize) -> RespConn {
        RespConn {
            rng: (self.workload.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        }
    }

    fn write_request(&self, conn: &mut RespConn, out: &mut Vec<u8>) {
        let r = conn.next();
        let key = (r >> 32) % self.workload.keyspace;
        let is_set = (r & 0xFFFF_FFFF) < self.set_below;
        let key_len = decimal_len(key) + 4;
        // Writing into a Vec cannot fail.
        if is_set {
            let _ = write!(
                out,
                "*3\r\n$3\r\nSET\r\n${key_len}\r\nkey:{key}\r\n${}\r\n",
                self.value.len()
            );
            out.extend_from_slice(&self.value);
            out.extend_from_slice(b"\r\n");
        } else {
            let _ = write!(out, "*2\r\n$3\r\nGET\r\n${key_len}\r\nkey:{key}\r\n");
        }
    }

    fn parse(&self, _conn: &mut RespConn, data: &[u8]) -> (usize, Parsed) {
        match parse_reply(data) {
            Reply::More => (0, Parsed::More),
            Reply::Invalid => (data.len().max(1), Parsed::Invalid),
            Reply::Done { len, error, .. } => (
                len,
                Parsed::Response {
                    ok: !error,
                    close: false,
                },
            ),
        }
    }

    fn at_eof(&self, _conn: &mut RespConn, unconsumed: usize) -> AtEof {
        if unconsumed == 0 {
            AtEof::Closed
        } else {
            AtEof::Truncated
        }
    }
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_valid_resp_arrays_in_the_asked_mix() {
        let resp = Resp::new(RespWorkload {
            set_ratio: 0.25,
            keyspace: 1000,
            value_size: 5,
            seed: 7,
        })
        .unwrap();
        let mut conn = resp.conn(3);
        let (mut sets, mut gets) = (0, 0);
        for _ in 0..4000 {
            let mut out = Vec::new();
            resp.write_request(&mut conn, &mut out);
            // A request is a RESP array of bulk strings: the reply parser frames it whole.
            assert_eq!(
                parse_reply(&out),
                Reply::Done {
                    len: out.len(),
                    error: false,
                    null: false
                }
            );
            if out.starts_with(b"*3\r\n$3\r\nSET\r\n") {
                assert!(out.ends_with(b"\r\n$5\r\nabcde\r\n"));
                sets += 1;
            } else {
                assert!(out.starts_with(b"*2\r\n$3\r\nGET\r\n$"));
                gets += 1;
            }
        }
        assert!((900..1100).contains(&sets), "sets {sets} gets {gets}");
        assert!(
            Resp::new(RespWorkload {
                set_ratio: 1.5,
                ..RespWorkload::default()
            })
            .is_err()
        );
        assert_eq!((decimal_len(0), decimal_len(9), decimal_len(10)), (1, 1, 2));
    }
}
