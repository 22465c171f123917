//! Sets, sorted sets, hashes, lists and keyspace commands through a real socket on a
//! two-shard server, with Redis's exact reply bytes; commands over several keys are run
//! with keys owned by one shard and with keys spread over both.

mod common;

use common::{KvServer, bulk, bulks, key_on};

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const SYNTAX: &str = "-ERR syntax error\r\n";

/// Two keys for a two-key command: on the same shard (`spread` false) or on both.
fn pair(spread: bool, prefix: &str) -> (String, String) {
    let a = key_on(0, &format!("{prefix}a"));
    let b = key_on(usize::from(spread), &format!("{prefix}b"));
    (a, b)
}

/// An array reply of bulk strings, sorted (for sets, whose order is unspecified).
fn sorted_members(reply: &str) -> Vec<String> {
    let mut members: Vec<String> = reply
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.starts_with('$') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    members.sort();
    members
}

#[test]
fn strings_beyond_get_and_set() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(r.cmd(&["SETNX", "s", "a"]), ":1\r\n");
    assert_eq!(r.cmd(&["SETNX", "s", "b"]), ":0\r\n");
    assert_eq!(r.cmd(&["GETSET", "s", "c"]), bulk("a"));
    assert_eq!(r.cmd(&["SETRANGE", "s", "3", "xyz"]), ":6\r\n");
    assert_eq!(r.cmd(&["GET", "s"]), bulk("c\0\0xyz"));
    assert_eq!(r.cmd(&["GETRANGE", "s", "-3", "-1"]), bulk("xyz"));
    assert_eq!(r.cmd(&["SETEX", "e", "100", "v"]), "+OK\r\n");
    assert_eq!(r.cmd(&["TTL", "e"]), ":100\r\n");
    assert_eq!(r.cmd(&["GETEX", "e", "PERSIST"]), bulk("v"));
    assert_eq!(r.cmd(&["TTL", "e"]), ":-1\r\n");
    assert_eq!(
        r.cmd(&["SETEX", "e", "0", "v"]),
        "-ERR invalid expire time in 'setex' command\r\n"
    );
    // The absolute time in ms would overflow an i64: refused, as Redis does.
    for (unit, n) in [("EX", "10000000000000000"), ("PX", "9223372036854775807")] {
        assert_eq!(
            r.cmd(&["SET", "big", "v", unit, n]),
            "-ERR invalid expire time in 'set' command\r\n"
        );
    }
    assert_eq!(r.cmd(&["EXISTS", "big"]), ":0\r\n");
    assert_eq!(r.cmd(&["INCRBYFLOAT", "f", "10.5"]), bulk("10.5"));
    assert_eq!(r.cmd(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(
        r.cmd(&["INCRBYFLOAT", "s", "1"]),
        "-ERR value is not a valid float\r\n"
    );
    assert_eq!(r.cmd(&["SETBIT", "b", "7", "1"]), ":0\r\n");
    assert_eq!(r.cmd(&["GETBIT", "b", "7"]), ":1\r\n");
    assert_eq!(r.cmd(&["BITCOUNT", "b"]), ":1\r\n");
    assert_eq!(
        r.cmd(&["SETBIT", "b", "-1", "1"]),
        "-ERR bit offset is not an integer or out of range\r\n"
    );
    assert_eq!(
        r.cmd(&["MSET", "l1", "ohmytext", "l2", "mynewtext"]),
        "+OK\r\n"
    );
    assert_eq!(r.cmd(&["LCS", "l1", "l2"]), bulk("mytext"));
    assert_eq!(r.cmd(&["LCS", "l1", "l2", "LEN"]), ":6\r\n");
    for spread in [false, true] {
        let (a, b) = pair(spread, if spread { "msetnx1" } else { "msetnx2" });
        assert_eq!(r.cmd(&["MSETNX", &a, "1", &b, "2"]), ":1\r\n");
        assert_eq!(r.cmd(&["MSETNX", &a, "3", "fresh", "4"]), ":0\r\n");
        assert_eq!(
            r.cmd(&["MGET", &a, &b, "fresh"]),
            "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"
        );
    }
}

#[test]
fn databases_are_apart_and_swap() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(r.cmd(&["SET", "k", "zero"]), "+OK\r\n");
    assert_eq!(r.cmd(&["SELECT", "9"]), "+OK\r\n");
    assert_eq!(r.cmd(&["GET", "k"]), "$-1\r\n");
    assert_eq!(r.cmd(&["SET", "k", "nine"]), "+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), ":1\r\n");
    // A pipeline that selects a database in the middle: each command uses the one
    // selected before it, whichever shard owns the keys.
    let a = key_on(1, "pipelined");
    let mut batch = Vec::new();
    for args in [
        &["SET", a.as_str(), "in9"][..],
        &["SELECT", "3"],
        &["SET", a.as_str(), "in3"],
        &["SELECT", "9"],
        &["GET", a.as_str()],
    ] {
        batch.extend(common::Raw::encode(args));
    }
    r.send_bytes(&batch);
    let replies: Vec<String> = (0..5).map(|_| r.reply()).collect();
    assert_eq!(replies[4], bulk("in9"), "{replies:?}");
    assert_eq!(
        r.cmd(&["MOVE", "k", "9"]),
        "-ERR source and destination objects are the same\r\n"
    );
    assert_eq!(r.cmd(&["MOVE", "k", "2"]), ":1\r\n");
    assert_eq!(r.cmd(&["SWAPDB", "2", "9"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["GET", "k"]),
        bulk("nine"),
        "db 9 now holds what db 2 held"
    );
    assert_eq!(r.cmd(&["SELECT", "2"]), "+OK\r\n");
    assert_eq!(r.cmd(&["GET", "k"]), "$-1\r\n");
    assert_eq!(r.cmd(&["GET", &a]), bulk("in9"), "and db 2 what db 9 held");
    assert_eq!(r.cmd(&["FLUSHDB"]), "+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), ":0\r\n");
    assert_eq!(r.cmd(&["SELECT", "0"]), "+OK\r\n");
    assert_eq!(r.cmd(&["GET", "k"]), bulk("zero"));
    assert_eq!(
        r.cmd(&["SWAPDB", "0", "16"]),
        "-ERR DB index is out of range\r\n"
    );
    let info = r.cmd(&["INFO", "keyspace"]);
    assert!(
        info.contains("db0:keys=1,") && info.contains("db3:keys=1,"),
        "{info}"
    );
}

#[test]
fn keys_rename_copy_and_expire_times_across_shards() {
    let server = KvServer::start();
    let mut r = server.raw();
    for spread in [false, true] {
        let (a, b) = pair(spread, if spread { "x" } else { "y" });
        assert_eq!(r.cmd(&["RENAME", &a, &b]), "-ERR no such key\r\n");
        assert_eq!(r.cmd(&["RPUSH", &a, "1", "2"]), ":2\r\n");
        assert_eq!(r.cmd(&["PEXPIRE", &a, "100000"]), ":1\r\n");
        assert_eq!(r.cmd(&["RENAME", &a, &b]), "+OK\r\n");
        assert_eq!(r.cmd(&["EXISTS", &a]), ":0\r\n");
        assert_eq!(r.cmd(&["LRANGE", &b, "0", "-1"]), bulks(&["1", "2"]));
        let ttl: i64 = r.cmd(&["PTTL", &b])[1..].trim().parse().unwrap();
        assert!(
            (90_000..=100_000).contains(&ttl),
            "the time to live moves too: {ttl}"
        );
        assert_eq!(r.cmd(&["SET", &a, "v"]), "+OK\r\n");
        assert_eq!(r.cmd(&["RENAMENX", &a, &b]), ":0\r\n");
        assert_eq!(r.cmd(&["COPY", &b, &a]), ":0\r\n");
        assert_eq!(r.cmd(&["COPY", &b, &a, "REPLACE"]), ":1\r\n");
        assert_eq!(r.cmd(&["TYPE", &a]), "+list\r\n");
        assert_eq!(r.cmd(&["DEL", &a, &b]), ":2\r\n");
    }
    assert_eq!(r.cmd(&["SET", "t", "v"]), "+OK\r\n");
    assert_eq!(r.cmd(&["EXPIRETIME", "t"]), ":-1\r\n");
    assert_eq!(r.cmd(&["EXPIREAT", "t", "4000000000"]), ":1\r\n");
    assert_eq!(r.cmd(&["EXPIRETIME", "t"]), ":4000000000\r\n");
    assert_eq!(r.cmd(&["PEXPIRETIME", "t"]), ":4000000000000\r\n");
    assert_eq!(r.cmd(&["EXPIREAT", "t", "4000000001", "LT"]), ":0\r\n");
    assert_eq!(r.cmd(&["EXPIREAT", "t", "4000000001", "GT"]), ":1\r\n");
    assert_eq!(r.cmd(&["EXPIREAT", "t", "1", "XX"]), ":1\r\n");
    assert_eq!(
        r.cmd(&["EXISTS", "t"]),
        ":0\r\n",
        "a time in the past deletes"
    );
    assert_eq!(r.cmd(&["EXPIRETIME", "t"]), ":-2\r\n");
    assert_eq!(r.cmd(&["SET", "n", "12"]), "+OK\r\n");
    assert_eq!(r.cmd(&["OBJECT", "ENCODING", "n"]), bulk("int"));
    assert_eq!(r.cmd(&["RANDOMKEY"]), bulk("n"));
    let time = r.cmd(&["TIME"]);
    assert!(time.starts_with("*2\r\n$10\r\n"), "{time}");
}

#[test]
fn hashes_answer_as_redis() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(r.cmd(&["HMSET", "h", "a", "1", "b", "22"]), "+OK\r\n");
    assert_eq!(r.cmd(&["HSETNX", "h", "a", "9"]), ":0\r\n");
    assert_eq!(r.cmd(&["HSETNX", "h", "c", "3"]), ":1\r\n");
    assert_eq!(
        r.cmd(&["HMGET", "h", "a", "nope", "b"]),
        "*3\r\n$1\r\n1\r\n$-1\r\n$2\r\n22\r\n"
    );
    assert_eq!(r.cmd(&["HLEN", "h"]), ":3\r\n");
    assert_eq!(r.cmd(&["HEXISTS", "h", "b"]), ":1\r\n");
    assert_eq!(r.cmd(&["HSTRLEN", "h", "b"]), ":2\r\n");
    assert_eq!(sorted_members(&r.cmd(&["HKEYS", "h"])), ["a", "b", "c"]);
    assert_eq!(sorted_members(&r.cmd(&["HVALS", "h"])), ["1", "22", "3"]);
    assert_eq!(r.cmd(&["HINCRBYFLOAT", "h", "a", "1.5"]), bulk("2.5"));
    assert_eq!(r.cmd(&["HRANDFIELD", "h", "-5"]).lines().next(), Some("*5"));
    assert_eq!(r.cmd(&["HRANDFIELD", "h", "10"]).lines().next(), Some("*3"));
    assert_eq!(r.cmd(&["OBJECT", "ENCODING", "h"]), bulk("listpack"));
    let scan = r.cmd(&["HSCAN", "h", "0", "MATCH", "a"]);
    assert_eq!(scan, "*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$3\r\n2.5\r\n");
    assert_eq!(r.cmd(&["SET", "s", "x"]), "+OK\r\n");
    assert_eq!(r.cmd(&["HLEN", "s"]), WRONGTYPE);
}

#[test]
fn lists_answer_as_redis() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(r.cmd(&["RPUSH", "l", "a", "b", "c", "b"]), ":4\r\n");
    assert_eq!(r.cmd(&["LINDEX", "l", "-1"]), bulk("b"));
    assert_eq!(r.cmd(&["LSET", "l", "0", "A"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["LSET", "l", "9", "A"]),
        "-ERR index out of range\r\n"
    );
    assert_eq!(r.cmd(&["LPOS", "l", "b", "RANK", "-1"]), ":3\r\n");
    assert_eq!(
        r.cmd(&["LPOS", "l", "b", "COUNT", "0"]),
        "*2\r\n:1\r\n:3\r\n"
    );
    assert_eq!(r.cmd(&["LINSERT", "l", "BEFORE", "c", "x"]), ":5\r\n");
    assert_eq!(r.cmd(&["LREM", "l", "-1", "b"]), ":1\r\n");
    assert_eq!(
        r.cmd(&["LRANGE", "l", "0", "-1"]),
        bulks(&["A", "b", "x", "c"])
    );
    assert_eq!(r.cmd(&["LTRIM", "l", "1", "-2"]), "+OK\r\n");
    assert_eq!(r.cmd(&["LRANGE", "l", "0", "-1"]), bulks(&["b", "x"]));
    for spread in [false, true] {
        let (a, b) = pair(spread, if spread { "m" } else { "n" });
        assert_eq!(r.cmd(&["RPUSH", &a, "1", "2"]), ":2\r\n");
        assert_eq!(r.cmd(&["LMOVE", &a, &b, "RIGHT", "LEFT"]), bulk("2"));
        assert_eq!(r.cmd(&["RPOPLPUSH", &a, &b]), bulk("1"));
        assert_eq!(
            r.cmd(&["EXISTS", &a]),
            ":0\r\n",
            "an emptied list is removed"
        );
        assert_eq!(r.cmd(&["LRANGE", &b, "0", "-1"]), bulks(&["1", "2"]));
        assert_eq!(
            r.cmd(&["LMPOP", "2", &a, &b, "LEFT", "COUNT", "5"]),
            format!("*2\r\n{}{}", bulk(&b), bulks(&["1", "2"]))
        );
        assert_eq!(r.cmd(&["LMPOP", "2", &a, &b, "LEFT"]), "*-1\r\n");
    }
    assert_eq!(
        r.cmd(&["LMPOP", "0", "x", "LEFT"]),
        "-ERR numkeys should be greater than 0\r\n"
    );
    assert_eq!(r.cmd(&["LMPOP", "1", "x", "UP"]), SYNTAX);
}

#[test]
fn sets_answer_as_redis_on_one_shard_and_across() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(r.cmd(&["SADD", "s", "a", "b", "c", "a"]), ":3\r\n");
    assert_eq!(r.cmd(&["SREM", "s", "c", "z"]), ":1\r\n");
    assert_eq!(r.cmd(&["SCARD", "s"]), ":2\r\n");
    assert_eq!(r.cmd(&["SISMEMBER", "s", "a"]), ":1\r\n");
    assert_eq!(r.cmd(&["SMISMEMBER", "s", "a", "z"]), "*2\r\n:1\r\n:0\r\n");
    assert_eq!(sorted_members(&r.cmd(&["SMEMBERS", "s"])), ["a", "b"]);
    assert_eq!(
        r.cmd(&["SRANDMEMBER", "s", "-4"]).lines().next(),
        Some("*4")
    );
    assert_eq!(r.cmd(&["OBJECT", "ENCODING", "s"]), bulk("hashtable"));
    assert_eq!(r.cmd(&["SADD", "ints", "1", "2", "3"]), ":3\r\n");
    assert_eq!(r.cmd(&["OBJECT", "ENCODING", "ints"]), bulk("intset"));
    assert_eq!(r.cmd(&["SPOP", "ints", "3"]).lines().next(), Some("*3"));
    assert_eq!(r.cmd(&["EXISTS", "ints"]), ":0\r\n");
    for spread in [false, true] {
        let (a, b) = pair(spread, if spread { "p" } else { "q" });
        let dest = key_on(1, "dest");
        r.cmd(&["DEL", &a, &b, &dest]);
        assert_eq!(r.cmd(&["SADD", &a, "1", "2", "3"]), ":3\r\n");
        assert_eq!(r.cmd(&["SADD", &b, "2", "3", "4"]), ":3\r\n");
        assert_eq!(sorted_members(&r.cmd(&["SINTER", &a, &b])), ["2", "3"]);
        assert_eq!(
            sorted_members(&r.cmd(&["SUNION", &a, &b])),
            ["1", "2", "3", "4"]
        );
        assert_eq!(sorted_members(&r.cmd(&["SDIFF", &a, &b])), ["1"]);
        assert_eq!(r.cmd(&["SINTERCARD", "2", &a, &b, "LIMIT", "1"]), ":1\r\n");
        assert_eq!(r.cmd(&["SUNIONSTORE", &dest, &a, &b]), ":4\r\n");
        assert_eq!(r.cmd(&["SCARD", &dest]), ":4\r\n");
        assert_eq!(r.cmd(&["SDIFFSTORE", &dest, &a, &a]), ":0\r\n");
        assert_eq!(
            r.cmd(&["EXISTS", &dest]),
            ":0\r\n",
            "an empty result deletes the destination"
        );
        assert_eq!(r.cmd(&["SMOVE", &a, &b, "1"]), ":1\r\n");
        assert_eq!(r.cmd(&["SISMEMBER", &b, "1"]), ":1\r\n");
        assert_eq!(r.cmd(&["SET", &dest, "str"]), "+OK\r\n");
        assert_eq!(r.cmd(&["SINTER", &a, &dest]), WRONGTYPE);
    }
}

#[test]
fn sorted_sets_rank_range_and_combine() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(
        r.cmd(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
        ":3\r\n"
    );
    assert_eq!(
        r.cmd(&["ZADD", "z", "XX", "CH", "5", "a", "9", "new"]),
        ":1\r\n"
    );
    assert_eq!(r.cmd(&["ZADD", "z", "GT", "1", "a"]), ":0\r\n");
    assert_eq!(
        r.cmd(&["ZADD", "z", "NX", "XX", "1", "a"]),
        "-ERR XX and NX options at the same time are not compatible\r\n"
    );
    assert_eq!(r.cmd(&["ZADD", "z", "INCR", "0.5", "b"]), bulk("2.5"));
    assert_eq!(r.cmd(&["ZINCRBY", "z", "1", "c"]), bulk("4"));
    assert_eq!(r.cmd(&["ZSCORE", "z", "b"]), bulk("2.5"));
    assert_eq!(r.cmd(&["ZRANK", "z", "a"]), ":2\r\n");
    assert_eq!(r.cmd(&["ZREVRANK", "z", "a"]), ":0\r\n");
    assert_eq!(r.cmd(&["ZCARD", "z"]), ":3\r\n");
    assert_eq!(r.cmd(&["ZRANGE", "z", "0", "-1"]), bulks(&["b", "c", "a"]));
    assert_eq!(
        r.cmd(&["ZRANGE", "z", "0", "0", "WITHSCORES"]),
        bulks(&["b", "2.5"])
    );
    assert_eq!(
        r.cmd(&["ZRANGE", "z", "(2.5", "+inf", "BYSCORE"]),
        bulks(&["c", "a"])
    );
    assert_eq!(
        r.cmd(&[
            "ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "1"
        ]),
        bulks(&["c"])
    );
    assert_eq!(r.cmd(&["ZRANGEBYSCORE", "z", "3", "5"]), bulks(&["c", "a"]));
    assert_eq!(r.cmd(&["ZCOUNT", "z", "-inf", "(4"]), ":1\r\n");
    assert_eq!(
        r.cmd(&["ZRANGEBYSCORE", "z", "x", "5"]),
        "-ERR min or max is not a float\r\n"
    );
    assert_eq!(
        r.cmd(&["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"]),
        ":4\r\n"
    );
    assert_eq!(
        r.cmd(&["ZRANGEBYLEX", "lex", "(a", "[c"]),
        bulks(&["b", "c"])
    );
    assert_eq!(
        r.cmd(&["ZREVRANGEBYLEX", "lex", "+", "-", "LIMIT", "0", "2"]),
        bulks(&["d", "c"])
    );
    assert_eq!(r.cmd(&["ZLEXCOUNT", "lex", "-", "+"]), ":4\r\n");
    assert_eq!(r.cmd(&["ZREMRANGEBYLEX", "lex", "[b", "[c"]), ":2\r\n");
    assert_eq!(r.cmd(&["ZPOPMIN", "lex"]), bulks(&["a", "0"]));
    assert_eq!(r.cmd(&["ZPOPMAX", "lex", "5"]), bulks(&["d", "0"]));
    assert_eq!(r.cmd(&["EXISTS", "lex"]), ":0\r\n");
    assert_eq!(r.cmd(&["ZADD", "f", "0.1", "x"]), ":1\r\n");
    assert_eq!(
        r.cmd(&["ZSCORE", "f", "x"]),
        bulk("0.10000000000000001"),
        "%.17g, as Redis 7.0"
    );
    for spread in [false, true] {
        let (a, b) = pair(spread, if spread { "za" } else { "zb" });
        let dest = key_on(1, "zdest");
        r.cmd(&["DEL", &a, &b, &dest]);
        assert_eq!(r.cmd(&["ZADD", &a, "1", "x", "2", "y"]), ":2\r\n");
        assert_eq!(r.cmd(&["ZADD", &b, "10", "y", "20", "z"]), ":2\r\n");
        assert_eq!(
            r.cmd(&["ZUNIONSTORE", &dest, "2", &a, &b, "WEIGHTS", "1", "2"]),
            ":3\r\n"
        );
        assert_eq!(
            r.cmd(&["ZRANGE", &dest, "0", "-1", "WITHSCORES"]),
            bulks(&["x", "1", "y", "22", "z", "40"])
        );
        assert_eq!(
            r.cmd(&["ZINTERSTORE", &dest, "2", &a, &b, "AGGREGATE", "MAX"]),
            ":1\r\n"
        );
        assert_eq!(
            r.cmd(&["ZRANGE", &dest, "0", "-1", "WITHSCORES"]),
            bulks(&["y", "10"])
        );
        assert_eq!(r.cmd(&["ZINTERCARD", "2", &a, &b]), ":1\r\n");
        assert_eq!(r.cmd(&["ZDIFF", "2", &a, &b]), bulks(&["x"]));
        assert_eq!(r.cmd(&["ZRANGESTORE", &dest, &a, "0", "0"]), ":1\r\n");
        assert_eq!(
            r.cmd(&["ZMPOP", "2", &dest, &a, "MAX", "COUNT", "9"]),
            format!("*2\r\n{}*1\r\n{}", bulk(&dest), bulks(&["x", "1"]))
        );
    }
    assert_eq!(
        r.cmd(&["ZUNIONSTORE", "d", "0", "a"]),
        "-ERR at least 1 input key is needed for 'zunionstore' command\r\n"
    );
}

#[test]
fn a_large_sorted_set_keeps_ranks_exact() {
    let server = KvServer::start();
    let mut client = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("ZADD")
            .arg("big")
            .arg((i * 7919) % 2000)
            .arg(format!("m{i}"))
            .ignore();
    }
    let () = pipe.query(&mut client).unwrap();
    let card: i64 = redis::cmd("ZCARD").arg("big").query(&mut client).unwrap();
    assert_eq!(card, 2000);
    for i in [0usize, 1, 999, 1999] {
        let member = format!("m{i}");
        let rank: i64 = redis::cmd("ZRANK")
            .arg("big")
            .arg(&member)
            .query(&mut client)
            .unwrap();
        let score = (i * 7919) % 2000;
        assert_eq!(
            rank as usize, score,
            "scores 0..2000 are a permutation: rank = score"
        );
        let at: Vec<String> = redis::cmd("ZRANGE")
            .arg("big")
            .arg(rank)
            .arg(rank)
            .query(&mut client)
            .unwrap();
        assert_eq!(at, [member]);
    }
}

