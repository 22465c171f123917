//! Every command through a real socket, with Redis's exact reply bytes, on a two-shard
//! server: keys owned by either shard, from connections on either shard.

mod common;

use common::{KvServer, Raw, bulk, bulks, key_on, keys_on};

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const NOT_INT: &str = "-ERR value is not an integer or out of range\r\n";
const SYNTAX: &str = "-ERR syntax error\r\n";

/// Runs `f` from a connection on each shard, with keys owned by each shard.
fn on_every_pair(server: &KvServer, mut f: impl FnMut(&mut Raw, &str)) {
    for conn_shard in 0..2 {
        let mut raw = server.raw_on(conn_shard);
        for key_shard in 0..2 {
            let key = key_on(key_shard, &format!("k{conn_shard}{key_shard}:"));
            f(&mut raw, &key);
        }
    }
}

#[test]
fn strings_answer_as_redis_on_every_shard() {
    let server = KvServer::start();
    on_every_pair(&server, |r, k| {
        assert_eq!(r.cmd(&["GET", k]), "$-1\r\n");
        assert_eq!(r.cmd(&["SET", k, "hello"]), "+OK\r\n");
        assert_eq!(r.cmd(&["GET", k]), bulk("hello"));
        assert_eq!(r.cmd(&["STRLEN", k]), ":5\r\n");
        assert_eq!(r.cmd(&["APPEND", k, " world"]), ":11\r\n");
        assert_eq!(r.cmd(&["SET", k, "x", "NX"]), "$-1\r\n");
        assert_eq!(r.cmd(&["SET", k, "x", "XX", "GET"]), bulk("hello world"));
        assert_eq!(r.cmd(&["GETDEL", k]), bulk("x"));
        assert_eq!(r.cmd(&["GETDEL", k]), "$-1\r\n");
        assert_eq!(r.cmd(&["SET", k, "y", "XX"]), "$-1\r\n");
        assert_eq!(r.cmd(&["SET", k, "10", "NX"]), "+OK\r\n");
        assert_eq!(r.cmd(&["INCR", k]), ":11\r\n");
        assert_eq!(r.cmd(&["DECR", k]), ":10\r\n");
        assert_eq!(r.cmd(&["INCRBY", k, "-15"]), ":-5\r\n");
        assert_eq!(r.cmd(&["DECRBY", k, "5"]), ":-10\r\n");
        assert_eq!(r.cmd(&["INCRBY", k, "x"]), NOT_INT);
        assert_eq!(r.cmd(&["SET", k, "9223372036854775807"]), "+OK\r\n");
        assert_eq!(
            r.cmd(&["INCR", k]),
            "-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(r.cmd(&["SET", k, "abc"]), "+OK\r\n");
        assert_eq!(r.cmd(&["INCR", k]), NOT_INT);
        assert_eq!(r.cmd(&["SET", k, "v", "EX", "x"]), NOT_INT);
        assert_eq!(
            r.cmd(&["SET", k, "v", "EX", "0"]),
            "-ERR invalid expire time in 'set' command\r\n"
        );
        assert_eq!(r.cmd(&["SET", k, "v", "NX", "XX"]), SYNTAX);
        assert_eq!(r.cmd(&["SET", k, "v", "EX", "10", "PX", "10"]), SYNTAX);
        assert_eq!(r.cmd(&["SET", k, "v", "BOGUS"]), SYNTAX);
        assert_eq!(r.cmd(&["DEL", k]), ":1\r\n");
    });
}

#[test]
fn errors_use_redis_wording() {
    let server = KvServer::start();
    on_every_pair(&server, |r, k| {
        assert_eq!(
            r.cmd(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            r.cmd(&["SET", k]),
            "-ERR wrong number of arguments for 'set' command\r\n"
        );
        assert_eq!(
            r.cmd(&["FOO", "a", "b"]),
            "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            r.cmd(&["MSET", k, "1", "x"]),
            "-ERR wrong number of arguments for 'mset' command\r\n"
        );
        assert_eq!(r.cmd(&["LPUSH", k, "a"]), ":1\r\n");
        for cmd in [
            &["GET", k][..],
            &["INCR", k],
            &["APPEND", k, "x"],
            &["STRLEN", k],
            &["HGET", k, "f"],
            &["HSET", k, "f", "v"],
        ] {
            assert_eq!(r.cmd(cmd), WRONGTYPE, "{cmd:?}");
        }
        assert_eq!(r.cmd(&["SET", k, "v", "GET"]), WRONGTYPE);
        assert_eq!(r.cmd(&["DEL", k]), ":1\r\n");
        assert_eq!(r.cmd(&["SET", k, "v"]), "+OK\r\n");
        for cmd in [
            &["LPUSH", k, "x"][..],
            &["LRANGE", k, "0", "1"],
            &["HGETALL", k],
        ] {
            assert_eq!(r.cmd(cmd), WRONGTYPE, "{cmd:?}");
        }
        assert_eq!(r.cmd(&["DEL", k]), ":1\r\n");
    });
}

#[test]
fn hashes_and_lists() {
    let server = KvServer::start();
    on_every_pair(&server, |r, k| {
        let h = format!("{k}:h");
        let h = h.as_str();
        assert_eq!(r.cmd(&["HSET", h, "a", "1", "b", "2"]), ":2\r\n");
        assert_eq!(r.cmd(&["HSET", h, "a", "3"]), ":0\r\n");
        assert_eq!(r.cmd(&["HGET", h, "a"]), bulk("3"));
        assert_eq!(r.cmd(&["HGET", h, "z"]), "$-1\r\n");
        assert_eq!(r.cmd(&["HINCRBY", h, "a", "4"]), ":7\r\n");
        assert_eq!(r.cmd(&["HINCRBY", h, "new", "-1"]), ":-1\r\n");
        assert_eq!(r.cmd(&["HINCRBY", h, "a", "x"]), NOT_INT);
        assert_eq!(r.cmd(&["HSET", h, "s", "str"]), ":1\r\n");
        assert_eq!(
            r.cmd(&["HINCRBY", h, "s", "1"]),
            "-ERR hash value is not an integer\r\n"
        );
        let all = r.cmd(&["HGETALL", h]);
        assert!(all.starts_with("*8\r\n"), "{all}");
        assert!(
            all.contains(&format!("{}{}", bulk("a"), bulk("7"))),
            "{all}"
        );
        assert_eq!(r.cmd(&["HDEL", h, "a", "b", "zz"]), ":2\r\n");
        assert_eq!(r.cmd(&["HDEL", h, "new", "s"]), ":2\r\n");
        assert_eq!(r.cmd(&["TYPE", h]), "+none\r\n", "an emptied hash is gone");
        assert_eq!(r.cmd(&["HGETALL", h]), "*0\r\n");
        assert_eq!(
            r.cmd(&["HSET", h, "a"]),
            "-ERR wrong number of arguments for 'hset' command\r\n"
        );

        let l = format!("{k}:l");
        let l = l.as_str();
        assert_eq!(r.cmd(&["RPUSH", l, "b", "c"]), ":2\r\n");
        assert_eq!(r.cmd(&["LPUSH", l, "a", "z"]), ":4\r\n");
        assert_eq!(
            r.cmd(&["LRANGE", l, "0", "-1"]),
            bulks(&["z", "a", "b", "c"])
        );
        assert_eq!(r.cmd(&["LRANGE", l, "1", "2"]), bulks(&["a", "b"]));
        assert_eq!(r.cmd(&["LRANGE", l, "-2", "100"]), bulks(&["b", "c"]));
        assert_eq!(r.cmd(&["LRANGE", l, "5", "10"]), "*0\r\n");
        assert_eq!(r.cmd(&["LRANGE", l, "x", "1"]), NOT_INT);
        assert_eq!(r.cmd(&["LLEN", l]), ":4\r\n");
        assert_eq!(r.cmd(&["LPOP", l]), bulk("z"));
        assert_eq!(r.cmd(&["RPOP", l]), bulk("c"));
        assert_eq!(r.cmd(&["RPOP", l, "5"]), bulks(&["b", "a"]));
        assert_eq!(r.cmd(&["LPOP", l]), "$-1\r\n");
        assert_eq!(r.cmd(&["LPOP", l, "2"]), "*-1\r\n");
        assert_eq!(
            r.cmd(&["LPOP", l, "-1"]),
            "-ERR value is out of range, must be positive\r\n"
        );
        assert_eq!(r.cmd(&["LLEN", l]), ":0\r\n");
        assert_eq!(r.cmd(&["TYPE", l]), "+none\r\n");
    });
}

#[test]
fn ttl_commands() {
    let server = KvServer::start();
    on_every_pair(&server, |r, k| {
        assert_eq!(r.cmd(&["TTL", k]), ":-2\r\n");
        assert_eq!(r.cmd(&["EXPIRE", k, "10"]), ":0\r\n");
        assert_eq!(r.cmd(&["SET", k, "v"]), "+OK\r\n");
        assert_eq!(r.cmd(&["TTL", k]), ":-1\r\n");
        assert_eq!(r.cmd(&["PERSIST", k]), ":0\r\n");
        assert_eq!(r.cmd(&["EXPIRE", k, "100"]), ":1\r\n");
        assert_eq!(r.cmd(&["TTL", k]), ":100\r\n");
        let pttl: i64 = r.cmd(&["PTTL", k])[1..].trim().parse().unwrap();
        assert!((99_000..=100_000).contains(&pttl), "{pttl}");
        assert_eq!(r.cmd(&["EXPIRE", k, "50", "GT"]), ":0\r\n");
        assert_eq!(r.cmd(&["EXPIRE", k, "50", "LT"]), ":1\r\n");
        assert_eq!(r.cmd(&["EXPIRE", k, "60", "NX"]), ":0\r\n");
        assert_eq!(
            r.cmd(&["EXPIRE", k, "60", "NX", "XX"]),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
        );
        assert_eq!(r.cmd(&["EXPIRE", k, "x"]), NOT_INT);
        assert_eq!(r.cmd(&["PEXPIRE", k, "200000"]), ":1\r\n");
        assert_eq!(r.cmd(&["TTL", k]), ":200\r\n");
        assert_eq!(r.cmd(&["PERSIST", k]), ":1\r\n");
        assert_eq!(r.cmd(&["TTL", k]), ":-1\r\n");
        // SET without KEEPTTL clears a time to live; with it, keeps it.
        assert_eq!(r.cmd(&["SET", k, "v", "EX", "30"]), "+OK\r\n");
        assert_eq!(r.cmd(&["SET", k, "w", "KEEPTTL"]), "+OK\r\n");
        assert_eq!(r.cmd(&["TTL", k]), ":30\r\n");
        assert_eq!(r.cmd(&["INCR", k]), NOT_INT);
        assert_eq!(r.cmd(&["SET", k, "w"]), "+OK\r\n");
        assert_eq!(r.cmd(&["TTL", k]), ":-1\r\n");
        assert_eq!(r.cmd(&["TYPE", k]), "+string\r\n");
        // A non-positive time to live deletes the key.
        assert_eq!(r.cmd(&["EXPIRE", k, "0"]), ":1\r\n");
        assert_eq!(r.cmd(&["EXISTS", k]), ":0\r\n");
    });
}

#[test]
fn multi_key_commands_span_shards() {
    let server = KvServer::start();
    let a = keys_on(0, "a:", 3);
    let b = keys_on(1, "b:", 3);
    for conn_shard in 0..2 {
        let mut r = server.raw_on(conn_shard);
        assert_eq!(
            r.cmd(&["MSET", &a[0], "a0", &b[0], "b0", &a[1], "a1", &b[1], "b1"]),
            "+OK\r\n"
        );
        assert_eq!(
            r.cmd(&["MGET", &b[1], &a[0], "missing", &b[0], &a[1]]),
            format!(
                "*5\r\n{}{}$-1\r\n{}{}",
                bulk("b1"),
                bulk("a0"),
                bulk("b0"),
                bulk("a1")
            )
        );
        assert_eq!(r.cmd(&["LPUSH", &a[2], "x"]), ":1\r\n");
        assert_eq!(
            r.cmd(&["MGET", &a[2], &b[0]]),
            format!("*2\r\n$-1\r\n{}", bulk("b0")),
            "MGET answers nil for a key of another type"
        );
        assert_eq!(r.cmd(&["EXISTS", &a[0], &b[0], &a[0], "nope"]), ":3\r\n");
        assert_eq!(r.cmd(&["DBSIZE"]), ":5\r\n");
        assert_eq!(
            r.cmd(&["DEL", &a[0], &b[0], &a[1], &b[1], &a[2], "nope"]),
            ":5\r\n"
        );
        assert_eq!(r.cmd(&["DBSIZE"]), ":0\r\n");
    }
}

#[test]
fn keys_scan_dbsize_flushall_fan_out() {
    let server = KvServer::start();
    let mut r = server.raw_on(0);
    let mut expected: Vec<String> = Vec::new();
    for shard in 0..2 {
        for k in keys_on(shard, &format!("user:{shard}:"), 20) {
            assert_eq!(r.cmd(&["SET", &k, "1"]), "+OK\r\n");
            expected.push(k);
        }
    }
    assert_eq!(r.cmd(&["HSET", "other", "f", "v"]), ":1\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), ":41\r\n");
    let keys = r.cmd(&["KEYS", "user:*"]);
    assert!(keys.starts_with("*40\r\n"), "{keys}");
    for k in &expected {
        assert!(keys.contains(&bulk(k)), "{k} in KEYS");
    }
    assert!(r.cmd(&["KEYS", "user:1:?"]).starts_with("*"));
    assert_eq!(r.cmd(&["KEYS", "nomatch*"]), "*0\r\n");
    // SCAN visits every shard and returns every key exactly once.
    let mut seen = scan_all(&mut r, &["MATCH", "user:*", "COUNT", "7"]);
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(
        scan_all(&mut r, &["TYPE", "hash"]),
        vec!["other".to_string()]
    );
    assert_eq!(r.cmd(&["SCAN", "x"]), "-ERR invalid cursor\r\n");
    // A cursor past any this server hands out (shard 1 of 2, a position past the last
    // segment) finds that shard done: no keys, and 0, as after the last shard.
    assert_eq!(
        r.cmd(&["SCAN", "18446744073709551615"]),
        "*2\r\n$1\r\n0\r\n*0\r\n"
    );
    assert_eq!(r.cmd(&["SCAN", "0", "COUNT"]), SYNTAX);
    assert_eq!(r.cmd(&["FLUSHALL", "BOGUS"]), SYNTAX);
    assert_eq!(r.cmd(&["FLUSHALL"]), "+OK\r\n");
    assert_eq!(r.cmd(&["DBSIZE"]), ":0\r\n");
    assert_eq!(r.cmd(&["KEYS", "*"]), "*0\r\n");
}

#[test]
fn connection_and_server_commands() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(r.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(r.cmd(&["ping", "hi"]), bulk("hi"));
    assert_eq!(
        r.cmd(&["PING", "a", "b"]),
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
    assert_eq!(r.cmd(&["ECHO", "x y"]), bulk("x y"));
    assert_eq!(r.cmd(&["SELECT", "0"]), "+OK\r\n");
    assert_eq!(r.cmd(&["SELECT", "15"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["SELECT", "16"]),
        "-ERR DB index is out of range\r\n"
    );
    assert_eq!(r.cmd(&["SELECT", "0"]), "+OK\r\n");
    assert_eq!(r.cmd(&["SELECT", "x"]), NOT_INT);
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]), "$-1\r\n");
    assert_eq!(r.cmd(&["CLIENT", "SETNAME", "worker-1"]), "+OK\r\n");
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]), bulk("worker-1"));
    assert_eq!(
        r.cmd(&["CLIENT", "SETNAME", "a b"]),
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        r.cmd(&["CLIENT", "NOPE"]),
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
    );
    let id: i64 = r.cmd(&["CLIENT", "ID"])[1..].trim().parse().unwrap();
    let mut other = server.raw();
    let other_id: i64 = other.cmd(&["CLIENT", "ID"])[1..].trim().parse().unwrap();
    assert!(id > 0 && other_id > 0 && id != other_id, "{id} {other_id}");
    let count: usize = r.cmd(&["COMMAND", "COUNT"])[1..].trim().parse().unwrap();
    assert!(count >= 40);
    assert!(r.cmd(&["COMMAND"]).starts_with(&format!("*{count}\r\n")));
    assert_eq!(r.cmd(&["COMMAND", "DOCS"]), "*0\r\n");
    assert!(
        r.cmd(&["COMMAND", "INFO", "get"])
            .starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n")
    );
    assert_eq!(r.cmd(&["CONFIG", "GET", "save"]), bulks(&["save", ""]));
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "appendonly"]),
        bulks(&["appendonly", "no"])
    );
    assert_eq!(r.cmd(&["CONFIG", "GET", "nothing"]), "*0\r\n");
    assert_eq!(r.cmd(&["SET", "k", "v"]), "+OK\r\n");
    let info = r.cmd(&["INFO"]);
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Stats",
        "# Keyspace",
        "# Shards",
    ] {
        assert!(info.contains(section), "{section} in {info}");
    }
    assert!(info.contains("db0:keys=1,expires=0"), "{info}");
    assert!(
        info.contains("shard0:cpu=") && info.contains("shard1:cpu="),
        "{info}"
    );
    assert!(info.contains("connected_clients:2"), "{info}");
    let keyspace = r.cmd(&["INFO", "keyspace"]);
    assert!(!keyspace.contains("# Server") && keyspace.contains("db0:keys=1"));
    assert_eq!(r.cmd(&["QUIT"]), "+OK\r\n");
    assert!(r.closed(), "QUIT closes the connection");
}

