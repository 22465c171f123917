//! `percore-bench mesh`: the cost of talking between two shards. Round trip: shard 0 awaits
//! `submit_to(1, ..)` over and over (a message to shard 1's inbox, run there, a reply back).
//! Throughput: shard 0 streams `u64`s to shard 1 through a `Channel<u64>` (bounded, so a
//! fast sender waits for the receiver) for a fixed time; shard 1 counts what it receives. The
//! harness reads no clock and arms no timer per message (only when a send or receive waits).
//! Each side's on-CPU time over the stream is read from `/proc/thread-self/schedstat`: the
//! sender's ns per message is the cost of a message and does not move with the time the
//! thread spends preempted on a shared machine, which the messages/s figure does.

use std::{
    future::Future,
    sync::mpsc,
    task::Poll,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use percore::{Server, mesh::Channel, time::timeout};

use crate::{
    measure, procfs,
    report::{JsonObject, Percentiles},
};

/// The message that ends the throughput stream.
const END: u64 = u64::MAX;
/// How long one round trip, send or receive may take before the run counts it as failed and
/// moves on: a lost cross-shard wake-up must end in a report, not a hang.
const STALL: Duration = Duration::from_secs(1);
/// Failed round trips after which the latency phase gives up.
const MAX_FAILED: u64 = 5;

#[derive(Clone, Debug)]
pub struct MeshConfig {
    pub round_trips: usize,
    /// Round trips run first and not recorded (caches, page faults, CPU frequency).
    pub warmup_round_trips: usize,
    /// How long shard 0 streams messages for the throughput figure.
    pub duration: Duration,
    pub capacity: usize,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            round_trips: 200_000,
            warmup_round_trips: 20_000,
            duration: Duration::from_secs(3),
            capacity: 1024,
        }
    }
}

enum ShardOut {
    RoundTrips {
        latency_ns: Histogram<u64>,
        failed: u64,
    },
    Received {
        count: u64,
        secs: f64,
        cpu_ns: Option<u64>,
    },
    /// The sender's on-CPU time over its stream.
    Sent { cpu_ns: Option<u64> },
}

pub struct MeshReport {
    pub cfg: MeshConfig,
    pub cpus: Vec<Option<usize>>,
    pub round_trip_ns: Option<Percentiles>,
    pub round_trips_failed: u64,
    /// Round trips recorded (after the warm-up ones).
    pub round_trips_done: u64,
    pub received: u64,
    pub messages_per_sec: Option<f64>,
    /// On-CPU ns per message received, of the sending and the receiving shard's thread.
    pub sender_ns_per_message: Option<f64>,
    pub receiver_ns_per_message: Option<f64>,
    pub notes: Vec<String>,
}

