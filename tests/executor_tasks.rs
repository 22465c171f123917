//! The executor on a real shard: join handles and contained panics, fairness against a task
//! that always yields, wake-ups from threads other than the shard's, and graceful and forced
//! stops.

#[path = "support/shards.rs"]
mod shards;

use std::{
    cell::Cell,
    future::poll_fn,
    rc::Rc,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    task::{Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use percore::{JoinError, mesh, spawn, spawn_blocking, time::sleep, yield_now};
use shards::{STOP_WAIT, WAIT, join_within, lock, recv, run_on, serial, start, stop, two_shards};

/// Panics with a formatted (String) payload; typed so it can end any task.
fn explode(what: &str) -> u32 {
    panic!("{what} failed on purpose")
}

/// Panics with a `&'static str` payload.
fn explode_str() -> u32 {
    std::panic::panic_any("static str payload")
}

/// What the join-handle test saw.
#[derive(Debug)]
struct Joins {
    value: Result<u32, JoinError>,
    later: Result<String, JoinError>,
    formatted: Result<u32, JoinError>,
    static_str: Result<u32, JoinError>,
    after_yield: Result<u32, JoinError>,
    finished_flags: [bool; 2],
    panics: (u64, u64),
    survivor: Result<u32, JoinError>,
    fresh: Result<u32, JoinError>,
}

#[test]
fn join_handles_give_outputs_and_panics() {
    let seen = run_on(two_shards(), 0, || async {
        let panics_before = percore::stats().panics;
        // Spawned before the panics, finishes after them.
        let survivor = spawn(async {
            sleep(Duration::from_millis(200)).await;
            11
        });
        let value = spawn(async { 40 + 2 }).await;
        let later = spawn(async {
            sleep(Duration::from_millis(2)).await;
            String::from("later")
        })
        .await;
        let formatted_task = spawn(async { explode("first poll") });
        let static_str = spawn(async { explode_str() }).await;
        let after_yield = spawn(async {
            yield_now().await;
            explode("second poll")
        })
        .await;
        let formatted = formatted_task.await;
        let pending = spawn(std::future::pending::<u32>());
        yield_now().await;
        let finished_flags = [survivor.is_finished(), pending.is_finished()];
        let panics_after = percore::stats().panics;
        let survivor = survivor.await;
        let fresh = spawn(async {
            yield_now().await;
            5
        })
        .await;
        Joins {
            value,
            later,
            formatted,
            static_str,
            after_yield,
            finished_flags,
            panics: (panics_before, panics_after),
            survivor,
            fresh,
        }
    });
    assert_eq!(seen.value, Ok(42), "{seen:?}");
    assert_eq!(seen.later, Ok("later".to_string()), "{seen:?}");
    let panicked_with = |result: &Result<u32, JoinError>, text: &str| matches!(result, Err(JoinError::Panicked(m)) if m.contains(text));
    assert!(
        panicked_with(&seen.formatted, "first poll failed on purpose"),
        "{seen:?}"
    );
    assert!(
        panicked_with(&seen.static_str, "static str payload"),
        "{seen:?}"
    );
    assert!(
        panicked_with(&seen.after_yield, "second poll failed on purpose"),
        "{seen:?}"
    );
    assert_eq!(seen.finished_flags, [false, false], "{seen:?}");
    assert_eq!(seen.panics.1, seen.panics.0 + 3, "panics counted: {seen:?}");
    assert_eq!(
        seen.survivor,
        Ok(11),
        "a task spawned before the panics: {seen:?}"
    );
    assert_eq!(
        seen.fresh,
        Ok(5),
        "a task spawned after the panics: {seen:?}"
    );
}

#[test]
fn a_panicking_task_gives_its_message_to_its_join_handle() {
    let result = run_on(two_shards(), 0, || async {
        spawn(async { explode("the task") }).await
    });
    assert_eq!(
        result,
        Err(JoinError::Panicked(
            "the task failed on purpose".to_string()
        ))
    );
}

#[test]
fn a_task_that_always_yields_does_not_starve_timers_or_the_mesh() {
    let _serial = serial();
    let (slept, spins, reply, reply_took) = run_on(two_shards(), 0, || async {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u64));
        let spinner = spawn({
            let (stop, spins) = (stop.clone(), spins.clone());
            async move {
                while !stop.get() {
                    spins.set(spins.get() + 1);
                    yield_now().await;
                }
            }
        });
        let start = Instant::now();
        sleep(Duration::from_millis(20)).await;
        let slept = start.elapsed();
        // A call from shard 1 into this busy shard is answered too.
        let start = Instant::now();
        let reply =
            mesh::submit_to_async(1, || async { mesh::submit_to(0, mesh::shard_id).await }).await;
        let reply_took = start.elapsed();
        let spun = spins.get();
        stop.set(true);
        spinner.await.expect("spinner ends when told");
        (slept, spun, reply, reply_took)
    });
    assert!(
        slept < Duration::from_millis(500),
        "20 ms sleep took {slept:?}"
    );
    assert!(
        spins > 10,
        "the spinner hardly ran ({spins} polls): no contention tested"
    );
    assert_eq!(reply, Ok(Ok(0)));
    assert!(
        reply_took < Duration::from_millis(500),
        "mesh round trip took {reply_took:?}"
    );
}