#[test]
fn inline_commands_and_protocol_errors() {
    let server = KvServer::start();
    let mut r = server.raw();
    r.send_bytes(b"SET \"in line\" 'v 1'\r\nGET \"in line\"\nPING\r\n");
    assert_eq!(r.reply(), "+OK\r\n");
    assert_eq!(r.reply(), bulk("v 1"));
    assert_eq!(r.reply(), "+PONG\r\n");
    for (bad, error) in [
        (&b"*1\r\n$x\r\n"[..], "invalid bulk length"),
        (b"*a\r\n", "invalid multibulk length"),
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
        (b"SET \"a\r\n", "unbalanced quotes in request"),
    ] {
        let mut r = server.raw();
        // A valid command before the bad one is still answered, in order.
        let mut input = Raw::encode(&["PING"]);
        input.extend_from_slice(bad);
        r.send_bytes(&input);
        assert_eq!(r.reply(), "+PONG\r\n");
        assert_eq!(r.reply(), format!("-ERR Protocol error: {error}\r\n"));
        assert!(r.closed(), "closed after {error}");
    }
}

#[test]
fn a_protocol_error_after_commands_for_another_shard_comes_after_their_replies() {
    let server = KvServer::start();
    for conn_shard in 0..2 {
        let remote = key_on(1 - conn_shard, "remote:");
        let mut r = server.raw_on(conn_shard);
        let mut input = Raw::encode(&["SET", &remote, "v"]);
        input.extend_from_slice(&Raw::encode(&["GET", &remote]));
        // A command named like an internal marker is just an unknown command.
        input.extend_from_slice(&Raw::encode(&["\0protocol-error"]));
        input.extend_from_slice(b"*1\r\n$-5\r\n");
        r.send_bytes(&input);
        assert_eq!(r.reply(), "+OK\r\n");
        assert_eq!(r.reply(), bulk("v"));
        assert_eq!(
            r.reply(),
            "-ERR unknown command '\0protocol-error', with args beginning with: \r\n"
        );
        assert_eq!(r.reply(), "-ERR Protocol error: invalid bulk length\r\n");
        assert!(r.closed());
    }
}

