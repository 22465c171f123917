//! One client connection: connect, keep `pipeline` messages in flight, verify every echoed
//! byte, reconnect after a failure, stop once the window has closed and nothing is in flight.

use std::{collections::VecDeque, io, rc::Rc, time::Instant};

use percore::{
    TcpStream,
    time::{sleep, timeout},
};

use super::{ErrorKind, ShardState};
use crate::{
    connect::{RECONNECT_BACKOFF, connect},
    measure::Phase,
};

/// Unsent output above which the writer waits for the socket (large messages × pipeline).
const WRITE_BACKLOG: usize = 64 * 1024;

/// The bytes connection `id` sends: a pseudo-random block, so a byte flipped, lost,
/// duplicated, reordered or taken from another connection shows up as a mismatch.
/// Message `seq` starts at offset `seq % 251` of the block: consecutive messages differ.
pub struct Pattern {
    block: Vec<u8>,
    size: usize,
}

const PATTERN_OFFSETS: u64 = 251;

impl Pattern {
    pub fn new(id: u64, size: usize) -> Self {
        // xorshift64*: deterministic, cheap, distinct per connection.
        let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let block = (0..size + PATTERN_OFFSETS as usize)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect();
        Pattern { block, size }
    }

    pub fn message(&self, seq: u64) -> &[u8] {
        let start = (seq % PATTERN_OFFSETS) as usize;
        &self.block[start..start + self.size]
    }
}

/// Streaming check of the echo: where in which message the next byte belongs.
struct Verifier<'a> {
    pattern: &'a Pattern,
    seq: u64,
    offset: usize,
}

/// What one batch of echoed bytes held.
struct Checked {
    completed: usize,
    mismatch: bool,
}

impl Verifier<'_> {
    /// Checks `data` against the next expected bytes of at most `in_flight` messages.
    fn check(&mut self, data: &[u8], in_flight: usize) -> Checked {
        let mut done = Checked {
            completed: 0,
            mismatch: false,
        };
        let mut data = data;
        while !data.is_empty() {
            if done.completed == in_flight {
                // Bytes nobody sent.
                done.mismatch = true;
                break;
            }
            let want = &self.pattern.message(self.seq)[self.offset..];
            let n = want.len().min(data.len());
            if data[..n] != want[..n] {
                done.mismatch = true;
                break;
            }
            data = &data[n..];
            self.offset += n;
            if self.offset == self.pattern.size {
                self.offset = 0;
                self.seq += 1;
                done.completed += 1;
            }
        }
        done
    }
}

/// Runs connection `id` until the window has closed.
pub(crate) async fn run_connection(id: usize, shard: Rc<ShardState>) {
    let cfg = shard.cfg.clone();
    let pattern = Pattern::new(id as u64, cfg.message_size);
    loop {
        let phase = shard.phase();
        if phase == Phase::Done {
            return;
        }
        let stream = match connect(cfg.target, cfg.timeout).await {
            Ok(stream) => stream,
            Err(failure) => {
                // The error is counted in the phase in which the attempt began.
                shard.error(phase, failure.into());
                continue;
            }
        };
        if drive(stream, &pattern, &shard).await {
            return;
        }
        sleep(RECONNECT_BACKOFF).await;
    }
}

/// A request on the wire: when and in which phase it was sent.
struct InFlight {
    sent_at: Instant,
    phase: Phase,
}

/// Runs requests on one connection. True: the window closed and every request finished;
/// false: the connection failed (its in-flight requests are counted as errors).
async fn drive(mut stream: TcpStream, pattern: &Pattern, shard: &ShardState) -> bool {
    let cfg = &shard.cfg;
    let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(cfg.pipeline);
    let mut next_seq = 0u64;
    let mut verifier = Verifier {
        pattern,
        seq: 0,
        offset: 0,
    };
    loop {
        while in_flight.len() < cfg.pipeline {
            let phase = shard.phase();
            if phase == Phase::Done {
                break;
            }
            if stream.pending_output() >= WRITE_BACKLOG
                && let Err(e) = timeout(cfg.timeout, stream.writable())
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
                    })
            {
                fail(shard, &mut in_flight, ErrorKind::of_io(&e));
                return false;
            }
            shard.sent(phase);
            in_flight.push_back(InFlight {
                sent_at: Instant::now(),
                phase,
            });
            if let Err(e) = stream.write_buffered(pattern.message(next_seq)) {
                fail(shard, &mut in_flight, ErrorKind::of_io(&e));
                return false;
            }
            next_seq += 1;
        }
        if in_flight.is_empty() {
            return true;
        }
        let waiting = in_flight.len();
        let read = timeout(
            cfg.timeout,
            stream.read_with(|data| (data.len(), verifier.check(data, waiting))),
        )
        .await;
        let checked = match read {
            Ok(Ok(Some(checked))) => checked,
            Ok(Ok(None)) => {
                fail(shard, &mut in_flight, ErrorKind::Eof);
                return false;
            }
            Ok(Err(e)) => {
                fail(shard, &mut in_flight, ErrorKind::of_io(&e));
                return false;
            }
            Err(_) => {
                fail(shard, &mut in_flight, ErrorKind::Timeout);
                return false;
            }
        };
        let now = Instant::now();
        for request in in_flight.drain(..checked.completed) {
            shard.ok(request.phase, now - request.sent_at);
        }
        if checked.mismatch {
            fail(shard, &mut in_flight, ErrorKind::Mismatch);
            return false;
        }
    }
}

/// Counts the oldest in-flight request as failed for `kind` and the ones behind it as
/// aborted (the connection is dropped, so their echoes will never be read).
fn fail(shard: &ShardState, in_flight: &mut VecDeque<InFlight>, kind: ErrorKind) {
    let mut requests = in_flight.drain(..);
    if let Some(first) = requests.next() {
        shard.error(first.phase, kind);
    }
    for request in requests {
        shard.error(request.phase, ErrorKind::Aborted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_accepts_split_echo_and_counts_messages() {
        let pattern = Pattern::new(7, 10);
        let mut wire = pattern.message(0).to_vec();
        wire.extend_from_slice(pattern.message(1));
        let mut v = Verifier {
            pattern: &pattern,
            seq: 0,
            offset: 0,
        };
        let a = v.check(&wire[..3], 2);
        assert_eq!((a.completed, a.mismatch), (0, false));
        let b = v.check(&wire[3..], 2);
        assert_eq!((b.completed, b.mismatch), (2, false));
    }

    #[test]
    fn verifier_flags_a_flipped_byte_extra_bytes_and_another_connection() {
        let pattern = Pattern::new(1, 16);
        let mut v = Verifier {
            pattern: &pattern,
            seq: 0,
            offset: 0,
        };
        let mut wire = pattern.message(0).to_vec();
        wire[5] ^= 1;
        assert!(v.check(&wire, 1).mismatch);

        let mut v = Verifier {
            pattern: &pattern,
            seq: 0,
            offset: 0,
        };
        let mut wire = pattern.message(0).to_vec();
        wire.push(0);
        let extra = v.check(&wire, 1);
        assert_eq!((extra.completed, extra.mismatch), (1, true));

        let other = Pattern::new(2, 16);
        let mut v = Verifier {
            pattern: &pattern,
            seq: 0,
            offset: 0,
        };
        assert!(v.check(other.message(0), 1).mismatch);
        assert_ne!(pattern.message(0), pattern.message(1));
    }
}
