//! The blocking pops on a two-shard server: a waiter on one shard woken by a push to a key
//! another shard owns, timeouts, first-come order among waiters, and a disconnected
//! waiter that takes nothing.

mod common;

use std::time::{Duration, Instant};

use common::{KvServer, Raw, bulk, bulks, key_on};

/// Waits (bounded) until INFO reports `n` blocked clients.
fn wait_blocked(r: &mut Raw, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if r.cmd(&["INFO", "clients"]).contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} blocked clients");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_push_on_the_owner_shard_wakes_a_waiter_on_another() {
    let server = KvServer::start();
    for key_shard in 0..2 {
        let key = key_on(key_shard, "queue");
        let mut waiter = server.raw_on(1 - key_shard);
        let mut pusher = server.raw_on(key_shard);
        waiter.send_bytes(&Raw::encode(&["BLPOP", "nothing-here", &key, "5"]));
        wait_blocked(&mut pusher, 1);
        assert_eq!(pusher.cmd(&["RPUSH", &key, "job1", "job2"]), ":2\r\n");
        assert_eq!(waiter.reply(), bulks(&[&key, "job1"]));
        assert_eq!(pusher.cmd(&["LRANGE", &key, "0", "-1"]), bulks(&["job2"]));
        wait_blocked(&mut pusher, 0);
        // A list already holding elements answers at once.
        assert_eq!(waiter.cmd(&["BRPOP", &key, "0"]), bulks(&[&key, "job2"]));
        assert_eq!(waiter.cmd(&["EXISTS", &key]), ":0\r\n");
    }
}

#[test]
fn a_timeout_answers_null_and_bad_timeouts_are_refused() {
    let server = KvServer::start();
    let mut r = server.raw();
    let started = Instant::now();
    assert_eq!(r.cmd(&["BLPOP", "empty", "0.2"]), "*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        r.cmd(&["BLMOVE", "empty", "dst", "LEFT", "RIGHT", "0.05"]),
        "$-1\r\n"
    );
    assert_eq!(r.cmd(&["BZPOPMIN", "empty", "0.05"]), "*-1\r\n");
    assert_eq!(
        r.cmd(&["BLPOP", "empty", "-1"]),
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(
        r.cmd(&["BLPOP", "empty", "soon"]),
        "-ERR timeout is not a float or out of range\r\n"
    );
    assert_eq!(r.cmd(&["SET", "str", "x"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["BLPOP", "str", "1"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert!(
        r.cmd(&["INFO", "clients"])
            .contains("blocked_clients:0\r\n"),
        "no client stays blocked"
    );
}

#[test]
fn waiters_are_served_first_come() {
    let server = KvServer::start();
    let key = key_on(1, "fifo");
    let mut control = server.raw_on(0);
    let mut first = server.raw_on(0);
    let mut second = server.raw_on(1);
    first.send_bytes(&Raw::encode(&["BLPOP", &key, "5"]));
    wait_blocked(&mut control, 1);
    second.send_bytes(&Raw::encode(&["BLPOP", &key, "5"]));
    wait_blocked(&mut control, 2);
    assert_eq!(control.cmd(&["RPUSH", &key, "a"]), ":1\r\n");
    assert_eq!(first.reply(), bulks(&[&key, "a"]));
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&["RPUSH", &key, "b"]), ":1\r\n");
    assert_eq!(second.reply(), bulks(&[&key, "b"]));
}

#[test]
fn a_disconnected_waiter_takes_nothing() {
    let server = KvServer::start();
    let key = key_on(1, "gone");
    let mut control = server.raw_on(0);
    let waiter = server.raw_on(0);
    let mut w = waiter;
    w.send_bytes(&Raw::encode(&["BLPOP", &key, "0"]));
    wait_blocked(&mut control, 1);
    w.shutdown();
    wait_blocked(&mut control, 0);
    assert_eq!(control.cmd(&["RPUSH", &key, "kept"]), ":1\r\n");
    assert_eq!(control.cmd(&["LRANGE", &key, "0", "-1"]), bulks(&["kept"]));
}

#[test]
fn blocking_moves_and_sorted_set_pops_wake_too() {
    let server = KvServer::start();
    let src = key_on(0, "src");
    let dst = key_on(1, "dst");
    let zkey = key_on(1, "zq");
    let mut control = server.raw_on(1);
    let mut mover = server.raw_on(0);
    // The destination already holds elements: the move still waits for its source.
    assert_eq!(control.cmd(&["RPUSH", &dst, "old"]), ":1\r\n");
    mover.send_bytes(&Raw::encode(&["BLMOVE", &src, &dst, "LEFT", "RIGHT", "5"]));
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&["LPUSH", &src, "item"]), ":1\r\n");
    assert_eq!(mover.reply(), bulk("item"));
    assert_eq!(
        control.cmd(&["LRANGE", &dst, "0", "-1"]),
        bulks(&["old", "item"])
    );
    mover.send_bytes(&Raw::encode(&["BZPOPMIN", &zkey, "5"]));
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&["ZADD", &zkey, "2", "b", "1", "a"]), ":2\r\n");
    assert_eq!(mover.reply(), bulks(&[&zkey, "a", "1"]));
    mover.send_bytes(&Raw::encode(&[
        "BLMPOP", "5", "2", "x", &src, "RIGHT", "COUNT", "2",
    ]));
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&["RPUSH", &src, "1", "2", "3"]), ":3\r\n");
    assert_eq!(
        mover.reply(),
        format!("*2\r\n{}{}", bulk(&src), bulks(&["3", "2"]))
    );
}

