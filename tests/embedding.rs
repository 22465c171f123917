//! The embedding API (issue 24): the per-shard init hook, `PerShard` state, background tasks
//! cancelled at the drain start, exclusive ports with an opt-in to share, service gauges and
//! histograms, `join_all`, bounded `read_line`, and `#[track_caller]` on shard-only calls.

#[path = "support/shards.rs"]
mod shards;

use std::{
    cell::Cell,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream as StdStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use percore::{
    JoinError, PerShard, Server, ShardInfo, Steering, TcpStream, metrics, spawn, spawn_background,
};
use shards::{WAIT, lock, stop};

fn local0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn ignore(_stream: TcpStream) {}

/// A request over plain HTTP/1.0 to the admin listener; the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = StdStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_init_hook_runs_exactly_once_on_every_shard_with_every_steering_mode() {
    for steering in [Steering::ReusePort, Steering::Cpu, Steering::Balanced] {
        let seen: Arc<Mutex<Vec<ShardInfo>>> = Arc::default();
        let record = seen.clone();
        let server = Server::builder()
            .shards(3)
            .steering(steering)
            .on_shard_start(move |info| {
                lock(&record).push(info);
                Ok(())
            })
            .serve(local0(), ignore)
            .expect("serve starts");
        // Port 0 still tells the chosen port.
        assert_ne!(server.listen_addr().unwrap().port(), 0);
        let mut ids: Vec<usize> = lock(&seen).iter().map(|i| i.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![0, 1, 2], "{steering:?}: once per shard");
        assert!(lock(&seen).iter().all(|i| i.count == 3));
        // Each ran on its own shard thread.
        stop(server);
        assert_eq!(lock(&seen).len(), 3, "not run again by the stop");
    }
}

#[test]
fn an_init_hook_error_stops_the_start_and_is_returned() {
    let err = Server::builder()
        .shards(2)
        .on_shard_start(|info| {
            if info.id == 1 {
                return Err(std::io::Error::other("no config for shard 1").into());
            }
            Ok(())
        })
        .serve(local0(), ignore)
        .err()
        .expect("the start fails");
    assert!(err.to_string().contains("no config for shard 1"), "{err}");
}

static GREETING: PerShard<String> = PerShard::new();
static SERVED: PerShard<Cell<u64>> = PerShard::new();

#[test]
fn per_shard_state_set_by_the_hook_is_seen_by_that_shards_connections() {
    let server = Server::builder()
        .shards(2)
        .on_shard_start(|info| {
            GREETING.set(format!("shard {}", info.id));
            Ok(())
        })
        .serve(local0(), |mut stream: TcpStream| async move {
            let n = SERVED.get_or_init(|| Cell::new(0));
            n.set(n.get() + 1);
            let line = format!("{} {}\n", GREETING.get(), n.get());
            let _ = stream.write_all(line.as_bytes()).await;
            let _ = stream.close().await;
        })
        .unwrap();
    let addr = server.listen_addr().unwrap();
    let mut per_shard: [u64; 2] = [0; 2];
    for _ in 0..20 {
        let mut reply = String::new();
        let mut conn = StdStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        conn.read_to_string(&mut reply).unwrap();
        let mut words = reply.split_whitespace().skip(1);
        let shard: usize = words.next().unwrap().parse().unwrap();
        let count: u64 = words.next().unwrap().parse().unwrap();
        // Each shard counts its own connections, from 1, with no sharing.
        per_shard[shard] += 1;
        assert_eq!(count, per_shard[shard], "{reply}");
    }
    stop(server);
}

#[test]
fn per_shard_off_a_shard_panics_naming_the_callers_line() {
    let result = std::panic::catch_unwind(|| GREETING.get());
    let message = result.unwrap_err();
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(message.contains("percore shard"), "{message}");
    assert!(GREETING.try_get().is_none());
}

/// `#[track_caller]`: a shard-only function called off a shard panics at the caller's line,
/// not inside percore.
#[test]
fn shard_only_functions_panic_at_the_callers_line() {
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let previous = std::panic::take_hook();
    let me = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me
            && let Some(location) = info.location()
        {
            let _ = lock(&tx).send(location.file().to_string());
        }
    }));
    let calls: Vec<Box<dyn Fn() + std::panic::RefUnwindSafe>> = vec![
        Box::new(|| drop(spawn(async {}))),
        Box::new(|| drop(spawn_background(async {}))),
        Box::new(|| drop(percore::sleep(Duration::from_millis(1)))),
        Box::new(|| drop(percore::spawn_blocking(|| ()))),
        Box::new(|| {
            let _ = percore::mesh::shard_id();
        }),
        Box::new(|| drop(metrics::gauge("x", "x", &[]))),
        Box::new(|| drop(percore::TcpListener::bind(local0()))),
        // Those returning a future check at the call.
        Box::new(|| drop(percore::shutdown_signal())),
        Box::new(|| drop(percore::mesh::submit_to(0, || ()))),
        Box::new(|| drop(percore::mesh::send_to(0, || ()))),
        Box::new(|| drop(TcpStream::connect(local0()))),
        Box::new(|| drop(percore::timeout(Duration::from_millis(1), async {}))),
    ];
    let mut files = Vec::new();
    for call in &calls {
        assert!(std::panic::catch_unwind(call).is_err());
        files.push(rx.recv_timeout(WAIT).unwrap());
    }
    std::panic::set_hook(previous);
    for file in files {
        assert!(file.ends_with("embedding.rs"), "panic located in {file}");
    }
}

