//! The clock of a run, driven by the main thread: warm-up, then the measured window, then
//! done. Shards read the phase with one relaxed atomic load per request; the main thread
//! samples the server's CPU time at the exact moments the window opens and closes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use percore::ServerHandle;

use crate::procfs;

/// Where a run is. Requests are attributed to the phase in which they were sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Warmup = 0,
    Measure = 1,
    Done = 2,
}

/// The phase, shared by the main thread (writer) and every shard (readers).
#[derive(Clone, Debug, Default)]
pub struct PhaseClock(Arc<AtomicU8>);

impl PhaseClock {
    pub fn get(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            0 => Phase::Warmup,
            1 => Phase::Measure,
            _ => Phase::Done,
        }
    }

    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }
}

/// What the main thread saw of the measured window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub secs: f64,
    /// Server utime+stime over the window, in clock ticks (when a server PID was given and
    /// readable at both ends).
    pub server_cpu_ticks: Option<u64>,
    /// This process's own utime+stime over the window (the load generator's cost), in
    /// clock ticks; set by the request-response modes.
    pub client_cpu_ticks: Option<u64>,
}

/// Runs warm-up and the measured window on the calling thread, switching `clock` between
/// phases; returns when the window has closed (the phase is then `Done`).
pub fn run_window(
    clock: &PhaseClock,
    warmup: Duration,
    duration: Duration,
    server_pid: Option<u32>,
) -> Window {
    thread::sleep(warmup);
    let cpu_start = server_pid.and_then(|pid| procfs::cpu_ticks(pid).ok());
    clock.set(Phase::Measure);
    let start = Instant::now();
    thread::sleep(duration);
    clock.set(Phase::Done);
    let secs = start.elapsed().as_secs_f64();
    let cpu_end = server_pid.and_then(|pid| procfs::cpu_ticks(pid).ok());
    let server_cpu_ticks = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Window {
        secs,
        server_cpu_ticks,
        client_cpu_ticks: None,
    }
}

/// Collects `count` results, giving up at `deadline` (a shard that never reports must end
/// in a report, not a hang).
pub fn collect<T>(rx: &mpsc::Receiver<T>, count: usize, deadline: Instant) -> Vec<T> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(item) => out.push(item),
            Err(_) => break,
        }
    }
    out
}

/// The end of a run: collects the client shards' results until `deadline`, stops the
/// client server, and returns the results with notes on what went wrong (a shard that did
/// not report, shards that did not stop, a server CPU time that could not be read).
pub fn finish<T>(
    rx: &mpsc::Receiver<T>,
    shards: usize,
    deadline: Instant,
    handle: ServerHandle,
    window: &Window,
    server_pid: Option<u32>,
) -> (Vec<T>, Vec<String>) {
    let results = collect(rx, shards, deadline);
    let mut notes = Vec::new();
    if results.len() < shards {
        notes.push(format!(
            "only {} of {} client shards reported before the deadline",
            results.len(),
            shards
        ));
    }
    if let Err(e) = stop(handle, Duration::from_secs(5)) {
        notes.push(e);
    }
    if server_pid.is_some() && window.server_cpu_ticks.is_none() {
        notes.push("could not read the server's /proc/PID/stat at both ends".into());
    }
    (results, notes)
}

/// Stops the client shards now and waits at most `wait` for them; an error says they did
/// not stop in time (the process exits anyway, taking the threads with it).
pub fn stop(handle: ServerHandle, wait: Duration) -> Result<(), String> {
    handle.stop_within(Duration::ZERO);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(handle.join());
    });
    match rx.recv_timeout(wait) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("a client shard failed: {e}")),
        Err(_) => Err(format!("client shards did not stop within {wait:?}")),
    }
}