#[test]
fn a_blocking_job_fed_from_a_foreign_thread_wakes_a_sleeping_shard() {
    let (feed_tx, feed_rx) = mpsc::channel::<u32>();
    let feed_rx = Mutex::new(Some(feed_rx));
    let (out_tx, out_rx) = mpsc::channel();
    let handle = start(two_shards(), move |info| {
        let feed = if info.id == 0 {
            lock(&feed_rx).take()
        } else {
            None
        };
        let out = out_tx.clone();
        Ok(async move {
            if let Some(feed) = feed {
                let got = spawn_blocking(move || feed.recv_timeout(WAIT).ok()).await;
                let _ = out.send((got, Instant::now(), mesh::shard_id()));
            }
        })
    });
    // The delay is the point: shard 0 has nothing to do meanwhile and blocks in the kernel.
    thread::sleep(Duration::from_millis(100));
    let fed_at = Instant::now();
    feed_tx.send(41).expect("the pool thread waits");
    let (got, resumed_at, on) = recv(&out_rx, "result of the blocking job");
    stop(handle);
    assert_eq!(got, Ok(Some(41)));
    assert_eq!(on, 0);
    let latency = resumed_at.duration_since(fed_at);
    assert!(
        latency < Duration::from_millis(500),
        "resumed {latency:?} after the feed"
    );
}

/// A flag whose waiter parks its waker, and whose setter wakes it: the smallest future that
/// is woken from outside.
#[derive(Default)]
struct Flag {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Flag {
    fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            // The waker is stored before the flag is read, under the lock `set` takes, so a
            // set between the two still finds and wakes it.
            *lock(&self.waker) = Some(cx.waker().clone());
            if self.set.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[test]
fn a_waker_called_from_a_foreign_std_thread_resumes_the_task() {
    let (waited, latency) = run_on(two_shards(), 0, || async {
        let flag = Arc::new(Flag::default());
        let setter = flag.clone();
        let (set_at_tx, set_at_rx) = mpsc::channel();
        let start = Instant::now();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            let _ = set_at_tx.send(Instant::now());
            setter.set();
        });
        flag.wait().await;
        let resumed = Instant::now();
        let set_at = set_at_rx
            .try_recv()
            .expect("the flag was set before the wake");
        (start.elapsed(), resumed.duration_since(set_at))
    });
    assert!(
        waited >= Duration::from_millis(100),
        "woken before the set: {waited:?}"
    );
    assert!(
        latency < Duration::from_millis(500),
        "resumed {latency:?} after the wake"
    );
}