#[test]
fn a_fed_key_serves_its_waiters_in_order_after_each_write() {
    let server = KvServer::start();
    let mut control = server.raw_on(0);
    let mut waiters: Vec<Raw> = (0..4).map(|i| server.raw_on(i % 2)).collect();
    let pops = [
        ("LEFT", "1"),
        ("RIGHT", "10"),
        ("LEFT", "10"),
        ("RIGHT", "1"),
    ];
    for (n, (waiter, (side, count))) in waiters.iter_mut().zip(pops).enumerate() {
        waiter.send_bytes(&Raw::encode(&[
            "BLMPOP", "0", "2", "b1{t}", "b2{t}", side, "COUNT", count,
        ]));
        wait_blocked(&mut control, n + 1);
    }
    assert_eq!(control.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        control.cmd(&["LPUSH", "b1{t}", "a", "b", "c", "d", "e"]),
        "+QUEUED\r\n"
    );
    assert_eq!(
        control.cmd(&["LPUSH", "b2{t}", "1", "2", "3", "4", "5"]),
        "+QUEUED\r\n"
    );
    assert_eq!(control.cmd(&["EXEC"]), "*2\r\n:5\r\n:5\r\n");
    let expect = |key: &str, items: &[&str]| format!("*2\r\n{}{}", bulk(key), bulks(items));
    assert_eq!(waiters[0].reply(), expect("b1{t}", &["e"]));
    assert_eq!(waiters[1].reply(), expect("b1{t}", &["a", "b", "c", "d"]));
    assert_eq!(
        waiters[2].reply(),
        expect("b2{t}", &["5", "4", "3", "2", "1"])
    );
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&["LPUSH", "b2{t}", "1", "2", "3"]), ":3\r\n");
    assert_eq!(waiters[3].reply(), expect("b2{t}", &["1"]));
    assert_eq!(
        control.cmd(&["LRANGE", "b2{t}", "0", "-1"]),
        bulks(&["3", "2"])
    );
}

#[test]
fn a_transaction_feeds_waiters_only_with_what_it_leaves() {
    let server = KvServer::start();
    let mut control = server.raw_on(0);
    let mut waiter = server.raw_on(1);
    let key = key_on(1, "txq");
    waiter.send_bytes(&Raw::encode(&["BLPOP", &key, "5"]));
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(control.cmd(&["LPUSH", &key, "a"]), "+QUEUED\r\n");
    assert_eq!(control.cmd(&["DEL", &key]), "+QUEUED\r\n");
    assert_eq!(control.cmd(&["SET", &key, "now a string"]), "+QUEUED\r\n");
    assert_eq!(control.cmd(&["EXEC"]), "*3\r\n:1\r\n:1\r\n+OK\r\n");
    assert_eq!(control.cmd(&["DEL", &key]), ":1\r\n");
    assert_eq!(control.cmd(&["LPUSH", &key, "b"]), ":1\r\n");
    assert_eq!(
        waiter.reply(),
        bulks(&[&key, "b"]),
        "the waiter never saw `a`"
    );
}

#[test]
fn a_move_to_a_destination_of_another_type_answers_wrongtype_when_fed() {
    let server = KvServer::start();
    let mut control = server.raw_on(0);
    let mut waiter = server.raw_on(1);
    assert_eq!(control.cmd(&["SET", "dst{m}", "not a list"]), "+OK\r\n");
    waiter.send_bytes(&Raw::encode(&["BRPOPLPUSH", "src{m}", "dst{m}", "0"]));
    wait_blocked(&mut control, 1);
    assert_eq!(control.cmd(&["RPUSH", "src{m}", "foo"]), ":1\r\n");
    assert_eq!(
        waiter.reply(),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    assert_eq!(
        control.cmd(&["LRANGE", "src{m}", "0", "-1"]),
        bulks(&["foo"])
    );
    wait_blocked(&mut control, 0);
}
