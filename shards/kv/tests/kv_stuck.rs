//! A shard that stops answering: commands for keys it owns, sent from a connection on
//! another shard, get `-TRYAGAIN` within the mesh timeout instead of hanging, the other
//! shard's own keys are served meanwhile, and the keys are served again once it recovers.

mod common;

use std::{
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use common::{KvServer, SHARDS, key_on};
use percore::Server;

const MESH_TIMEOUT: Duration = Duration::from_millis(800);
const TRYAGAIN: &str = "-TRYAGAIN shard 1 is unavailable\r\n";

#[test]
fn commands_for_a_stuck_shard_get_tryagain_within_the_mesh_timeout() {
    let handle = percore_kv::serve(
        Server::builder()
            .shards(SHARDS)
            .mesh_timeout(MESH_TIMEOUT)
            .drain_timeout(Duration::from_secs(2)),
        "127.0.0.1:0".parse().unwrap(),
        percore_kv::Config::default(),
    )
    .expect("kv server starts");
    let addr = handle.listen_addr().unwrap();
    let server = KvServer {
        handle: Some(handle),
        addr,
    };
    let mut on0 = server.raw_on(0);
    let (mine, theirs) = (key_on(0, "here"), key_on(1, "there"));
    assert_eq!(on0.cmd(&["SET", &theirs, "1"]), "+OK\r\n");

    // Shard 1 blocks in a syscall for 3 s (what a handler that blocks does).
    let (started_tx, started) = mpsc::channel();
    let posted = server.handle.as_ref().unwrap().run_on_shard(1, move || {
        let _ = started_tx.send(());
        thread::sleep(Duration::from_secs(3));
    });
    assert!(posted);
    started
        .recv_timeout(Duration::from_secs(5))
        .expect("shard 1 ran the blocking message");

    // A command already waiting for shard 1 fails once it is stuck past the mesh timeout.
    let asked = Instant::now();
    assert_eq!(on0.cmd(&["GET", &theirs]), TRYAGAIN);
    let waited = asked.elapsed();
    assert!(
        waited < MESH_TIMEOUT + Duration::from_millis(500),
        "TRYAGAIN after {waited:?}"
    );

    // Shard 0's own keys are served at once meanwhile, and new calls fail at once.
    let asked = Instant::now();
    assert_eq!(on0.cmd(&["SET", &mine, "x"]), "+OK\r\n");
    assert_eq!(on0.cmd(&["SET", &theirs, "2"]), TRYAGAIN);
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked.elapsed()
    );

    // Once shard 1 is back, its keys are served again (the refused SET did not happen).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = on0.cmd(&["GET", &theirs]);
        if reply == "$1\r\n1\r\n" {
            break;
        }
        assert_eq!(reply, TRYAGAIN, "only TRYAGAIN while it is stuck");
        assert!(Instant::now() < deadline, "shard 1 did not come back");
        thread::sleep(Duration::from_millis(50));
    }
}