#[test]
fn a_background_task_that_ignores_shutdown_does_not_hold_the_stop() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (dropped2, cancelled2) = (dropped.clone(), cancelled.clone());
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let server = Server::builder()
        .shards(2)
        // Far longer than the test allows: only a cancel can end the loops in time.
        .drain_timeout(Duration::from_secs(30))
        .on_shard_start(move |_| {
            let dropped = dropped2.clone();
            let cancelled = cancelled2.clone();
            let ticker = spawn(async move {
                let _guard = Guard(dropped);
                loop {
                    percore::sleep(Duration::from_millis(5)).await;
                }
            });
            // A task spawned by a background task is one too; its handle learns why.
            spawn(async move {
                if ticker.await == Err(JoinError::Cancelled) {
                    cancelled.fetch_add(1, Ordering::SeqCst);
                }
            });
            Ok(())
        })
        .serve(local0(), ignore)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let began = Instant::now();
    server.stop();
    let joined = shards::join_within(server, Duration::from_secs(10));
    let took = began.elapsed();
    assert!(matches!(joined, Some(Ok(()))), "{joined:?}");
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "each shard's loop was dropped"
    );
    // The waiting task is a background task too, cancelled with it (so it may not have
    // seen the result); what matters is that nothing held the stop.
    assert!(cancelled.load(Ordering::SeqCst) <= 2);
}

#[test]
fn a_plain_task_is_waited_for_until_it_finishes_its_shutdown_work() {
    let flushed = Arc::new(AtomicBool::new(false));
    let flag = flushed.clone();
    let server = Server::builder()
        .shards(1)
        .drain_timeout(Duration::from_secs(10))
        .start(move |_| {
            let flag = flag.clone();
            Ok(async move {
                // A plain task: the drain waits for it (bounded by the drain timeout).
                spawn(async move {
                    percore::shutdown_signal().await;
                    percore::sleep(Duration::from_millis(100)).await;
                    flag.store(true, Ordering::SeqCst);
                });
            })
        })
        .unwrap();
    server.stop();
    assert!(matches!(
        shards::join_within(server, Duration::from_secs(10)),
        Some(Ok(()))
    ));
    assert!(
        flushed.load(Ordering::SeqCst),
        "the plain task finished first"
    );
}

