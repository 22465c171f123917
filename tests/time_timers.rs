//! Time on a real shard: timers fire in deadline order and never early, `timeout` and
//! `interval` keep their promises, an idle shard does not spin, and `spawn_blocking` comes
//! back to the shard that called it.

#[path = "support/shards.rs"]
mod shards;

use std::{
    cell::RefCell,
    fs,
    rc::Rc,
    sync::mpsc,
    thread::{self, ThreadId},
    time::{Duration, Instant},
};

use percore::{
    blocking::BlockingError,
    mesh, spawn, spawn_blocking,
    time::{Elapsed, interval, sleep, timeout},
};
use shards::{recv, run_on, run_on_each, serial, start, stop, two_shards, xorshift};

/// How late a timer may fire on a loaded CI machine.
const LATE_TOLERANCE: Duration = Duration::from_millis(100);

#[test]
fn timers_fire_in_deadline_order_and_never_early() {
    const TIMERS: usize = 50;
    let _serial = serial();
    let (durations_ms, fired, arming_took) = run_on(two_shards(), 0, || async {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        let durations_ms: Vec<u64> = (0..TIMERS).map(|_| 1 + xorshift(&mut seed) % 200).collect();
        // Arm every timer first, in one tight loop, each with the instant it was armed.
        let arming = Instant::now();
        let timers: Vec<_> = durations_ms
            .iter()
            .map(|&ms| (Instant::now(), sleep(Duration::from_millis(ms))))
            .collect();
        let arming_took = arming.elapsed();
        let fired = Rc::new(RefCell::new(Vec::with_capacity(TIMERS)));
        let tasks: Vec<_> = timers
            .into_iter()
            .enumerate()
            .map(|(id, (armed, timer))| {
                let fired = fired.clone();
                spawn(async move {
                    timer.await;
                    fired.borrow_mut().push((id, armed.elapsed()));
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("timer task");
        }
        let fired = fired.take();
        (durations_ms, fired, arming_took)
    });

    let mut ids: Vec<usize> = fired.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..TIMERS).collect::<Vec<_>>(),
        "each timer fired once"
    );
    let mut early = Vec::new();
    for &(id, after) in &fired {
        let duration = Duration::from_millis(durations_ms[id]);
        if after < duration {
            early.push(format!("timer {id} ({duration:?}) fired after {after:?}"));
        }
        assert!(
            after <= duration + LATE_TOLERANCE,
            "timer {id} ({duration:?}) fired late, after {after:?}"
        );
    }
    assert!(early.is_empty(), "timers fired early: {early:#?}");
    // Timers armed across a millisecond boundary may swap with ones that much shorter: the
    // wheel counts whole milliseconds from when each was armed.
    let slack_ms = arming_took.as_micros().div_ceil(1000) as u64;
    for pair in fired.windows(2) {
        let (first, second) = (pair[0].0, pair[1].0);
        assert!(
            durations_ms[first] <= durations_ms[second] + slack_ms,
            "timer {first} ({} ms) fired before timer {second} ({} ms); order: {:?}",
            durations_ms[first],
            durations_ms[second],
            fired
                .iter()
                .map(|(id, _)| durations_ms[*id])
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn sleep_never_returns_early_whatever_the_phase() {
    const ROUNDS: u32 = 10;
    let _serial = serial();
    let slept = run_on(two_shards(), 0, || async {
        let mut slept = Vec::new();
        for round in 0..ROUNDS {
            // Arm each timer at a different point inside the wheel's millisecond: the shard's
            // thread is held for round × 97 µs first (deliberately, to move the phase).
            let hold_until = Instant::now() + Duration::from_micros(u64::from(round) * 97);
            while Instant::now() < hold_until {
                std::hint::spin_loop();
            }
            let armed = Instant::now();
            sleep(Duration::from_millis(5)).await;
            slept.push(armed.elapsed());
        }
        slept
    });
    let early: Vec<_> = slept
        .iter()
        .filter(|&&took| took < Duration::from_millis(5))
        .collect();
    assert!(
        early.is_empty(),
        "5 ms sleeps returned after {early:?} (all: {slept:?})"
    );
    assert!(
        slept
            .iter()
            .all(|&took| took <= Duration::from_millis(5) + LATE_TOLERANCE),
        "late: {slept:?}"
    );
}

/// What the timeout test saw, with how long each case took.
#[derive(Debug)]
struct Timeouts {
    never: (Result<(), Elapsed>, Duration),
    slower: (Result<(), Elapsed>, Duration),
    timers_before: usize,
    timers_after: usize,
    quick: (Result<u32, Elapsed>, Duration),
    ready: Result<u32, Elapsed>,
}

#[test]
fn timeout_expires_for_a_stuck_future_and_passes_a_quick_one() {
    let _serial = serial();
    let seen = run_on(two_shards(), 0, || async {
        let timers_before = percore::stats().timers;
        let start = Instant::now();
        let never = timeout(Duration::from_millis(50), std::future::pending::<()>()).await;
        let never = (never, start.elapsed());
        // The inner 5 s timer is dropped with the future, and with it its wheel entry.
        let start = Instant::now();
        let slower = timeout(Duration::from_millis(30), sleep(Duration::from_secs(5))).await;
        let slower = (slower, start.elapsed());
        let timers_after = percore::stats().timers;
        let start = Instant::now();
        let quick = timeout(Duration::from_secs(1), async {
            sleep(Duration::from_millis(1)).await;
            7
        })
        .await;
        let quick = (quick, start.elapsed());
        // The future is polled before the timer, so a ready one wins even a zero timeout.
        let ready = timeout(Duration::ZERO, async { 9 }).await;
        Timeouts {
            never,
            slower,
            timers_before,
            timers_after,
            quick,
            ready,
        }
    });
    let within = |took: Duration, ms: u64| {
        let duration = Duration::from_millis(ms);
        took >= duration && took <= duration + LATE_TOLERANCE
    };
    assert_eq!(seen.never.0, Err(Elapsed), "{seen:?}");
    assert!(within(seen.never.1, 50), "pending future: {seen:?}");
    assert_eq!(seen.slower.0, Err(Elapsed), "{seen:?}");
    assert!(within(seen.slower.1, 30), "slower future: {seen:?}");
    assert_eq!(
        seen.timers_after, seen.timers_before,
        "timers left armed: {seen:?}"
    );
    assert_eq!(seen.quick.0, Ok(7), "{seen:?}");
    assert!(seen.quick.1 < Duration::from_millis(500), "{seen:?}");
    assert_eq!(seen.ready, Ok(9), "{seen:?}");
}

#[test]
fn interval_ticks_on_its_period() {
    const TICKS: u32 = 10;
    const PERIOD: Duration = Duration::from_millis(20);
    let _serial = serial();
    let ticks = run_on(two_shards(), 0, || async {
        let start = Instant::now();
        let mut ticker = interval(PERIOD);
        let mut ticks = Vec::new();
        for _ in 0..TICKS {
            ticker.tick().await;
            ticks.push(start.elapsed());
        }
        ticks
    });
    assert!(
        ticks[0] < PERIOD / 2,
        "the first tick is immediate: {ticks:?}"
    );
    for (n, &at) in ticks.iter().enumerate() {
        assert!(at >= PERIOD * n as u32, "tick {n} early: {ticks:?}");
    }
    let total = ticks[ticks.len() - 1];
    assert!(
        total >= PERIOD * (TICKS - 1),
        "{TICKS} ticks took {total:?}"
    );
    assert!(
        total < Duration::from_secs(1),
        "{TICKS} ticks took {total:?}"
    );
}

/// CPU time (user + system, in clock ticks) a thread of this process has used.
fn thread_cpu_ticks(tid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .unwrap_or_else(|e| panic!("reading the stat of thread {tid}: {e}"));
    // The name in parentheses may hold spaces; the fields after it are fixed: state is
    // field 3, utime 14 and stime 15.
    let after_name = &stat[stat.rfind(')').expect("stat has the comm field") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("numeric stat field") };
    field(14) + field(15)
}

/// The kernel id of the calling thread, from /proc (no unsafe `gettid`).
fn current_tid() -> u32 {
    let link = fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self link {link:?}"))
}

#[test]
fn an_idle_shard_does_not_spin() {
    // USER_HZ is 100 on Linux: one tick is 10 ms of CPU.
    const MAX_TICKS: u64 = 5;
    let _serial = serial();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let handle = start(two_shards(), move |info| {
        // Setup runs on the shard's own thread.
        let _ = tid_tx.send(current_tid());
        let done = done_tx.clone();
        Ok(async move {
            // Shard 0 waits on a timer, shard 1 has nothing at all to do.
            if info.id == 0 {
                sleep(Duration::from_millis(300)).await;
                let _ = done.send(());
            }
        })
    });
    let tids = [
        recv(&tid_rx, "shard thread id"),
        recv(&tid_rx, "shard thread id"),
    ];
    for tid in tids {
        let comm = fs::read_to_string(format!("/proc/self/task/{tid}/comm")).expect("comm");
        assert!(
            comm.starts_with("percore-shard"),
            "thread {tid} is {comm:?}"
        );
    }
    let start = Instant::now();
    let before: u64 = tids.iter().map(|&tid| thread_cpu_ticks(tid)).sum();
    recv(&done_rx, "end of the 300 ms sleep");
    let after: u64 = tids.iter().map(|&tid| thread_cpu_ticks(tid)).sum();
    let idle_for = start.elapsed();
    stop(handle);
    assert!(
        idle_for >= Duration::from_millis(250),
        "idle only {idle_for:?}"
    );
    assert!(
        after - before < MAX_TICKS,
        "shards used {} CPU ticks (10 ms each) in {idle_for:?} of idling",
        after - before
    );
}

/// One `spawn_blocking` round as seen from a shard.
type Round = (
    (usize, ThreadId),
    (usize, ThreadId),
    Result<(Option<String>, ThreadId, u64), BlockingError>,
);

#[test]
fn spawn_blocking_returns_to_its_own_shard() {
    const ROUNDS: u64 = 20;
    let outputs = run_on_each(two_shards(), |_info| async {
        let mut rounds: Vec<Round> = Vec::new();
        for i in 0..ROUNDS {
            let before = (mesh::shard_id(), thread::current().id());
            let result = spawn_blocking(move || {
                (
                    thread::current().name().map(str::to_owned),
                    thread::current().id(),
                    i * i,
                )
            })
            .await;
            let after = (mesh::shard_id(), thread::current().id());
            rounds.push((before, after, result));
        }
        let panicked = spawn_blocking(|| -> u64 { panic!("blocking job failed on purpose") }).await;
        let still_works = spawn_blocking(|| 5).await;
        (rounds, panicked, still_works)
    });
    let shard_threads: Vec<ThreadId> = outputs.iter().map(|(rounds, ..)| rounds[0].0.1).collect();
    assert_ne!(
        shard_threads[0], shard_threads[1],
        "two shards, two threads"
    );
    for (shard, (rounds, panicked, still_works)) in outputs.iter().enumerate() {
        assert_eq!(rounds.len() as u64, ROUNDS);
        for (i, (before, after, result)) in rounds.iter().enumerate() {
            assert_eq!(
                before,
                &(shard, shard_threads[shard]),
                "shard {shard} round {i}"
            );
            assert_eq!(after, before, "shard {shard} round {i} resumed elsewhere");
            let (name, pool_thread, square) = result
                .as_ref()
                .unwrap_or_else(|e| panic!("shard {shard} round {i}: {e}"));
            assert_eq!(name.as_deref(), Some("percore-blocking"));
            assert!(
                !shard_threads.contains(pool_thread),
                "ran on a shard thread"
            );
            assert_eq!(*square, (i * i) as u64);
        }
        assert!(
            matches!(panicked, Err(BlockingError::Panicked(m)) if m.contains("blocking job failed on purpose")),
            "shard {shard}: {panicked:?}"
        );
        assert_eq!(still_works, &Ok(5), "shard {shard}: the pool goes on");
    }
}

#[test]
fn the_loops_clock_reading_is_shared_within_an_iteration_and_moves_between_them() {
    let _serial = serial();
    let (same_poll, before_real, after_sleep, sleep_took) = run_on(two_shards(), 0, || async {
        let first = percore::time::now();
        let second = percore::time::now();
        let real = Instant::now();
        // A sleep ends in a later iteration: the loop waited, woke and read the clock again.
        let armed = Instant::now();
        sleep(Duration::from_millis(20)).await;
        let after = percore::time::now();
        (
            first == second,
            first <= real,
            after - first,
            armed.elapsed(),
        )
    });
    assert!(
        same_poll,
        "two readings in one iteration must be the same reading"
    );
    assert!(
        before_real,
        "the loop's reading is taken before the task runs"
    );
    assert!(
        after_sleep >= Duration::from_millis(20) && after_sleep <= sleep_took + LATE_TOLERANCE,
        "after a 20 ms sleep the loop's reading moved by {after_sleep:?} (the sleep took {sleep_took:?})"
    );
    // Off a shard there is no loop reading: each call reads the clock.
    let first = percore::time::now();
    thread::sleep(Duration::from_millis(2));
    assert!(
        percore::time::now() - first >= Duration::from_millis(2),
        "off a shard, now() reads the clock"
    );
}