#[test]
fn transactions_run_whole_on_one_shard_and_across_shards() {
    let server = KvServer::start();
    let mut r = server.raw();
    let mut other = server.raw();
    assert_eq!(r.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(r.cmd(&["MULTI"]), "-ERR MULTI calls can not be nested\r\n");
    assert_eq!(r.cmd(&["SET", "acct:{7}:a", "10"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["INCRBY", "acct:{7}:b", "5"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["BLPOP", "acct:{7}:q", "0"]), "+QUEUED\r\n");
    // Nothing runs before EXEC.
    assert_eq!(other.cmd(&["EXISTS", "acct:{7}:a"]), ":0\r\n");
    assert_eq!(
        r.cmd(&["EXEC"]),
        "*3\r\n+OK\r\n:5\r\n*-1\r\n",
        "a blocking pop in a transaction does not wait"
    );
    assert_eq!(other.cmd(&["GET", "acct:{7}:a"]), bulk("10"));
    let a = key_on(0, "spread");
    let b = key_on(1, "spread");
    assert_eq!(r.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(r.cmd(&["SET", &a, "1"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["SET", &b, "1"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["EXEC"]), "*2\r\n+OK\r\n+OK\r\n");
    assert_eq!(
        other.cmd(&["EXISTS", &a, &b]),
        ":2\r\n",
        "both shards ran it"
    );
    assert_eq!(r.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["NOSUCH"]),
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
    );
    assert_eq!(
        r.cmd(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(r.cmd(&["EXEC"]), "-ERR EXEC without MULTI\r\n");
    assert_eq!(r.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(r.cmd(&["SET", "x", "1"]), "+QUEUED\r\n");
    assert_eq!(r.cmd(&["DISCARD"]), "+OK\r\n");
    assert_eq!(r.cmd(&["EXISTS", "x"]), ":0\r\n");
}
