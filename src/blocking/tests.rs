//! Pool behaviour tests. Synchronisation is by channels and barriers, never
//! by sleeping.

use std::{
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc, Barrier,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    task::{Context, Poll, Wake, Waker},
    thread::{self, Thread},
    time::Duration,
};

use super::*;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn waker() -> Waker {
    Waker::from(Arc::new(ThreadWaker(thread::current())))
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let waker = waker();
    fut.poll(&mut Context::from_waker(&waker))
}

fn pool(threads: usize, queue_capacity: usize) -> BlockingPool {
    BlockingPool::new(BlockingConfig {
        threads,
        queue_capacity,
        ..BlockingConfig::default()
    })
    .unwrap()
}

/// Submits a job that reports on `started` and then blocks until the
/// returned sender sends (or is dropped).
fn gated_job(pool: &BlockingPool, started: &flume::Sender<()>) -> flume::Sender<()> {
    let (gate_tx, gate_rx) = flume::bounded::<()>(1);
    let started = started.clone();
    pool.try_submit(Box::new(move || {
        started.send(()).unwrap();
        let _ = gate_rx.recv();
    }))
    .unwrap();
    gate_tx
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<BlockingPool>();
    send::<Blocking<Vec<u8>>>();
}

#[test]
fn result_comes_back_from_a_pool_thread() {
    let pool = pool(2, 8);
    let name = block_on(pool.spawn_blocking(|| thread::current().name().map(str::to_owned)));
    assert_eq!(name.unwrap().as_deref(), Some("percore-blocking"));
    assert_eq!(block_on(pool.spawn_blocking(|| 21 * 2)), Ok(42));
    assert_eq!(pool.stats().threads_started, 2);
    pool.shutdown(LONG);
}

#[test]
fn many_more_jobs_than_threads_all_complete() {
    // A queue smaller than the job count also exercises waiting for room.
    let pool = pool(3, 4);
    let futures: Vec<_> = (0..200u64)
        .map(|i| pool.spawn_blocking(move || i * 2))
        .collect();
    let sum: u64 = futures.into_iter().map(|f| block_on(f).unwrap()).sum();
    assert_eq!(sum, (0..200u64).map(|i| i * 2).sum());
    pool.shutdown(LONG);
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.busy, stats.queued), (200, 0, 0));
}

#[test]
fn at_most_threads_jobs_run_at_once() {
    const THREADS: usize = 3;
    let pool = pool(THREADS, 64);
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    // Each round of THREADS jobs can only pass the barrier together, so the
    // maximum reaches THREADS; exceeding it would need a fourth thread.
    let barrier = Arc::new(Barrier::new(THREADS));
    let futures: Vec<_> = (0..THREADS * 4)
        .map(|_| {
            let (running, max_running, barrier) =
                (running.clone(), max_running.clone(), barrier.clone());
            pool.spawn_blocking(move || {
                let now = running.fetch_add(1, SeqCst) + 1;
                max_running.fetch_max(now, SeqCst);
                barrier.wait();
                running.fetch_sub(1, SeqCst);
            })
        })
        .collect();
    for f in futures {
        block_on(f).unwrap();
    }
    assert_eq!(max_running.load(SeqCst), THREADS);
    pool.shutdown(LONG);
}

#[test]
fn extra_jobs_wait_while_all_threads_are_busy() {
    let pool = pool(2, 8);
    let (started_tx, started_rx) = flume::unbounded();
    let gates = [gated_job(&pool, &started_tx), gated_job(&pool, &started_tx)];
    started_rx.recv().unwrap();
    started_rx.recv().unwrap();
    let third = pool.spawn_blocking(|| 3);
    let stats = pool.stats();
    assert_eq!((stats.busy, stats.queued), (2, 1));
    drop(gates);
    assert_eq!(block_on(third), Ok(3));
    pool.shutdown(LONG);
}

#[test]
fn full_queue_rejects_try_submit_and_makes_others_wait() {
    let pool = pool(1, 2);
    let (started_tx, started_rx) = flume::unbounded();
    let gate = gated_job(&pool, &started_tx);
    started_rx.recv().unwrap();
    pool.try_submit(Box::new(|| {})).unwrap();
    pool.try_submit(Box::new(|| {})).unwrap();
    assert_eq!(pool.try_submit(Box::new(|| {})), Err(SubmitError::Full));
    assert_eq!(pool.stats().queued, 2);

    let mut waiting = pool.spawn_blocking(|| 7);
    assert!(poll_once(Pin::new(&mut waiting)).is_pending());
    let (ran_tx, ran_rx) = flume::bounded(1);
    let mut submit = pin!(pool.submit(Box::new(move || ran_tx.send(()).unwrap())));
    assert!(poll_once(submit.as_mut()).is_pending());

    gate.send(()).unwrap();
    assert_eq!(block_on(waiting), Ok(7));
    assert_eq!(block_on(submit), Ok(()));
    ran_rx.recv().unwrap();
    pool.shutdown(LONG);
}

#[test]
fn panics_become_errors_and_the_thread_survives() {
    let pool = pool(1, 8);
    let err = block_on(pool.spawn_blocking(|| -> u32 { panic!("boom") })).unwrap_err();
    assert_eq!(err, BlockingError::Panicked("boom".to_owned()));
    assert_eq!(err.to_string(), "blocking task panicked: boom");
    let err = block_on(pool.spawn_blocking(|| panic!("boom {}", 2))).unwrap_err();
    assert_eq!(err, BlockingError::Panicked("boom 2".to_owned()));
    let err = block_on(pool.spawn_blocking(|| std::panic::panic_any(5u8))).unwrap_err();
    assert_eq!(
        err,
        BlockingError::Panicked("non-string panic payload".to_owned())
    );

    // A raw job's panic is caught by the worker itself.
    pool.try_submit(Box::new(|| panic!("raw"))).unwrap();
    assert_eq!(block_on(pool.spawn_blocking(|| 5)), Ok(5));
    assert_eq!(pool.stats().threads_started, 1);
    pool.shutdown(LONG);
    let stats = pool.stats();
    assert_eq!((stats.panicked, stats.completed), (4, 5));
}

