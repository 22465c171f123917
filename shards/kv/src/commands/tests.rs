//! Commands on a store with a test clock: expiry and TTL arithmetic at exact instants.

use super::{run, table::lookup};
use crate::store::Store;

/// Runs one command at `now_ms` and returns the reply's text.
fn at(store: &mut Store, now_ms: u64, args: &[&str]) -> String {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let spec = lookup(&args[0]).expect("known command");
    assert!(spec.arity_ok(args.len()));
    let mut out = Vec::new();
    run(store, spec, &args, now_ms, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn set_px_and_ex_expire_at_the_exact_millisecond() {
    let mut s = Store::new(None);
    assert_eq!(
        at(&mut s, 1_000, &["SET", "k", "v", "PX", "250"]),
        "+OK\r\n"
    );
    assert_eq!(at(&mut s, 1_000, &["PTTL", "k"]), ":250\r\n");
    assert_eq!(at(&mut s, 1_249, &["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(at(&mut s, 1_249, &["PTTL", "k"]), ":1\r\n");
    assert_eq!(at(&mut s, 1_250, &["GET", "k"]), "$-1\r\n");
    assert_eq!(at(&mut s, 1_250, &["TTL", "k"]), ":-2\r\n");
    assert_eq!(s.stats.expired_keys, 1);
    assert_eq!(at(&mut s, 2_000, &["SET", "k", "v", "EX", "10"]), "+OK\r\n");
    assert_eq!(
        at(&mut s, 6_400, &["TTL", "k"]),
        ":6\r\n",
        "5.6 s rounds to 6"
    );
    assert_eq!(
        at(&mut s, 6_600, &["TTL", "k"]),
        ":5\r\n",
        "5.4 s rounds to 5"
    );
    assert_eq!(
        at(&mut s, 2_000, &["SET", "a", "v", "PXAT", "5000"]),
        "+OK\r\n"
    );
    assert_eq!(at(&mut s, 2_000, &["PTTL", "a"]), ":3000\r\n");
    assert_eq!(
        at(&mut s, 2_000, &["SET", "b", "v", "EXAT", "5"]),
        "+OK\r\n"
    );
    assert_eq!(at(&mut s, 5_000, &["EXISTS", "a", "b", "k"]), ":1\r\n");
}

#[test]
fn expire_options_compare_with_the_current_time_to_live() {
    let mut s = Store::new(None);
    at(&mut s, 0, &["SET", "k", "v"]);
    assert_eq!(at(&mut s, 0, &["EXPIRE", "k", "10", "XX"]), ":0\r\n");
    assert_eq!(at(&mut s, 0, &["EXPIRE", "k", "10", "GT"]), ":0\r\n");
    assert_eq!(at(&mut s, 0, &["EXPIRE", "k", "10", "LT"]), ":1\r\n");
    assert_eq!(at(&mut s, 0, &["EXPIRE", "k", "20", "NX"]), ":0\r\n");
    assert_eq!(at(&mut s, 0, &["PEXPIRE", "k", "20000", "GT"]), ":1\r\n");
    assert_eq!(at(&mut s, 0, &["PTTL", "k"]), ":20000\r\n");
    assert_eq!(at(&mut s, 0, &["EXPIRE", "k", "5", "XX", "LT"]), ":1\r\n");
    assert_eq!(
        at(&mut s, 0, &["EXPIRE", "k", "5", "GT", "LT"]),
        "-ERR GT and LT options at the same time are not compatible\r\n"
    );
    assert_eq!(
        at(&mut s, 0, &["EXPIRE", "k", "5", "BOGUS"]),
        "-ERR Unsupported option BOGUS\r\n"
    );
    assert_eq!(
        at(&mut s, 0, &["EXPIRE", "k", "9223372036854775807"]),
        "-ERR invalid expire time in 'expire' command\r\n"
    );
    assert_eq!(at(&mut s, 0, &["EXPIRE", "k", "-1"]), ":1\r\n");
    assert_eq!(at(&mut s, 0, &["EXISTS", "k"]), ":0\r\n");
}

#[test]
fn incr_keeps_and_set_clears_the_time_to_live() {
    let mut s = Store::new(None);
    at(&mut s, 0, &["SET", "n", "1", "PX", "100"]);
    assert_eq!(at(&mut s, 10, &["INCR", "n"]), ":2\r\n");
    assert_eq!(at(&mut s, 10, &["PTTL", "n"]), ":90\r\n");
    assert_eq!(
        at(&mut s, 100, &["INCR", "n"]),
        ":1\r\n",
        "expired: counts from 0"
    );
    assert_eq!(at(&mut s, 100, &["PTTL", "n"]), ":-1\r\n");
    at(&mut s, 100, &["SET", "n", "5", "EX", "1"]);
    at(&mut s, 100, &["SET", "n", "6"]);
    assert_eq!(at(&mut s, 100, &["TTL", "n"]), ":-1\r\n");
    assert_eq!(s.expires(), 0);
}

#[test]
fn expired_hashes_and_lists_vanish_too() {
    let mut s = Store::new(None);
    at(&mut s, 0, &["HSET", "h", "f", "v"]);
    at(&mut s, 0, &["RPUSH", "l", "a"]);
    at(&mut s, 0, &["PEXPIRE", "h", "5"]);
    at(&mut s, 0, &["PEXPIRE", "l", "5"]);
    assert_eq!(at(&mut s, 5, &["HGET", "h", "f"]), "$-1\r\n");
    assert_eq!(
        at(&mut s, 5, &["LPUSH", "l", "b"]),
        ":1\r\n",
        "a fresh list"
    );
    assert_eq!(at(&mut s, 5, &["TTL", "l"]), ":-1\r\n");
}

#[test]
fn memory_accounting_returns_to_zero() {
    let mut s = Store::new(None);
    at(&mut s, 0, &["SET", "s", "abc"]);
    at(&mut s, 0, &["APPEND", "s", "def"]);
    at(&mut s, 0, &["HSET", "h", "a", "1", "b", "2"]);
    at(&mut s, 0, &["HINCRBY", "h", "a", "100"]);
    at(&mut s, 0, &["RPUSH", "l", "x", "y", "z"]);
    at(&mut s, 0, &["LPOP", "l"]);
    at(&mut s, 0, &["INCR", "n"]);
    assert!(s.used_bytes() > 0);
    at(&mut s, 0, &["HDEL", "h", "a"]);
    at(&mut s, 0, &["DEL", "s", "h", "l", "n"]);
    assert_eq!(s.used_bytes(), 0, "every byte charged is refunded");
    assert!(s.is_empty());
}

#[test]
fn writes_past_the_limit_get_oom_but_deletes_and_reads_do_not() {
    let mut s = Store::new(Some(100));
    assert_eq!(at(&mut s, 0, &["SET", "a", &"x".repeat(100)]), "+OK\r\n");
    let oom = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    for cmd in [
        &["SET", "b", "1"][..],
        &["INCR", "c"],
        &["LPUSH", "l", "x"],
        &["HSET", "h", "f", "v"],
        &["APPEND", "a", "x"],
        &["MSET", "x", "1"],
    ] {
        assert_eq!(at(&mut s, 0, cmd), oom, "{cmd:?}");
    }
    assert!(at(&mut s, 0, &["GET", "a"]).starts_with("$100\r\n"));
    assert_eq!(at(&mut s, 0, &["DEL", "a"]), ":1\r\n");
    assert_eq!(at(&mut s, 0, &["SET", "b", "1"]), "+OK\r\n");
}
