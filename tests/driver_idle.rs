//! An idle shard costs nothing on either driver: with a listener and an idle keep-alive
//! connection registered (on epoll: in the interest set, level-triggered), a shard makes
//! almost no loop iterations and uses no CPU while nothing happens. A busy loop would use
//! the whole second (100 ticks) and run millions of iterations.
//!
//! One test drives both drivers in turn (the shard thread is found by its name, so two
//! servers must not run at once in this binary).

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream as StdStream,
    time::{Duration, Instant},
};

use percore::{DriverChoice, DriverKind, Server, TcpStream};

/// The measured idle window.
const IDLE: Duration = Duration::from_secs(1);
/// CPU the shard thread may use in that second: 5 ticks of 10 ms (USER_HZ is 100), far
/// above an idle loop's nothing and far below a spinning loop's 100.
const MAX_TICKS: u64 = 5;
/// Loop iterations the shard may make in that second. The stats request that reads the
/// counter wakes it once or twice (1 on epoll, 2 on io_uring when this test was written); a
/// busy loop makes millions. The margin is for a loaded CI machine, not for periodic wake-ups.
const MAX_ITERATIONS: u64 = 20;

async fn echo(mut stream: TcpStream) {
    while let Ok(Some(())) = stream
        .respond_with(|input, output| {
            output.extend_from_slice(input);
            (input.len(), ())
        })
        .await
    {}
}

fn thread_cpu_ticks(tid: &str) -> u64 {
    let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .unwrap_or_else(|e| panic!("reading the stat of thread {tid}: {e}"));
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    let after_name = &stat[stat.rfind(')').expect("stat has the comm field") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("numeric stat field") };
    field(14) + field(15)
}

/// The kernel ids of this process's threads named `percore-shard-0`.
fn shard_threads() -> Vec<String> {
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|entry| {
            let tid = entry.ok()?.file_name().into_string().ok()?;
            let comm = fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
            (comm.trim() == "percore-shard-0").then_some(tid)
        })
        .collect()
}

/// Starts one shard on `choice`, leaves an idle connection on it, and returns (CPU ticks,
/// loop iterations) of the shard over [`IDLE`]; `None` when the driver cannot start here.
fn idle_cost(choice: DriverChoice) -> Option<(u64, u64)> {
    let server = match Server::builder()
        .shards(1)
        .driver(choice)
        .serve("127.0.0.1:0".parse().unwrap(), echo)
    {
        Ok(server) => server,
        Err(e) if choice == DriverChoice::IoUring => {
            eprintln!("io_uring cannot start here ({e}): only epoll is measured");
            return None;
        }
        Err(e) => panic!("the {choice} server did not start: {e}"),
    };
    let addr = server.listen_addr().expect("a listen address");
    // One round trip, then the connection stays open and idle with its receive armed.
    let mut client = StdStream::connect(addr).expect("connects");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).expect("the echo");
    assert_eq!(&buf, b"ping");
    let stats = server.shard_stats(Duration::from_secs(5));
    let expected = match choice {
        DriverChoice::Epoll => DriverKind::Epoll,
        _ => DriverKind::IoUring,
    };
    assert_eq!(stats[0].driver, expected);
    let tids = shard_threads();
    assert_eq!(tids.len(), 1, "one shard thread: {tids:?}");
    let tid = &tids[0];

    let (ticks0, iterations0) = (thread_cpu_ticks(tid), stats[0].loop_.iterations);
    let started = Instant::now();
    // The measurement window itself, not a wait for an event: nothing is meant to happen.
    std::thread::sleep(IDLE);
    let ticks = thread_cpu_ticks(tid) - ticks0;
    let stats = server.shard_stats(Duration::from_secs(5));
    let iterations = stats[0].loop_.iterations - iterations0;
    let elapsed = started.elapsed();
    assert!(elapsed >= IDLE, "measured over {elapsed:?}");

    // The connection still works after the idle second.
    client.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).expect("the echo after idling");
    assert_eq!(&buf, b"pong");
    drop(client);
    server.stop_within(Duration::from_secs(1));
    server.join().expect("a clean stop");
    eprintln!(
        "{choice}: {ticks} CPU ticks and {iterations} loop iterations in {elapsed:?} of idling"
    );
    Some((ticks, iterations))
}

#[test]
fn an_idle_shard_uses_no_cpu_on_either_driver() {
    for choice in [DriverChoice::Epoll, DriverChoice::IoUring] {
        let Some((ticks, iterations)) = idle_cost(choice) else {
            continue;
        };
        assert!(
            ticks <= MAX_TICKS,
            "{choice}: the idle shard used {ticks} CPU ticks (10 ms each) in one second"
        );
        assert!(
            iterations <= MAX_ITERATIONS,
            "{choice}: {iterations} loop iterations in one idle second: the loop spins"
        );
    }
}
