//! CLIENT LIST, CLIENT KILL and CLIENT UNBLOCK over the connections of both shards.

mod common;

use std::time::{Duration, Instant};

use common::{KvServer, Raw};

fn id_of(r: &mut Raw) -> String {
    r.cmd(&["CLIENT", "ID"])[1..].trim().to_string()
}

/// Waits (bounded) until CLIENT LIST shows `id` with flag `flag`.
fn wait_flag(r: &mut Raw, id: &str, flag: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !r
        .cmd(&["CLIENT", "LIST", "ID", id])
        .contains(&format!("flags={flag} "))
    {
        assert!(
            Instant::now() < deadline,
            "client {id} never had flags={flag}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn list_kill_and_unblock_reach_every_shard() {
    let server = KvServer::start();
    let mut control = server.raw_on(0);
    let mut other = server.raw_on(1);
    let mut blocked = server.raw_on(1);
    let (other_id, blocked_id) = (id_of(&mut other), id_of(&mut blocked));
    assert_eq!(other.cmd(&["CLIENT", "SETNAME", "worker"]), "+OK\r\n");
    assert_eq!(other.cmd(&["SELECT", "4"]), "+OK\r\n");
    let listing = control.cmd(&["CLIENT", "LIST"]);
    let control_id = id_of(&mut control);
    for id in [&control_id, &other_id, &blocked_id] {
        assert!(listing.contains(&format!("id={id} ")), "{listing}");
    }
    assert!(listing.contains(&format!("id={other_id} ")) && listing.contains("name=worker"));
    assert!(listing.contains("db=4"), "{listing}");

    blocked.send_bytes(&Raw::encode(&["BLPOP", "never", "0"]));
    wait_flag(&mut control, &blocked_id, "b");
    assert_eq!(
        control.cmd(&["CLIENT", "UNBLOCK", &blocked_id, "ERROR"]),
        ":1\r\n"
    );
    assert_eq!(
        blocked.reply(),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    assert_eq!(
        control.cmd(&["CLIENT", "UNBLOCK", &blocked_id]),
        ":0\r\n",
        "no longer blocked"
    );
    blocked.send_bytes(&Raw::encode(&["BLPOP", "never", "0"]));
    wait_flag(&mut control, &blocked_id, "b");
    assert_eq!(
        control.cmd(&["CLIENT", "UNBLOCK", &blocked_id, "TIMEOUT"]),
        ":1\r\n"
    );
    assert_eq!(blocked.reply(), "*-1\r\n");

    assert_eq!(control.cmd(&["CLIENT", "KILL", "ID", &other_id]), ":1\r\n");
    assert!(other.ends(), "a killed connection is closed");
    assert_eq!(
        control.cmd(&["CLIENT", "KILL", "127.0.0.1:1"]),
        "-ERR No such client\r\n"
    );
    let listing = control.cmd(&["CLIENT", "LIST"]);
    assert!(!listing.contains(&format!("id={other_id} ")), "{listing}");
}