#[test]
fn a_second_server_on_a_listened_port_fails_unless_opted_in() {
    let first = Server::builder().shards(2).serve(local0(), ignore).unwrap();
    let addr = first.listen_addr().unwrap();

    let err = Server::builder()
        .shards(1)
        .serve(addr, ignore)
        .err()
        .expect("a second server on the same port is refused");
    assert!(
        matches!(&err, percore::Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("in use"),
        "{text}"
    );
    assert_eq!(err.exit_code(), 4);

    // `TcpListener::bind` on a shard: refused too, while the shards of one server share.
    let (tx, rx) = mpsc::channel();
    let probe = Server::builder()
        .shards(2)
        .start(move |_| {
            let tx = tx.clone();
            Ok(async move {
                let theirs = percore::TcpListener::bind(addr).map(drop);
                let own = percore::TcpListener::bind("127.0.0.1:0".parse().unwrap())
                    .map(|l| l.local_addr());
                let _ = tx.send((theirs.map_err(|e| e.kind()), own.is_ok()));
            })
        })
        .unwrap();
    for _ in 0..2 {
        let (theirs, own) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(theirs, Err(std::io::ErrorKind::AddrInUse));
        assert!(own);
    }
    stop(probe);

    // A listener outside percore counts too.
    let std_listener = std::net::TcpListener::bind(local0()).unwrap();
    let std_addr = std_listener.local_addr().unwrap();
    assert!(Server::builder().shards(1).serve(std_addr, ignore).is_err());
    drop(std_listener);

    // Opted in: the second server joins the port and both serve it.
    let shared = Server::builder()
        .shards(1)
        .reuse_port_shared(true)
        .serve(addr, ignore)
        .expect("an explicit opt-in shares the port");
    stop(shared);
    stop(first);

    // Once the first server stopped, the port is free again (TIME_WAIT does not count).
    let again = Server::builder().shards(2).serve(addr, ignore).unwrap();
    stop(again);
}

#[test]
fn the_shards_of_one_server_share_a_port_bound_in_start() {
    let addr = shards::free_loopback_addr();
    let (tx, rx) = mpsc::channel();
    let server = Server::builder()
        .shards(3)
        .start(move |_| {
            let tx = tx.clone();
            Ok(async move {
                match percore::TcpListener::bind(addr) {
                    Ok(listener) => {
                        let _ = tx.send(Ok(()));
                        // Held until the stop: a dropped listener's socket is closed
                        // through the ring, a moment later, and a shard binding the port
                        // in that moment would meet it as someone else's.
                        while listener.accept().await.is_ok() {}
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            })
        })
        .unwrap();
    for _ in 0..3 {
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), Ok(()));
    }
    stop(server);
}

#[test]
fn gauges_and_histograms_registered_up_front_appear_at_zero_then_count() {
    let server = Server::builder()
        .shards(2)
        .admin(local0())
        .on_shard_start(|_| {
            metrics::gauge("app_items", "Items held.", &[]);
            metrics::histogram(
                "app_work_seconds",
                "Time spent on work.",
                &[("kind", "x")],
                &[0.01, 0.1],
            );
            Ok(())
        })
        .serve(local0(), |mut stream: TcpStream| async move {
            metrics::gauge("app_items", "Items held.", &[]).add(5);
            let h = metrics::histogram("app_work_seconds", "", &[("kind", "x")], &[]);
            h.observe(0.05);
            h.observe(3.0);
            let _ = stream.write_all(b"ok").await;
            let _ = stream.close().await;
        })
        .unwrap();
    let admin = server.report().admin_addr.unwrap();
    let body = http_get(admin, "/metrics");
    assert_eq!(body.matches("# TYPE app_items gauge").count(), 1, "{body}");
    assert_eq!(
        body.matches("# TYPE app_work_seconds histogram").count(),
        1,
        "{body}"
    );
    for shard in 0..2 {
        for line in [
            format!("app_items{{shard=\"{shard}\"}} 0\n"),
            format!("app_work_seconds_bucket{{kind=\"x\",shard=\"{shard}\",le=\"+Inf\"}} 0\n"),
            format!("app_work_seconds_count{{kind=\"x\",shard=\"{shard}\"}} 0\n"),
        ] {
            assert!(
                body.contains(&line),
                "{line} before any request in:\n{body}"
            );
        }
    }
    let mut conn = StdStream::connect(server.listen_addr().unwrap()).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "ok");
    let stats = server.shard_stats(WAIT);
    let items: i64 = stats
        .iter()
        .flat_map(|s| &s.service_gauges)
        .filter(|g| g.name == "app_items")
        .map(|g| g.value)
        .sum();
    assert_eq!(items, 5);
    let body = http_get(admin, "/metrics");
    let served = stats
        .iter()
        .find(|s| s.service_gauges.iter().any(|g| g.value == 5))
        .unwrap()
        .shard;
    for line in [
        format!("app_work_seconds_bucket{{kind=\"x\",shard=\"{served}\",le=\"0.01\"}} 0\n"),
        format!("app_work_seconds_bucket{{kind=\"x\",shard=\"{served}\",le=\"0.1\"}} 1\n"),
        format!("app_work_seconds_bucket{{kind=\"x\",shard=\"{served}\",le=\"+Inf\"}} 2\n"),
        format!("app_work_seconds_sum{{kind=\"x\",shard=\"{served}\"}} 3.05\n"),
        format!("app_work_seconds_count{{kind=\"x\",shard=\"{served}\"}} 2\n"),
    ] {
        assert!(body.contains(&line), "{line} in:\n{body}");
    }
    stop(server);
}

#[test]
fn join_all_runs_futures_concurrently_on_a_shard() {
    let out = shards::run_on(Server::builder().shards(1), 0, || async {
        let began = Instant::now();
        let outputs = percore::join_all((0..10u64).map(|i| async move {
            percore::sleep(Duration::from_millis(100)).await;
            i * 2
        }))
        .await;
        let (a, b) = percore::join(async { 1 }, async {
            percore::sleep(Duration::from_millis(10)).await;
            2
        })
        .await;
        (outputs, (a, b), began.elapsed())
    });
    assert_eq!(out.0, (0..10).map(|i| i * 2).collect::<Vec<u64>>());
    assert_eq!(out.1, (1, 2));
    // Ten 100 ms sleeps at once, not one after the other.
    assert!(out.2 < Duration::from_millis(900), "{:?}", out.2);
}

