//! Connection caps and their policy (R11), each with twice as many clients as the cap.
//!
//! The kernel's caps (`NetConfig::max_connections_per_shard`, `ServerBuilder::max_connections`)
//! follow the policy "stop accepting and let the backlog hold": a shard at a cap has no
//! accept in flight, further clients wait in the kernel's listen backlog and are accepted in
//! turn as connections close. Each test shows: never more than the cap held at once, every
//! client answered in its turn, none accepted and left hanging, accepting paused at the cap
//! (counted). Run on both drivers (`PERCORE_DRIVER=epoll`, see tests/run.sh).
//!
//! The first two tests show what a service can build on top: a cap of its own (it stops
//! calling `accept()`), bounded by `NetConfig::accept_queue_max`, which is a hard bound.

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

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use percore::{NetConfig, Server, ServerBuilder, TcpListener, TcpStream};

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
    let addr = shards::free_loopback_addr();
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

/// What clients saw and the shards reported while a kernel cap held them back.
#[derive(Debug)]
struct KernelCapRun {
    /// Most clients answered and not yet gone at once: each of them holds a connection
    /// the server accepted and has not yet released (it closes only after the client).
    most_served: usize,
    /// Most connections one shard counted against the caps at once (sampled).
    most_capped_per_shard: usize,
    /// Times accepting paused at a cap, all shards.
    paused: u64,
    /// Connections accepted, all shards.
    accepted: u64,
    finished: Vec<Duration>,
}

