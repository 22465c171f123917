//! A per-shard connection cap and its policy (R11), with twice as many clients as the cap.
//!
//! The kernel has no connection cap of its own yet; what it gives a service is the means to
//! build one with a bounded cost: a service that stops calling `accept()` at its cap stops the
//! shard's accepting once `NetConfig::accept_queue_max` connections are queued, and every
//! further client waits in the kernel's listen backlog (the policy "stop accepting and let
//! the backlog hold"). This test builds that cap (8 connections per shard, 4 queued) and
//! shows the policy: the shards never hold more than cap + queue, and no client is accepted
//! and left hanging: all 32 are answered, in their turn, within bounded time.

#[path = "support/shards.rs"]
mod shards;

use std::{
    cell::Cell,
    future::poll_fn,
    io::{Read, Write},
    net::TcpStream as StdStream,
    rc::Rc,
    task::{Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use percore::{NetConfig, Server, TcpListener, TcpStream};

const SHARDS: usize = 2;
const CAP: usize = 8;
const QUEUE: usize = 4;
const CLIENTS: usize = 2 * SHARDS * CAP;

/// The shard-local count of connections being served, and who waits for a free slot.
#[derive(Default)]
struct Slots {
    used: Cell<usize>,
    waiter: Cell<Option<Waker>>,
}

impl Slots {
    async fn acquire(self: &Rc<Self>) -> Slot {
        poll_fn(|cx| {
            if self.used.get() < CAP {
                self.used.set(self.used.get() + 1);
                Poll::Ready(())
            } else {
                self.waiter.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        Slot(self.clone())
    }
}

/// A held slot; dropping it frees the slot and wakes the accept loop.
struct Slot(Rc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.used.set(self.0.used.get() - 1);
        if let Some(waker) = self.0.waiter.take() {
            waker.wake();
        }
    }
}

async fn echo(mut stream: TcpStream, _slot: Slot) {
    while let Ok(Some(())) = stream
        .respond_with(|input, output| {
            output.extend_from_slice(input);
            (input.len(), ())
        })
        .await
    {}
}

/// What the shards held while twice the cap of clients came and went.
#[derive(Debug)]
struct Observed {
    /// Most connections one shard served at once.
    most_open: usize,
    /// Most connections one shard had accepted but not yet handed to the service.
    most_queued: u64,
    /// When each client was done (answered, then held its slot 100 ms).
    finished: Vec<Duration>,
}

/// Runs the capped service and `CLIENTS` clients connecting at once; each is answered once
/// it gets a slot, holds it for 100 ms, then leaves.
fn run_capped() -> Observed {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let server = shards::start(
        Server::builder().shards(SHARDS).net(NetConfig {
            accept_queue_max: QUEUE,
            ..NetConfig::default()
        }),
        move |_info| {
            let listener =
                TcpListener::bind(addr).map_err(|source| percore::Error::Bind { addr, source })?;
            Ok(async move {
                let slots = Rc::new(Slots::default());
                loop {
                    let slot = slots.acquire().await;
                    match listener.accept().await {
                        Ok(stream) => {
                            percore::spawn(echo(stream, slot));
                        }
                        Err(_) => break, // the server is stopping
                    }
                }
            })
        },
    );

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let mut stream = StdStream::connect(addr).expect("the backlog takes it");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let message = format!("client {i:03}");
                stream.write_all(message.as_bytes()).unwrap();
                let mut back = vec![0; message.len()];
                stream
                    .read_exact(&mut back)
                    .unwrap_or_else(|e| panic!("client {i} left hanging: {e}"));
                assert_eq!(back, message.as_bytes());
                thread::sleep(Duration::from_millis(100));
                started.elapsed()
            })
        })
        .collect();
    // Meanwhile, sample what the shards hold (bounded: the clients' reads time out). Placed
    // connections are the served ones plus those accepted and queued for `accept()`.
    let (mut most_open, mut most_queued) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !clients.iter().all(|c| c.is_finished()) && Instant::now() < deadline {
        for s in server.shard_stats(Duration::from_secs(2)) {
            most_open = most_open.max(s.net.open);
            most_queued = most_queued.max(s.load.connections.saturating_sub(s.net.open as u64));
        }
        thread::sleep(Duration::from_millis(5));
    }
    let finished = clients
        .into_iter()
        .map(|c| c.join().expect("every client answered"))
        .collect();
    shards::stop(server);
    Observed {
        most_open,
        most_queued,
        finished,
    }
}

#[test]
fn a_capped_service_answers_twice_its_cap_of_clients_in_turn() {
    let seen = run_capped();
    assert!(
        seen.most_open <= CAP,
        "a shard served {} connections at once, cap {CAP}",
        seen.most_open
    );
    // Every client was answered (run_capped joins them); the cap made some wait their turn.
    let first = seen.finished.iter().min().unwrap();
    let last = seen.finished.iter().max().unwrap();
    assert!(
        *last >= *first + Duration::from_millis(100),
        "no client waited for a slot: {seen:?}"
    );
}

#[test]
fn the_accept_queue_holds_at_most_accept_queue_max() {
    let seen = run_capped();
    // One more than the max may be in transit between the queue and `accept()`.
    assert!(
        seen.most_queued as usize <= QUEUE + 1,
        "a shard queued {} accepted connections, accept_queue_max {QUEUE}",
        seen.most_queued
    );
}
