//! Transactions and multi-key writes across shards: atomic (a concurrent checker), WATCH,
//! and locks given back when a client goes away mid-way.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use common::{KvServer, Raw, bulk, key_on, keys_on};

fn redis_con(server: &KvServer) -> redis::Connection {
    let client = redis::Client::open(server.url()).unwrap();
    let con = client.get_connection().expect("connect");
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    con
}

/// How long the checker runs: short in CI, longer with `KV_TXN_SECS`.
fn checker_time() -> Duration {
    let secs = std::env::var("KV_TXN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

#[test]
fn cross_shard_writes_are_never_seen_half_done() {
    let server = KvServer::start();
    // Two keys on each shard.
    let mut keys = keys_on(0, "ck", 2);
    keys.extend(keys_on(1, "ck", 2));
    let (token_a, token_b) = (key_on(0, "token"), key_on(1, "token"));
    let (set_a, set_b) = (key_on(0, "set"), key_on(1, "set"));
    let mut setup = redis_con(&server);
    redis::cmd("SET")
        .arg(&token_a)
        .arg("t")
        .query::<()>(&mut setup)
        .unwrap();
    redis::cmd("SADD")
        .arg(&set_a)
        .arg("m")
        .query::<()>(&mut setup)
        .unwrap();

    let deadline = Instant::now() + checker_time();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    // Writers: MSET over both shards, and MULTI/EXEC of SETs over both shards, every key
    // to the same value.
    for w in 0..4 {
        let (keys, stop, writes) = (keys.clone(), stop.clone(), writes.clone());
        let mut con = redis_con(&server);
        threads.push(thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let value = format!("w{w}:{seq}");
                if seq.is_multiple_of(2) {
                    let mut mset = redis::cmd("MSET");
                    for k in &keys {
                        mset.arg(k).arg(&value);
                    }
                    mset.query::<()>(&mut con).unwrap();
                } else {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    for k in &keys {
                        pipe.cmd("SET").arg(k).arg(&value).ignore();
                    }
                    pipe.query::<()>(&mut con).unwrap();
                }
                writes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // A token moved between shards by RENAME, a member by SMOVE.
    {
        let (stop, writes) = (stop.clone(), writes.clone());
        let (ta, tb, sa, sb) = (
            token_a.clone(),
            token_b.clone(),
            set_a.clone(),
            set_b.clone(),
        );
        let mut con = redis_con(&server);
        threads.push(thread::spawn(move || {
            let mut at_a = true;
            while !stop.load(Ordering::Relaxed) {
                let (from, to, sfrom, sto) = if at_a {
                    (&ta, &tb, &sa, &sb)
                } else {
                    (&tb, &ta, &sb, &sa)
                };
                redis::cmd("RENAME")
                    .arg(from)
                    .arg(to)
                    .query::<()>(&mut con)
                    .unwrap();
                let moved: i64 = redis::cmd("SMOVE")
                    .arg(sfrom)
                    .arg(sto)
                    .arg("m")
                    .query(&mut con)
                    .unwrap();
                assert_eq!(moved, 1, "the member was where the mover left it");
                at_a = !at_a;
                writes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Readers: MGET over both shards, and MULTI/EXEC reads over both shards.
    for r in 0..4u32 {
        let (keys, stop, reads) = (keys.clone(), stop.clone(), reads.clone());
        let (ta, tb, sa, sb) = (
            token_a.clone(),
            token_b.clone(),
            set_a.clone(),
            set_b.clone(),
        );
        let mut con = redis_con(&server);
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let values: Vec<Option<String>> = if r.is_multiple_of(2) {
                    redis::cmd("MGET").arg(&keys).query(&mut con).unwrap()
                } else {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    for k in &keys {
                        pipe.cmd("GET").arg(k);
                    }
                    pipe.query(&mut con).unwrap()
                };
                assert!(
                    values.iter().all(|v| *v == values[0]),
                    "a reader saw a cross-shard write half done: {values:?}"
                );
                let tokens: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&ta)
                    .arg(&tb)
                    .query(&mut con)
                    .unwrap();
                assert_eq!(
                    tokens.iter().flatten().count(),
                    1,
                    "RENAME across shards seen half done: {tokens:?}"
                );
                let (in_a, in_b): (i64, i64) = redis::pipe()
                    .atomic()
                    .cmd("SISMEMBER")
                    .arg(&sa)
                    .arg("m")
                    .cmd("SISMEMBER")
                    .arg(&sb)
                    .arg("m")
                    .query(&mut con)
                    .unwrap();
                assert_eq!(in_a + in_b, 1, "SMOVE across shards seen half done");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while Instant::now() < deadline && !threads.iter().any(|t| t.is_finished()) {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a checker thread failed");
    }
    let (writes, reads) = (
        writes.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
    );
    eprintln!("checker: {writes} cross-shard writes, {reads} checked reads");
    assert!(
        writes > 20 && reads > 20,
        "too little done: {writes} {reads}"
    );
}

#[test]
fn multi_exec_across_shards_runs_every_command_in_order() {
    let server = KvServer::start();
    let (a, b) = (key_on(0, "acct"), key_on(1, "acct"));
    let mut r = server.raw();
    r.cmd(&["SET", &a, "100"]);
    assert_eq!(r.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(r.cmd(&["DECRBY", &a, "30"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["INCRBY", &b, "30"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["MGET", &a, &b]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["RENAME", &b, "moved"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), "+QUEUED\r\n");
    assert_eq!(
        r.cmd(&["EXEC"]),
        format!(
            "*5\r\n:70\r\n:30\r\n*2\r\n{}{}+OK\r\n:2\r\n",
            bulk("70"),
            bulk("30")
        )
    );
    assert_eq!(r.cmd(&["GET", "moved"]), bulk("30"));
    // A command error inside runs as in Redis: the others still run.
    assert_eq!(r.cmd(&["MULTI"]), "+OK\r\n");
    r.cmd(&["LPUSH", &a, "x"]);
    r.cmd(&["SET", &b, "ok"]);
    assert_eq!(
        r.cmd(&["EXEC"]),
        "*2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n+OK\r\n"
    );
}

#[test]
fn watch_fails_exec_when_a_watched_key_changes() {
    let server = KvServer::start();
    let (a, b) = (key_on(0, "w"), key_on(1, "w"));
    let mut r = server.raw();
    let mut other = server.raw();
    // Untouched: EXEC runs.
    assert_eq!(r.cmd(&["WATCH", &a, &b]), "+OK\r\n");
    r.cmd(&["MULTI"]);
    r.cmd(&["SET", &a, "1"]);
    assert_eq!(r.cmd(&["EXEC"]), "*1\r\n+OK\r\n");
    // Written by another client (key on either shard): EXEC answers nil, nothing runs.
    for watched in [&a, &b] {
        assert_eq!(r.cmd(&["WATCH", watched]), "+OK\r\n");
        other.cmd(&["SET", watched, "changed"]);
        r.cmd(&["MULTI"]);
        r.cmd(&["SET", &a, "mine"]);
        r.cmd(&["SET", &b, "mine"]);
        assert_eq!(r.cmd(&["EXEC"]), "*-1\r\n");
        assert_eq!(other.cmd(&["GET", watched]), bulk("changed"));
    }
    // All on one shard (the watch is checked inside the shard's batch).
    for watched in [&a, &b] {
        r.cmd(&["WATCH", watched]);
        r.cmd(&["MULTI"]);
        r.cmd(&["SET", watched, "one-shard"]);
        assert_eq!(r.cmd(&["EXEC"]), "*1\r\n+OK\r\n");
        r.cmd(&["WATCH", watched]);
        other.cmd(&["SET", watched, "changed"]);
        r.cmd(&["MULTI"]);
        r.cmd(&["SET", watched, "mine"]);
        r.cmd(&["PING"]);
        assert_eq!(r.cmd(&["EXEC"]), "*-1\r\n");
        assert_eq!(other.cmd(&["GET", watched]), bulk("changed"));
    }
    // EXEC unwatches: a later write does not fail the next transaction.
    r.cmd(&["MULTI"]);
    r.cmd(&["GET", &a]);
    other.cmd(&["SET", &a, "again"]);
    assert_eq!(r.cmd(&["EXEC"]), format!("*1\r\n{}", bulk("again")));
    // UNWATCH and DISCARD forget the watch.
    r.cmd(&["WATCH", &a]);
    assert_eq!(r.cmd(&["UNWATCH"]), "+OK\r\n");
    other.cmd(&["SET", &a, "x"]);
    r.cmd(&["MULTI"]);
    r.cmd(&["PING"]);
    assert_eq!(r.cmd(&["EXEC"]), "*1\r\n+PONG\r\n");
    r.cmd(&["WATCH", &a]);
    r.cmd(&["MULTI"]);
    assert_eq!(r.cmd(&["DISCARD"]), "+OK\r\n");
    other.cmd(&["SET", &a, "y"]);
    r.cmd(&["MULTI"]);
    r.cmd(&["PING"]);
    assert_eq!(r.cmd(&["EXEC"]), "*1\r\n+PONG\r\n");
    // Inside MULTI: refused, the transaction goes on.
    r.cmd(&["MULTI"]);
    assert_eq!(
        r.cmd(&["WATCH", &a]),
        "-ERR WATCH inside MULTI is not allowed\r\n"
    );
    assert_eq!(r.cmd(&["EXEC"]), "*0\r\n");
    // A cross-shard MSET, a cross-shard DEL and FLUSHALL touch watched keys.
    for touch in [
        vec!["MSET", a.as_str(), "1", b.as_str(), "2"],
        vec!["DEL", a.as_str(), b.as_str()],
    ] {
        r.cmd(&["WATCH", &b]);
        other.cmd(&touch);
        r.cmd(&["MULTI"]);
        r.cmd(&["PING"]);
        assert_eq!(r.cmd(&["EXEC"]), "*-1\r\n", "{touch:?}");
    }
    other.cmd(&["SET", &a, "1"]);
    r.cmd(&["WATCH", &a, "never-there"]);
    other.cmd(&["FLUSHALL"]);
    r.cmd(&["MULTI"]);
    r.cmd(&["PING"]);
    assert_eq!(r.cmd(&["EXEC"]), "*-1\r\n");
    // FLUSHALL does not touch a watched key that did not exist.
    r.cmd(&["WATCH", "never-there"]);
    other.cmd(&["FLUSHALL"]);
    r.cmd(&["MULTI"]);
    r.cmd(&["PING"]);
    assert_eq!(r.cmd(&["EXEC"]), "*1\r\n+PONG\r\n");
    // A watched key that expires before EXEC counts as changed.
    other.cmd(&["SET", &b, "v", "PX", "50"]);
    r.cmd(&["WATCH", &b]);
    thread::sleep(Duration::from_millis(120));
    r.cmd(&["MULTI"]);
    r.cmd(&["PING"]);
    assert_eq!(r.cmd(&["EXEC"]), "*-1\r\n");
}

#[test]
fn watch_through_the_redis_crate_transaction_helper() {
    let server = KvServer::start();
    let (a, b) = (key_on(0, "bal"), key_on(1, "bal"));
    let mut con = redis_con(&server);
    redis::cmd("MSET")
        .arg(&a)
        .arg(100)
        .arg(&b)
        .arg(0)
        .query::<()>(&mut con)
        .unwrap();
    // Concurrent transfers with WATCH retries: the total stays 100.
    let mut threads = Vec::new();
    for _ in 0..4 {
        let (a, b) = (a.clone(), b.clone());
        let mut con = redis_con(&server);
        threads.push(thread::spawn(move || {
            for _ in 0..25 {
                let _: () = redis::transaction(&mut con, &[&a, &b], |con, pipe| {
                    let (x, y): (i64, i64) = redis::cmd("MGET").arg(&a).arg(&b).query(con)?;
                    pipe.cmd("SET")
                        .arg(&a)
                        .arg(x - 1)
                        .ignore()
                        .cmd("SET")
                        .arg(&b)
                        .arg(y + 1)
                        .ignore()
                        .query(con)
                })
                .unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let (x, y): (i64, i64) = redis::cmd("MGET").arg(&a).arg(&b).query(&mut con).unwrap();
    assert_eq!((x, y), (0, 100));
}

#[test]
fn a_client_killed_mid_transaction_leaves_no_lock_behind() {
    let server = KvServer::start();
    let (a, b) = (key_on(0, "kill"), key_on(1, "kill"));
    let mut admin = server.raw();
    for round in 0..20 {
        let mut victim = server.raw();
        let id = {
            let info = victim.cmd(&["CLIENT", "ID"]);
            info.trim_start_matches(':').trim().to_string()
        };
        // A long pipeline of cross-shard writes and transactions, never read.
        let mut burst = Vec::new();
        for i in 0..500 {
            let v = format!("{round}:{i}");
            burst.extend(Raw::encode(&["MSET", &a, &v, &b, &v]));
            burst.extend(Raw::encode(&["MULTI"]));
            burst.extend(Raw::encode(&["SET", &a, &v]));
            burst.extend(Raw::encode(&["SET", &b, &v]));
            burst.extend(Raw::encode(&["EXEC"]));
        }
        victim.send_bytes(&burst);
        let killed = admin.cmd(&["CLIENT", "KILL", "ID", &id]);
        assert!(killed == ":1\r\n" || killed == ":0\r\n", "{killed}");
        // Whatever it was doing, its keys are free again (the raw client's reads time out
        // after 10 s: a lock left behind fails here).
        assert_eq!(admin.cmd(&["MSET", &a, "free", &b, "free"]), "+OK\r\n");
        assert_eq!(
            admin.cmd(&["MGET", &a, &b]),
            format!("*2\r\n{}{}", bulk("free"), bulk("free"))
        );
    }
}

#[test]
fn a_blocked_pop_is_served_after_a_cross_shard_transaction_not_inside_it() {
    let server = KvServer::start();
    let (q, b) = (key_on(0, "queue"), key_on(1, "queue"));
    let mut waiter = server.raw();
    waiter.send_bytes(&Raw::encode(&["BLPOP", &q, "5"]));
    let mut r = server.raw();
    // The waiter is registered once CLIENT LIST shows it blocked (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !r.cmd(&["INFO", "clients"]).contains("blocked_clients:1") {
        assert!(Instant::now() < deadline, "the BLPOP never blocked");
        thread::sleep(Duration::from_millis(5));
    }
    r.cmd(&["MULTI"]);
    r.cmd(&["RPUSH", &q, "first"]);
    r.cmd(&["RPUSH", &q, "second"]);
    r.cmd(&["SET", &b, "done"]);
    r.cmd(&["LRANGE", &q, "0", "-1"]);
    assert_eq!(
        r.cmd(&["EXEC"]),
        format!(
            "*4\r\n:1\r\n:2\r\n+OK\r\n{}",
            common::bulks(&["first", "second"])
        ),
        "nothing is popped inside the transaction"
    );
    assert_eq!(waiter.reply(), common::bulks(&[&q, "first"]));
    assert_eq!(
        r.cmd(&["LRANGE", &q, "0", "-1"]),
        common::bulks(&["second"])
    );
}