#[test]
fn a_waker_called_from_another_shard_resumes_the_task() {
    let (waited, woken_on) = run_on(two_shards(), 0, || async {
        let flag = Arc::new(Flag::default());
        let setter = flag.clone();
        let (on_tx, on_rx) = mpsc::channel();
        let start = Instant::now();
        // Shard 1 wakes this task from its own thread after a timer, while shard 0 sleeps.
        mesh::send_to(1, move || {
            spawn(async move {
                sleep(Duration::from_millis(50)).await;
                let _ = on_tx.send(mesh::shard_id());
                setter.set();
            });
        })
        .await
        .expect("delivered");
        flag.wait().await;
        (start.elapsed(), on_rx.try_recv().ok())
    });
    assert_eq!(woken_on, Some(1), "the waker ran on shard 1");
    assert!(
        waited >= Duration::from_millis(45),
        "woken too soon: {waited:?}"
    );
    assert!(waited < Duration::from_secs(1), "woken after {waited:?}");
}

#[test]
fn graceful_stop_signals_every_shard_and_joins() {
    let (tx, rx) = mpsc::channel();
    let handle = start(two_shards(), move |info| {
        let tx = tx.clone();
        Ok(async move {
            let before = percore::shutdown_requested();
            percore::shutdown_signal().await;
            let _ = tx.send((info.id, before, percore::shutdown_requested()));
        })
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "shutdown signalled before any stop"
    );
    let start = Instant::now();
    handle.stop();
    let mut signalled = vec![recv(&rx, "shutdown signal"), recv(&rx, "shutdown signal")];
    signalled.sort_unstable();
    assert_eq!(signalled, vec![(0, false, true), (1, false, true)]);
    let joined = join_within(handle, STOP_WAIT);
    let took = start.elapsed();
    assert!(matches!(joined, Some(Ok(()))), "join: {joined:?}");
    // The default drain timeout is 30 s: shards with nothing left stop long before it.
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
}

/// Reports, when dropped, that the task holding it was cancelled.
struct DropReport(mpsc::Sender<usize>, usize);

impl Drop for DropReport {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

#[test]
fn forced_stop_cancels_tasks_that_never_finish() {
    const DRAIN: Duration = Duration::from_millis(200);
    let (tx, rx) = mpsc::channel();
    let handle = start(two_shards().drain_timeout(DRAIN), move |info| {
        let report = DropReport(tx.clone(), info.id);
        Ok(async move {
            let stuck = spawn(async move {
                let _report = report;
                std::future::pending::<()>().await;
            });
            // The main task waits on the stuck one, so it never finishes either.
            let _ = stuck.await;
        })
    });
    let start = Instant::now();
    handle.stop();
    let joined = join_within(handle, STOP_WAIT);
    let took = start.elapsed();
    assert!(matches!(joined, Some(Ok(()))), "join: {joined:?}");
    assert!(took >= DRAIN, "stopped before the drain deadline: {took:?}");
    assert!(took < Duration::from_secs(3), "forced stop took {took:?}");
    let mut cancelled = vec![recv(&rx, "cancelled task"), recv(&rx, "cancelled task")];
    cancelled.sort_unstable();
    assert_eq!(cancelled, vec![0, 1], "each shard dropped its stuck task");
}

#[test]
fn stop_server_from_a_shard_stops_every_shard() {
    let (tx, rx) = mpsc::channel();
    let handle = start(two_shards(), move |info| {
        let tx = tx.clone();
        Ok(async move {
            if info.id == 1 {
                sleep(Duration::from_millis(10)).await;
                percore::stop_server();
            } else {
                percore::shutdown_signal().await;
                let _ = tx.send(info.id);
            }
        })
    });
    assert_eq!(recv(&rx, "shutdown signal on shard 0"), 0);
    let joined = join_within(handle, STOP_WAIT);
    assert!(matches!(joined, Some(Ok(()))), "join: {joined:?}");
}