pub fn run(cfg: MeshConfig) -> Result<MeshReport, String> {
    let channel = Channel::<u64>::new(2, cfg.capacity);
    let (tx, rx) = mpsc::channel::<ShardOut>();
    let (cpu_tx, cpu_rx) = mpsc::channel::<(usize, Option<usize>)>();
    let setup_cfg = cfg.clone();
    let handle = Server::builder()
        .shards(2)
        .start(move |info| {
            let _ = cpu_tx.send((info.id, info.cpu));
            let (cfg, channel, tx) = (setup_cfg.clone(), channel.clone(), tx.clone());
            Ok(async move {
                let out = if info.id == 0 {
                    let out = round_trips(&cfg).await;
                    let _ = tx.send(out);
                    let _ = tx.send(stream(&cfg, &channel).await);
                    return;
                } else {
                    receive(&channel).await
                };
                let _ = tx.send(out);
            })
        })
        .map_err(|e| format!("starting two shards: {e}"))?;
    // Bounded: a round trip that never returns must not hang the run.
    let deadline = Instant::now() + Duration::from_secs(30) + cfg.duration * 2;
    let results = measure::collect(&rx, 3, deadline);
    let mut cpus = vec![None; 2];
    for (id, cpu) in cpu_rx.try_iter() {
        cpus[id] = cpu;
    }
    let mut report = MeshReport {
        cfg,
        cpus,
        round_trip_ns: None,
        round_trips_failed: 0,
        round_trips_done: 0,
        received: 0,
        messages_per_sec: None,
        sender_ns_per_message: None,
        receiver_ns_per_message: None,
        notes: Vec::new(),
    };
    let mut sender_cpu_ns = None;
    for out in results {
        match out {
            ShardOut::RoundTrips { latency_ns, failed } => {
                report.round_trip_ns = Some(Percentiles::scaled(&latency_ns, 1.0));
                report.round_trips_failed = failed;
                report.round_trips_done = latency_ns.len();
            }
            ShardOut::Received {
                count,
                secs,
                cpu_ns,
            } => {
                report.received = count;
                report.messages_per_sec = (secs > 0.0).then(|| count as f64 / secs);
                report.receiver_ns_per_message = per_message(cpu_ns, count);
            }
            ShardOut::Sent { cpu_ns } => sender_cpu_ns = cpu_ns,
        }
    }
    report.sender_ns_per_message = per_message(sender_cpu_ns, report.received);
    if report.round_trip_ns.is_none() || report.messages_per_sec.is_none() {
        report
            .notes
            .push("a shard did not report before the deadline".into());
    }
    if report.cpus[0].is_some() && report.cpus[0] == report.cpus[1] {
        report
            .notes
            .push("both shards share one CPU (the affinity mask has one CPU)".into());
    }
    if let Err(e) = measure::stop(handle, Duration::from_secs(5)) {
        report.notes.push(e);
    }
    Ok(report)
}

async fn round_trips(cfg: &MeshConfig) -> ShardOut {
    let mut latency_ns = crate::books::latency_histogram();
    let mut failed = 0;
    for i in 0..cfg.warmup_round_trips + cfg.round_trips {
        let start = Instant::now();
        let ok = matches!(
            timeout(STALL, percore::mesh::submit_to(1, || ())).await,
            Ok(Ok(()))
        );
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if !ok {
            // Counted whether or not it was a warm-up one: a failure is never hidden.
            failed += 1;
            if failed >= MAX_FAILED {
                break;
            }
        } else if i >= cfg.warmup_round_trips {
            latency_ns.saturating_record(ns.max(1));
        }
    }
    ShardOut::RoundTrips { latency_ns, failed }
}

fn per_message(cpu_ns: Option<u64>, messages: u64) -> Option<f64> {
    cpu_ns
        .filter(|_| messages > 0)
        .map(|ns| ns as f64 / messages as f64)
}

/// Streams for `cfg.duration`; the sender's on-CPU time from the first message to the end
/// marker.
async fn stream(cfg: &MeshConfig, channel: &Channel<u64>) -> ShardOut {
    let cpu_start = procfs::thread_cpu_ns();
    let sent = stream_messages(cfg, channel).await;
    let cpu_ns = cpu_start
        .zip(procfs::thread_cpu_ns())
        .filter(|_| sent)
        .map(|(start, end)| end.saturating_sub(start));
    ShardOut::Sent { cpu_ns }
}

/// True when the stream ran to its end marker.
async fn stream_messages(cfg: &MeshConfig, channel: &Channel<u64>) -> bool {
    let end = Instant::now() + cfg.duration;
    let mut i = 0u64;
    loop {
        // Reading the clock every 256 messages keeps it out of the measured cost.
        if i.is_multiple_of(256) && Instant::now() >= end {
            break;
        }
        if !matches!(within_stall(channel.send_to(1, i)).await, Some(Ok(()))) {
            return false;
        }
        i += 1;
    }
    matches!(within_stall(channel.send_to(1, END)).await, Some(Ok(())))
}

/// Awaits `future` for at most [`STALL`]; None when it took longer. A future ready at its
/// first poll costs no clock read and no timer (the stall guard is armed only once it
/// waits), so the harness does not add a clock read per message to what it measures.
async fn within_stall<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await {
        Poll::Ready(output) => Some(output),
        Poll::Pending => timeout(STALL, future).await.ok(),
    }
}

