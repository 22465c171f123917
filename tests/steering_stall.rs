//! A shard stalled by a spinning handler (300 ms) gets no new connections: in every
//! steering mode, connections opened during the stall are all served by the other shard,
//! promptly, including those the kernel queued on the stalled shard's own listener (the
//! stall detector takes them). The stall is reported, and the shard is used again after.

#[path = "support/steer.rs"]
mod steer;

use std::{
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use percore::{Server, Steering};
use steer::{Client, client_on, pin_to, serve, wait_stalled};

/// New connections opened (one after the other) while shard 0 is stalled.
const DURING_STALL: usize = 12;
/// How long one of them may take to be answered.
const PROMPT: Duration = Duration::from_millis(100);

fn stall_and_connect(mode: Steering) {
    let (server, addr) = serve(
        Server::builder()
            .shards(2)
            .steering(mode)
            .stall_threshold(Duration::from_millis(50)),
    );
    let cpu0 = server.report().shard_cpus[0].1;
    // In `cpu` mode only a client on shard 0's CPU reaches shard 0.
    let mut on0 = thread::spawn(move || {
        if mode == Steering::Cpu
            && let Some(cpu) = cpu0
        {
            pin_to(cpu);
        }
        client_on(addr, 0)
    })
    .join()
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let spinner = thread::spawn(move || {
        tx.send(()).unwrap();
        on0.ask("spin 300")
    });
    rx.recv().unwrap();
    assert!(
        wait_stalled(&server, 0, true, Duration::from_secs(2)),
        "the stall detector never marked shard 0 stalled"
    );
    // In `cpu` mode a client on shard 0's CPU is steered to shard 0's listener: every one
    // of these connections has to be taken from it.
    let clients = thread::spawn(move || {
        if mode == Steering::Cpu
            && let Some(cpu) = cpu0
        {
            pin_to(cpu);
        }
        let mut served = Vec::new();
        for _ in 0..DURING_STALL {
            let started = Instant::now();
            let mut client = Client::connect(addr).unwrap();
            let shard = client.shard();
            served.push((shard, started.elapsed()));
        }
        served
    });
    let served = clients.join().unwrap();
    let loads = server.shard_loads();
    let still_stalled = loads[0].stalled;
    assert_eq!(spinner.join().unwrap(), "spun 0");
    assert!(
        still_stalled,
        "the stall ended before the clients finished ({served:?}): the test proved nothing"
    );
    for (i, (shard, took)) in served.iter().enumerate() {
        assert_eq!(
            *shard, 1,
            "connection {i} went to the stalled shard ({served:?})"
        );
        assert!(*took < PROMPT, "connection {i} took {took:?} ({served:?})");
    }
    if mode == Steering::Cpu && server.steering() == Steering::Cpu {
        assert!(
            loads[0].taken_over >= DURING_STALL as u64,
            "connections were not taken from the stalled listener: {loads:?}"
        );
    }
    // Recovery: the shard is no longer stalled and takes connections again.
    assert!(wait_stalled(&server, 0, false, Duration::from_secs(2)));
    // `balanced` counts recent loop lag as load; it fades within 100 ms of the stall.
    let faded = Instant::now() + Duration::from_secs(2);
    while server.shard_loads()[0].lag_us > 0 && Instant::now() < faded {
        thread::sleep(Duration::from_millis(1));
    }
    let back = thread::spawn(move || {
        if mode == Steering::Cpu
            && let Some(cpu) = cpu0
        {
            pin_to(cpu);
        }
        client_on(addr, 0).ask("ping")
    });
    assert_eq!(back.join().unwrap(), "pong 0");
    let stats = server.shard_stats(Duration::from_secs(2));
    assert_eq!(stats[0].stalls, 1, "the stall was counted once");
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}

#[test]
fn reuseport_a_stalled_shards_queued_connections_are_served_by_the_other() {
    stall_and_connect(Steering::ReusePort);
}

#[test]
fn cpu_a_stalled_shards_queued_connections_are_served_by_the_other() {
    stall_and_connect(Steering::Cpu);
}

#[test]
fn balanced_a_stalled_shard_gets_no_new_connections() {
    stall_and_connect(Steering::Balanced);
}

/// The takeover acts before the stall report: with a 1 s stall threshold and a 20 ms
/// takeover threshold, a 300 ms computation is not a stall, yet new connections opened
/// while it runs are served by the other shard at once.
#[test]
fn takeover_acts_before_a_computation_counts_as_a_stall() {
    let (server, addr) = serve(
        Server::builder()
            .shards(2)
            .stall_threshold(Duration::from_secs(1))
            .takeover_threshold(Duration::from_millis(20)),
    );
    let mut on0 = client_on(addr, 0);
    let spinner = thread::spawn(move || on0.ask("spin 300"));
    assert!(
        wait_stalled(&server, 0, true, Duration::from_secs(2)),
        "shard 0 was never marked for takeover"
    );
    let mut served = Vec::new();
    for _ in 0..DURING_STALL {
        let started = Instant::now();
        let shard = Client::connect(addr).unwrap().shard();
        served.push((shard, started.elapsed()));
    }
    let still_busy = server.shard_loads()[0].stalled;
    assert_eq!(spinner.join().unwrap(), "spun 0");
    assert!(
        still_busy,
        "the computation ended before the clients finished: {served:?}"
    );
    assert!(
        served.iter().all(|(s, took)| *s == 1 && *took < PROMPT),
        "{served:?}"
    );
    let stats = server.shard_stats(Duration::from_secs(2));
    assert_eq!(
        stats[0].stalls, 0,
        "300 ms is under the 1 s stall threshold"
    );
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}
