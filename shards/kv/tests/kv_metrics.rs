//! RESP commands by name in the kernel's per-shard service counters (what the admin
//! listener exports as `percore_kv_commands_total{command=...,shard=...}`).

mod common;

use std::time::Duration;

use common::{KvServer, Raw, SHARDS, key_on};

fn commands_counted(server: &KvServer, shard: usize, command: &str) -> u64 {
    let stats = server
        .handle
        .as_ref()
        .unwrap()
        .shard_stats(Duration::from_secs(5));
    assert_eq!(stats.len(), SHARDS, "every shard answered");
    let label = format!("command=\"{command}\"");
    stats[shard]
        .service
        .iter()
        .filter(|s| s.name == "percore_kv_commands_total" && s.labels == label)
        .map(|s| s.value)
        .sum()
}

#[test]
fn commands_are_counted_by_name_on_the_shard_that_received_them() {
    let server = KvServer::start();
    let mut on_zero = server.raw_on(0);
    let mut on_one = server.raw_on(1);
    for i in 0..3 {
        assert_eq!(on_zero.cmd(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
    }
    for _ in 0..2 {
        on_zero.cmd(&["GET", "k0"]);
    }
    assert!(
        on_zero
            .cmd(&["NOSUCHCOMMAND"])
            .starts_with("-ERR unknown command")
    );
    on_one.cmd(&["GET", "k1"]);
    // A pipeline whose first command goes to the other shard: the commands after it are
    // deferred with it, and still counted once each.
    let remote = key_on(1, "remote");
    let local = key_on(0, "local");
    let mut pipeline = Raw::encode(&["INCR", &remote]);
    pipeline.extend(Raw::encode(&["INCR", &local]));
    pipeline.extend(Raw::encode(&["INCR", &local]));
    on_zero.send_bytes(&pipeline);
    for _ in 0..3 {
        assert!(on_zero.reply().starts_with(':'));
    }

    assert_eq!(commands_counted(&server, 0, "set"), 3);
    assert_eq!(commands_counted(&server, 0, "get"), 2);
    assert_eq!(commands_counted(&server, 0, "unknown"), 1);
    assert_eq!(commands_counted(&server, 0, "incr"), 3);
    // Counted where the command arrived, whichever shard owned the key.
    assert_eq!(commands_counted(&server, 1, "get"), 1);
    assert_eq!(commands_counted(&server, 1, "set"), 0);
}