/// Counts messages from the first one to the end marker (or to a stall, once the stream
/// has begun; before it, shard 0 is still measuring round trips). The clock is read at the
/// first message, whenever the receiver is about to wait (so a stall ends the interval at
/// the last message received) and at the end marker; its on-CPU time over the same interval
/// (spent idle-polling, too, while it waits for the sender).
async fn receive(channel: &Channel<u64>) -> ShardOut {
    let mut count = 0u64;
    let mut first: Option<Instant> = None;
    let mut cpu_start = None;
    let mut last = Instant::now();
    loop {
        let message = if first.is_some() {
            match channel.try_recv() {
                Some(message) => message,
                None => {
                    last = Instant::now();
                    match within_stall(channel.recv()).await {
                        Some(Ok(message)) => message,
                        _ => break,
                    }
                }
            }
        } else {
            match channel.recv().await {
                Ok(message) => message,
                Err(_) => break,
            }
        };
        if message == END {
            last = Instant::now();
            break;
        }
        if first.is_none() {
            first = Some(Instant::now());
            cpu_start = procfs::thread_cpu_ns();
        }
        count += 1;
    }
    let secs = first.map_or(0.0, |t| last.saturating_duration_since(t).as_secs_f64());
    let cpu_ns = cpu_start
        .zip(procfs::thread_cpu_ns())
        .map(|(start, end)| end.saturating_sub(start));
    ShardOut::Received {
        count,
        secs,
        cpu_ns,
    }
}

impl MeshReport {
    pub fn to_text(&self) -> String {
        let mut t = format!("mesh · shards on CPUs {:?}\n", self.cpus);
        match &self.round_trip_ns {
            Some(p) if self.round_trips_done > 0 => t.push_str(&format!(
                "submit_to round trip ns  p50 {:.0}  p99 {:.0}  p99.9 {:.0}  mean {:.0}  ({} round trips, {} failed)\n",
                p.p50, p.p99, p.p999, p.mean, self.round_trips_done, self.round_trips_failed
            )),
            _ => t.push_str(&format!("submit_to round trip: no result ({} failed)\n", self.round_trips_failed)),
        }
        match self.messages_per_sec {
            Some(r) => t.push_str(&format!(
                "Channel<u64> (capacity {}) shard 0 → 1: {:.0} messages/s ({} received)\n",
                self.cfg.capacity, r, self.received
            )),
            None => t.push_str("Channel<u64> throughput: no result\n"),
        }
        if let (Some(sender), Some(receiver)) =
            (self.sender_ns_per_message, self.receiver_ns_per_message)
        {
            t.push_str(&format!(
                "on-CPU time per message: sender {sender:.1} ns/msg, receiver {receiver:.1} ns/msg (1e9 ÷ sender: {:.1} M messages/s of sender CPU)\n",
                1e3 / sender
            ));
        }
        for note in &self.notes {
            t.push_str(&format!("note: {note}\n"));
        }
        t
    }

    pub fn to_json(&self) -> String {
        let p = self.round_trip_ns.unwrap_or_default();
        let mut o = JsonObject::default()
            .str("mode", "mesh")
            .num("round_trips", self.round_trips_done as f64)
            .num("round_trips_failed", self.round_trips_failed as f64)
            .opt("round_trip_p50_ns", self.round_trip_ns.map(|_| p.p50))
            .opt("round_trip_p99_ns", self.round_trip_ns.map(|_| p.p99))
            .opt("round_trip_mean_ns", self.round_trip_ns.map(|_| p.mean))
            .num("channel_capacity", self.cfg.capacity as f64)
            .num("received", self.received as f64)
            .opt("messages_per_sec", self.messages_per_sec)
            .opt("sender_ns_per_message", self.sender_ns_per_message)
            .opt("receiver_ns_per_message", self.receiver_ns_per_message);
        for (i, note) in self.notes.iter().enumerate() {
            o = o.str(&format!("note{i}"), note);
        }
        o.finish()
    }
}