#[test]
fn shutdown_refuses_new_work_and_joins() {
    let pool = pool(2, 8);
    let futures: Vec<_> = (0..6).map(|i| pool.spawn_blocking(move || i)).collect();
    pool.shutdown(LONG);
    // Everything queued before shutdown ran; the threads have been joined.
    assert_eq!(pool.stats().completed, 6);
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(block_on(f), Ok(i));
    }
    assert_eq!(pool.try_submit(Box::new(|| {})), Err(SubmitError::ShutDown));
    assert_eq!(
        block_on(pool.submit(Box::new(|| {}))),
        Err(SubmitError::ShutDown)
    );
    let err = block_on(pool.spawn_blocking(|| 1)).unwrap_err();
    assert_eq!(err, BlockingError::ShutDown);
    assert_eq!(err.to_string(), "blocking pool is shut down");
    pool.shutdown(LONG); // A second call returns at once.
}

#[test]
fn shutdown_deadline_detaches_busy_threads_which_still_drain_the_queue() {
    let pool = pool(1, 8);
    let (started_tx, started_rx) = flume::unbounded();
    let gate = gated_job(&pool, &started_tx);
    started_rx.recv().unwrap();
    let queued: Vec<_> = (0..3).map(|i| pool.spawn_blocking(move || i)).collect();
    pool.shutdown(Duration::ZERO); // Returns although the job is blocked.
    assert_eq!(pool.try_submit(Box::new(|| {})), Err(SubmitError::ShutDown));
    gate.send(()).unwrap();
    for (i, f) in queued.into_iter().enumerate() {
        assert_eq!(block_on(f), Ok(i));
    }
}

#[test]
fn dropping_the_last_handle_does_not_block() {
    let pool = pool(1, 8);
    let (started_tx, started_rx) = flume::unbounded();
    let gate = gated_job(&pool, &started_tx);
    started_rx.recv().unwrap();
    let queued = pool.spawn_blocking(|| "after drop");
    drop(pool); // Would hang here if drop joined the blocked thread.
    gate.send(()).unwrap();
    assert_eq!(block_on(queued), Ok("after drop"));
}

#[test]
fn dropping_a_blocking_future_discards_the_result() {
    let pool = pool(1, 8);
    let (started_tx, started_rx) = flume::unbounded();
    let (gate_tx, gate_rx) = flume::bounded::<()>(1);
    let (done_tx, done_rx) = flume::bounded(1);
    let running = pool.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        gate_rx.recv().unwrap();
        done_tx.send(()).unwrap();
        String::from("discarded")
    });
    started_rx.recv().unwrap();
    let queued = pool.spawn_blocking(|| 1);
    drop(running);
    drop(queued);
    gate_tx.send(()).unwrap();
    done_rx.recv().unwrap();
    assert_eq!(block_on(pool.spawn_blocking(|| 2)), Ok(2));
    pool.shutdown(LONG);
    assert_eq!(pool.stats().completed, 3);
}

#[test]
fn invalid_config_is_rejected() {
    let err = BlockingPool::new(BlockingConfig {
        threads: 0,
        ..BlockingConfig::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// The nice field (the 19th) of a thread's `/proc/.../stat`.
fn nice_of(stat_path: &str) -> i32 {
    let stat = std::fs::read_to_string(stat_path).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(16).unwrap().parse().unwrap()
}

/// The nice value of the pool thread that runs a job, read from `/proc`.
fn pool_thread_nice(pool: &BlockingPool) -> i32 {
    block_on(pool.spawn_blocking(|| {
        let tid = crate::sys::cpu::current_tid();
        nice_of(&format!("/proc/self/task/{tid}/stat"))
    }))
    .unwrap()
}

#[test]
fn pool_threads_run_at_a_lower_priority_than_the_caller_by_default() {
    let own = nice_of(&format!(
        "/proc/self/task/{}/stat",
        crate::sys::cpu::current_tid()
    ));
    let pool = BlockingPool::new(BlockingConfig {
        threads: 2,
        ..BlockingConfig::default()
    })
    .unwrap();
    // Every worker, not only the first to take a job: hold one busy while the other runs.
    let (started_tx, started_rx) = flume::unbounded();
    let release = gated_job(&pool, &started_tx);
    started_rx.recv().unwrap();
    assert_eq!(pool_thread_nice(&pool), (own + 10).min(19));
    drop(release);
    for _ in 0..4 {
        assert_eq!(pool_thread_nice(&pool), (own + 10).min(19));
    }
    pool.shutdown(Duration::from_secs(5));
}

#[test]
fn nice_increment_zero_keeps_the_callers_priority() {
    let own = nice_of(&format!(
        "/proc/self/task/{}/stat",
        crate::sys::cpu::current_tid()
    ));
    let pool = BlockingPool::new(BlockingConfig {
        threads: 1,
        nice_increment: 0,
        ..BlockingConfig::default()
    })
    .unwrap();
    assert_eq!(pool_thread_nice(&pool), own);
    pool.shutdown(Duration::from_secs(5));
}