/// Serves echo on `shards` shards with `builder`'s caps; `clients` clients connect at once,
/// each is answered, holds its connection 100 ms, then leaves.
fn run_kernel_capped(builder: ServerBuilder, clients: usize) -> KernelCapRun {
    let addr = shards::free_loopback_addr();
    let server = shards::start(builder, move |_info| {
        let listener =
            TcpListener::bind(addr).map_err(|source| percore::Error::Bind { addr, source })?;
        Ok(async move {
            while let Ok(stream) = listener.accept().await {
                percore::spawn(percore_echo::handle(stream));
            }
        })
    });
    if let Ok(driver) = std::env::var("PERCORE_DRIVER") {
        let ran = server.shard_stats(Duration::from_secs(2))[0].driver;
        eprintln!("driver: {ran} (PERCORE_DRIVER={driver})");
    }

    let served = Arc::new(AtomicUsize::new(0));
    let most_served = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (served, most_served) = (served.clone(), most_served.clone());
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
                let now = served.fetch_add(1, Ordering::SeqCst) + 1;
                most_served.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(100));
                served.fetch_sub(1, Ordering::SeqCst);
                drop(stream);
                started.elapsed()
            })
        })
        .collect();
    let mut most_capped_per_shard = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !threads.iter().all(|c| c.is_finished()) && Instant::now() < deadline {
        for s in server.shard_stats(Duration::from_secs(2)) {
            most_capped_per_shard = most_capped_per_shard.max(s.net.capped);
        }
        thread::sleep(Duration::from_millis(5));
    }
    let finished = threads
        .into_iter()
        .map(|c| c.join().expect("every client answered"))
        .collect();
    // Every connection is released once its client has gone: the count returns to 0.
    let deadline = Instant::now() + shards::WAIT;
    let stats = loop {
        let stats = server.shard_stats(Duration::from_secs(2));
        if stats.iter().all(|s| s.net.capped == 0) || Instant::now() > deadline {
            break stats;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let left: Vec<usize> = stats.iter().map(|s| s.net.capped).collect();
    assert!(
        left.iter().all(|&n| n == 0),
        "connections still counted after every client left: {left:?}"
    );
    shards::stop(server);
    KernelCapRun {
        most_served: most_served.load(Ordering::SeqCst),
        most_capped_per_shard,
        paused: stats.iter().map(|s| s.net.accept_paused_at_cap).sum(),
        accepted: stats.iter().map(|s| s.net.accepted).sum(),
        finished,
    }
}

/// Some clients waited their turn: the last finished at least one hold (100 ms) after the
/// first.
fn assert_served_in_turn(run: &KernelCapRun, clients: usize) {
    assert_eq!(run.finished.len(), clients);
    assert_eq!(
        run.accepted, clients as u64,
        "every client accepted once: {run:?}"
    );
    let first = run.finished.iter().min().unwrap();
    let last = run.finished.iter().max().unwrap();
    assert!(
        *last >= *first + Duration::from_millis(100),
        "no client waited for a slot: {run:?}"
    );
    assert!(run.paused > 0, "accepting never paused at the cap: {run:?}");
}

#[test]
fn the_per_shard_cap_holds_and_twice_as_many_clients_are_answered_in_turn() {
    const N: usize = 8;
    let run = run_kernel_capped(
        Server::builder().shards(1).net(NetConfig {
            max_connections_per_shard: Some(N),
            ..NetConfig::default()
        }),
        2 * N,
    );
    eprintln!("{run:?}");
    assert!(
        run.most_served <= N && run.most_capped_per_shard <= N,
        "the shard held more than its cap of {N}: {run:?}"
    );
    assert_eq!(run.most_served, N, "the cap was never reached: {run:?}");
    assert_served_in_turn(&run, 2 * N);
}

#[test]
fn the_per_shard_cap_holds_on_each_of_two_shards() {
    const N: usize = 4;
    let run = run_kernel_capped(
        shards::two_shards().net(NetConfig {
            max_connections_per_shard: Some(N),
            ..NetConfig::default()
        }),
        2 * 2 * N,
    );
    eprintln!("{run:?}");
    assert!(
        run.most_capped_per_shard <= N && run.most_served <= 2 * N,
        "a shard held more than its cap of {N}: {run:?}"
    );
    assert_served_in_turn(&run, 2 * 2 * N);
}

#[test]
fn the_global_cap_holds_across_two_shards_and_twice_as_many_clients_are_answered() {
    const N: usize = 8;
    let run = run_kernel_capped(shards::two_shards().max_connections(N), 2 * N);
    eprintln!("{run:?}");
    assert!(
        run.most_served <= N,
        "the server held more than its cap of {N}: {run:?}"
    );
    // Accepts waiting on an idle shard may hold one slot each: the cap is reached but for
    // those.
    assert!(
        run.most_served >= N - 2,
        "the cap was far from reached: {run:?}"
    );
    assert_served_in_turn(&run, 2 * N);
}

#[test]
fn a_global_cap_below_the_shard_count_is_refused() {
    let err = shards::two_shards()
        .max_connections(1)
        .start(|_| Ok(async {}))
        .err()
        .expect("a cap of 1 for 2 shards is refused");
    assert!(err.to_string().contains("max_connections 1"), "{err}");
}

/// Connects, is echoed once, and returns the open stream (or the error it met).
fn echoed(addr: std::net::SocketAddr, tag: &str) -> std::io::Result<StdStream> {
    let mut stream = StdStream::connect(addr)?;
    stream.set_read_timeout(Some(shards::WAIT))?;
    stream.write_all(tag.as_bytes())?;
    let mut back = vec![0; tag.len()];
    stream.read_exact(&mut back)?;
    assert_eq!(back, tag.as_bytes());
    Ok(stream)
}

#[test]
fn a_slot_freed_on_one_shard_lets_another_shard_waiting_at_the_global_cap_accept() {
    // Shard 0 listens on A, shard 1 on B, so the test chooses who takes each client.
    const N: usize = 4;
    let free = || shards::free_loopback_addr();
    let (a, b) = (free(), free());
    let server = shards::start(shards::two_shards().max_connections(N), move |info| {
        let addr = if info.id == 0 { a } else { b };
        let listener =
            TcpListener::bind(addr).map_err(|source| percore::Error::Bind { addr, source })?;
        Ok(async move {
            while let Ok(stream) = listener.accept().await {
                percore::spawn(percore_echo::handle(stream));
            }
        })
    });
    // Shard 0 fills what the cap leaves it (shard 1 holds one slot for its waiting accept).
    let on_a: Vec<StdStream> = (0..N - 1)
        .map(|i| echoed(a, &format!("a{i}")).expect("shard 0 has room"))
        .collect();
    let b0 = echoed(b, "b0").expect("shard 1's accept in flight takes one");
    // Now the server is at its cap: two more clients of shard 1 wait in its backlog.
    let waiting: Vec<_> = (1..3)
        .map(|i| {
            thread::spawn(move || {
                let started = Instant::now();
                echoed(b, &format!("b{i}")).map(|s| (s, started.elapsed()))
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let stats = server.shard_stats(Duration::from_secs(2));
    let held: usize = stats.iter().map(|s| s.net.capped).sum();
    assert!(held <= N, "{held} connections held, cap {N}");
    assert_eq!(stats[1].net.accepted, 1, "shard 1 accepted past the cap");
    assert!(stats[1].net.accept_paused_at_cap > 0);
    // Shard 0's clients leave; shard 1 has nothing of its own to wake it (b0 stays): only
    // the message from shard 0 can tell it that there is room again.
    let released_at = Instant::now();
    drop(on_a);
    for w in waiting {
        let (_stream, waited) = w
            .join()
            .unwrap()
            .expect("a client waiting on shard 1 answered once shard 0 freed slots");
        assert!(
            waited >= Duration::from_millis(250),
            "answered before room came back"
        );
    }
    eprintln!("answered {:?} after the release", released_at.elapsed());
    drop(b0);
    shards::stop(server);
}
