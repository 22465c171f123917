//! `balanced` steering: a burst of connections ends up even across the shards, and a shard
//! whose loop is busy (long iterations, below the stall threshold) gets no new ones.

#[path = "support/steer.rs"]
mod steer;

use std::{sync::mpsc, thread, time::Duration};

use percore::{Server, Steering};
use steer::{Client, client_on, serve};

#[test]
fn a_burst_of_200_connections_is_even_within_ten_percent() {
    let (server, addr) = serve(Server::builder().shards(2).steering(Steering::Balanced));
    // Opened from four threads at once, kept open, then asked where they are.
    let openers: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                (0..50)
                    .map(|_| Client::connect(addr).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut clients: Vec<Client> = openers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let mut per_shard = [0usize; 2];
    for client in &mut clients {
        per_shard[client.shard()] += 1;
    }
    for (shard, n) in per_shard.iter().enumerate() {
        assert!(
            (90..=110).contains(n),
            "shard {shard} got {n} of 200: {per_shard:?}"
        );
    }
    let loads = server.shard_loads();
    assert_eq!(
        loads.iter().map(|l| l.connections).sum::<u64>(),
        200,
        "the load counts every open connection once: {loads:?}"
    );
    let stats = server.shard_stats(Duration::from_secs(2));
    let accepted: Vec<u64> = stats.iter().map(|s| s.net.accepted).collect();
    assert_eq!(accepted.iter().sum::<u64>(), 200, "{accepted:?}");
    drop(clients);
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}

#[test]
fn a_busy_shard_gets_no_new_connections() {
    // 60 ms iterations back to back: busy, but under the 200 ms stall threshold, so only
    // the loop-lag part of the load keeps connections away.
    let (server, addr) = serve(
        Server::builder()
            .shards(2)
            .steering(Steering::Balanced)
            .stall_threshold(Duration::from_millis(200)),
    );
    let mut on0 = client_on(addr, 0);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel();
    let spinner = thread::spawn(move || {
        let mut spins = 0;
        while stop_rx.try_recv().is_err() && spins < 100 {
            assert_eq!(on0.ask("spin 60"), "spun 0");
            spins += 1;
            if spins == 2 {
                busy_tx.send(()).unwrap();
            }
        }
    });
    busy_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut where_ = Vec::new();
    for _ in 0..20 {
        where_.push(Client::connect(addr).unwrap().shard());
    }
    stop_tx.send(()).unwrap();
    spinner.join().unwrap();
    let loads = server.shard_loads();
    assert!(
        where_.iter().all(|s| *s == 1),
        "new connections reached the busy shard: {where_:?} ({loads:?})"
    );
    assert_eq!(
        server.shard_stats(Duration::from_secs(2))[0].stalls,
        0,
        "the busy shard never counted as stalled"
    );
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}