#[test]
fn read_line_reads_lines_across_reads_and_refuses_one_over_its_limit() {
    const LIMIT: usize = 16;
    let server = Server::builder()
        .shards(1)
        .serve(local0(), |mut stream: TcpStream| async move {
            loop {
                let mut line = String::new();
                match stream.read_line(&mut line, LIMIT).await {
                    Ok(0) => return,
                    Ok(n) => {
                        let reply = format!("{n}:{}\n", line.trim_end());
                        let _ = stream.write_all(reply.as_bytes()).await;
                    }
                    Err(e) => {
                        let _ = stream.write_all(format!("error: {e}\n").as_bytes()).await;
                        let _ = stream.close().await;
                        return;
                    }
                }
            }
        })
        .unwrap();
    let mut conn = StdStream::connect(server.listen_addr().unwrap()).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut reply = String::new();
    // A line split over two writes.
    conn.write_all(b"hel").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    conn.write_all(b"lo\nworld\n").unwrap();
    reader.read_line(&mut reply).unwrap();
    assert_eq!(reply, "6:hello\n");
    reply.clear();
    reader.read_line(&mut reply).unwrap();
    assert_eq!(reply, "6:world\n");
    // Exactly at the limit is fine; one byte over is refused without waiting for `\n`.
    let at_limit = format!("{}\n", "a".repeat(LIMIT - 1));
    conn.write_all(at_limit.as_bytes()).unwrap();
    reply.clear();
    reader.read_line(&mut reply).unwrap();
    assert_eq!(reply, format!("{LIMIT}:{}\n", "a".repeat(LIMIT - 1)));
    conn.write_all(&[b'b'; 4096]).unwrap();
    reply.clear();
    reader.read_line(&mut reply).unwrap();
    assert_eq!(reply, format!("error: line longer than {LIMIT} bytes\n"));
    reply.clear();
    assert_eq!(
        reader.read_line(&mut reply).unwrap(),
        0,
        "closed after the error"
    );
    stop(server);
}

/// What one shard logs: a `tracing` subscriber set as the shard thread's default by the
/// init hook (the thread's, so the other tests' servers do not write into it).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

static LOG: PerShard<tracing::subscriber::DefaultGuard> = PerShard::new();

/// Runs a one-shard server whose drain times out, with one client connection whose
/// handler ignores the stop: it holds the connection (`hold`), or leaves a plain task that
/// loops and closes the connection. Returns the shard's log.
fn drain_log(hold: bool) -> String {
    let capture = Capture::default();
    let writer = capture.clone();
    let server = Server::builder()
        .shards(1)
        .drain_timeout(Duration::from_millis(200))
        .on_shard_start(move |_| {
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(writer.clone())
                .finish();
            LOG.set(tracing::subscriber::set_default(subscriber));
            Ok(())
        })
        .serve(local0(), move |stream: TcpStream| async move {
            let forever = async {
                loop {
                    percore::sleep(Duration::from_millis(10)).await;
                }
            };
            if hold {
                forever.await;
                drop(stream);
            } else {
                drop(spawn(forever));
            }
        })
        .unwrap();
    let client = StdStream::connect(server.listen_addr().unwrap()).unwrap();
    // The handler's task (or the task it left) is alive, and the connection is open or not.
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = &server.shard_stats(WAIT)[0];
        if stats.net.accepted == 1 && stats.net.open == usize::from(hold) && stats.tasks >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.stop();
    assert!(matches!(shards::join_within(server, WAIT), Some(Ok(()))));
    drop(client);
    String::from_utf8(lock(&capture.0).clone()).unwrap()
}

#[test]
fn the_drain_log_tells_connections_from_tasks() {
    let with_connection = drain_log(true);
    assert!(
        with_connection.contains("closing the remaining connections")
            && with_connection.contains("connections=1"),
        "{with_connection}"
    );
    let without = drain_log(false);
    assert!(
        without.contains("no connection is left") && without.contains("tasks="),
        "{without}"
    );
    assert!(
        !without.contains("closing the remaining connections"),
        "{without}"
    );
}

#[test]
fn more_shards_than_cpus_is_warned_about_in_the_startup_report() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let server = Server::builder()
        .shards(cpus + 1)
        .serve(local0(), ignore)
        .unwrap();
    let warning = server
        .report()
        .warnings
        .iter()
        .find(|w| w.contains(&format!("{} shards are pinned to {cpus} CPUs", cpus + 1)))
        .cloned();
    let printed = server.report().to_string();
    stop(server);
    let warning = warning.expect("an oversubscription warning");
    assert!(printed.contains(&warning), "{printed}");
    let fits = Server::builder()
        .shards(cpus)
        .serve(local0(), ignore)
        .unwrap();
    assert!(
        !fits
            .report()
            .warnings
            .iter()
            .any(|w| w.contains("pinned to")),
        "{:?}",
        fits.report().warnings
    );
    stop(fits);
}