#[test]
fn configured_limits_are_protocol_errors() {
    let server = KvServer::with_config(percore_kv::Config {
        limits: percore_kv::resp::Limits {
            max_bulk_len: 10,
            max_multibulk_len: 3,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut r = server.raw();
    assert_eq!(r.cmd(&["SET", "k", "0123456789"]), "+OK\r\n");
    r.send_bytes(&Raw::encode(&["SET", "k", "01234567890"]));
    assert_eq!(r.reply(), "-ERR Protocol error: invalid bulk length\r\n");
    assert!(r.closed());
    let mut r = server.raw();
    r.send_bytes(&Raw::encode(&["MSET", "a", "1", "b", "2"]));
    assert_eq!(
        r.reply(),
        "-ERR Protocol error: invalid multibulk length\r\n"
    );
    assert!(r.closed());
}

#[test]
fn maxmemory_refuses_writes_with_oom() {
    let server = KvServer::with_config(percore_kv::Config {
        max_memory: Some(64 * 1024),
        ..Default::default()
    });
    let mut r = server.raw();
    let value = "x".repeat(1024);
    let mut refused = None;
    for i in 0..200 {
        let reply = r.cmd(&["SET", &format!("fill:{i}"), &value]);
        if reply != "+OK\r\n" {
            refused = Some((i, reply));
            break;
        }
    }
    let (i, reply) = refused.expect("writes are refused past maxmemory");
    assert!(i >= 20, "refused too early: after {i} KiB");
    assert_eq!(
        reply,
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    // Reads and deletes go on; after deleting, writes are accepted again.
    assert_eq!(r.cmd(&["GET", "fill:0"]), bulk(&value));
    assert_eq!(r.cmd(&["FLUSHALL"]), "+OK\r\n");
    assert_eq!(r.cmd(&["SET", "again", "v"]), "+OK\r\n");
}

/// Every key SCAN returns with `options`, following the cursor until it is 0.
fn scan_all(r: &mut Raw, options: &[&str]) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    for round in 0.. {
        assert!(round < 100, "SCAN must finish");
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(options);
        let reply = r.cmd(&args);
        let mut lines = reply.split("\r\n");
        assert_eq!(lines.next(), Some("*2"));
        lines.next();
        let next = lines.next().unwrap().to_string();
        let n: usize = lines.next().unwrap()[1..].parse().unwrap();
        for _ in 0..n {
            lines.next();
            seen.push(lines.next().unwrap().to_string());
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    seen
}

#[test]
fn a_client_that_never_reads_its_replies_is_dropped() {
    let server = KvServer::with_config(percore_kv::Config {
        write_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    });
    let mut other = server.raw();
    let mut slow = server.raw();
    let big = "x".repeat(64 * 1024);
    assert_eq!(slow.cmd(&["SET", "big", &big]), "+OK\r\n");
    // 32 MiB of replies, far past the socket buffers; never read.
    let mut gets = Vec::new();
    for _ in 0..512 {
        gets.extend_from_slice(&Raw::encode(&["GET", "big"]));
    }
    slow.send_bytes(&gets);
    let start = std::time::Instant::now();
    loop {
        let info = other.cmd(&["INFO", "clients"]);
        if info.contains("connected_clients:1\r\n") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the non-reading client is still connected: {info}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(slow.ends());
}
