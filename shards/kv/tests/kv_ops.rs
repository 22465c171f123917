//! Operations: maxmemory and eviction, CONFIG GET/SET of the live parameters, keyspace
//! notifications, SLOWLOG and the INFO sections.

mod common;

use std::time::Duration;

use common::{KvServer, bulk};
use percore_kv::{Config, evict::Policy};

fn limited(bytes: usize, policy: Policy) -> KvServer {
    KvServer::with_config(Config {
        max_memory: Some(bytes),
        maxmemory_policy: policy,
        ..Config::default()
    })
}

fn info_field(r: &mut common::Raw, section: &str, field: &str) -> String {
    let info = r.cmd(&["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
}

fn integer(reply: &str) -> i64 {
    reply.trim_start_matches(':').trim().parse().unwrap()
}

#[test]
fn noeviction_refuses_writes_and_allkeys_lru_keeps_the_hot_keys() {
    let value = "x".repeat(1000);
    let server = limited(200_000, Policy::NoEviction);
    let mut r = server.raw();
    let mut refused = false;
    for i in 0..1000 {
        let reply = r.cmd(&["SET", &format!("k{i}"), &value]);
        if reply.starts_with("-OOM") {
            refused = true;
            break;
        }
    }
    assert!(refused, "noeviction refuses writes past maxmemory");
    assert_eq!(r.cmd(&["GET", "k0"]), bulk(&value), "reads still work");
    assert!(integer(&r.cmd(&["DEL", "k0"])) == 1, "deletes still work");

    let server = limited(200_000, Policy::AllKeysLru);
    let mut r = server.raw();
    let hot: Vec<String> = (0..10).map(|i| format!("hot{i}")).collect();
    for key in &hot {
        r.cmd(&["SET", key, &value]);
    }
    for i in 0..2000 {
        assert_eq!(r.cmd(&["SET", &format!("k{i}"), &value]), "+OK\r\n");
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
            for key in &hot {
                r.cmd(&["GET", key]);
            }
        }
    }
    let keys = integer(&r.cmd(&["DBSIZE"]));
    assert!(keys < 2010, "keys were evicted: {keys} left");
    let evicted: u64 = info_field(&mut r, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 1000, "{evicted}");
    let used: u64 = info_field(&mut r, "memory", "used_memory").parse().unwrap();
    assert!(used <= 200_000 + 4_000, "used {used}");
    let hot_left = hot
        .iter()
        .filter(|k| r.cmd(&["EXISTS", k]) == ":1\r\n")
        .count();
    assert!(
        hot_left >= 8,
        "the recently used keys survive: {hot_left} of 10"
    );
    // Per shard figures.
    let memory = r.cmd(&["INFO", "memory"]);
    assert!(memory.contains("used_memory_shard0:") && memory.contains("used_memory_shard1:"));
    assert!(memory.contains("maxmemory_policy:allkeys-lru"), "{memory}");
}

#[test]
fn allkeys_lfu_keeps_the_frequent_keys_and_volatile_ttl_only_takes_expiring_keys() {
    let value = "x".repeat(1000);
    let server = limited(200_000, Policy::AllKeysLfu);
    let mut r = server.raw();
    let hot: Vec<String> = (0..10).map(|i| format!("hot{i}")).collect();
    for key in &hot {
        r.cmd(&["SET", key, &value]);
        for _ in 0..200 {
            r.cmd(&["GET", key]);
        }
    }
    for i in 0..2000 {
        r.cmd(&["SET", &format!("k{i}"), &value]);
    }
    let hot_left = hot
        .iter()
        .filter(|k| r.cmd(&["EXISTS", k]) == ":1\r\n")
        .count();
    assert!(
        hot_left >= 8,
        "the frequently used keys survive: {hot_left} of 10"
    );

    let server = limited(200_000, Policy::VolatileTtl);
    let mut r = server.raw();
    for i in 0..50 {
        r.cmd(&["SET", &format!("keep{i}"), &value]);
    }
    let mut refused = false;
    for i in 0..1000 {
        let reply = r.cmd(&[
            "SET",
            &format!("ttl{i}"),
            &value,
            "EX",
            &format!("{}", 1000 + i),
        ]);
        if reply.starts_with("-OOM") {
            refused = true;
        }
    }
    assert!(!refused, "keys with an expiry make room");
    for i in 0..50 {
        assert_eq!(r.cmd(&["EXISTS", &format!("keep{i}")]), ":1\r\n");
    }
    // Only keys without an expiry left to take: refused.
    assert_eq!(r.cmd(&["FLUSHALL"]), "+OK\r\n");
    let mut refused = false;
    for i in 0..1000 {
        if r.cmd(&["SET", &format!("plain{i}"), &value])
            .starts_with("-OOM")
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "volatile-ttl with no volatile key refuses");
}

#[test]
fn config_set_maxmemory_and_policy_take_effect_at_once() {
    let value = "x".repeat(1000);
    let server = KvServer::start();
    let mut r = server.raw();
    for i in 0..500 {
        r.cmd(&["SET", &format!("k{i}"), &value]);
    }
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "maxmemory"]),
        common::bulks(&["maxmemory", "0"])
    );
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "maxmemory-policy", "bogus"]),
        "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the accepted values\r\n"
    );
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", "100kb"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]),
        "+OK\r\n"
    );
    assert!(
        r.cmd(&["CONFIG", "GET", "maxmemory*"])
            .contains("allkeys-random")
    );
    // Each shard evicts on its next write.
    for i in 0..20 {
        r.cmd(&["SET", &format!("n{i}"), "v"]);
    }
    let keys = integer(&r.cmd(&["DBSIZE"]));
    assert!(keys < 200, "evicted down to the new limit: {keys}");
    assert_eq!(r.cmd(&["CONFIG", "SET", "maxmemory", "0"]), "+OK\r\n");
    for i in 0..500 {
        assert_eq!(r.cmd(&["SET", &format!("m{i}"), &value]), "+OK\r\n");
    }
}

#[test]
fn keyspace_notifications_reach_subscribers_on_every_shard() {
    let server = KvServer::start();
    let mut r = server.raw();
    let mut subscribers: Vec<common::Raw> = (0..common::SHARDS).map(|s| server.raw_on(s)).collect();
    for sub in &mut subscribers {
        sub.cmd(&["PSUBSCRIBE", "__key*__:*"]);
    }
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        "+OK\r\n"
    );
    assert_eq!(
        r.cmd(&["CONFIG", "GET", "notify-keyspace-events"]),
        common::bulks(&["notify-keyspace-events", "AKE"])
    );
    for key in [common::key_on(0, "n"), common::key_on(1, "n")] {
        r.cmd(&["SET", &key, "v"]);
        for sub in &mut subscribers {
            assert_eq!(
                sub.reply(),
                format!(
                    "*4\r\n{}{}{}{}",
                    bulk("pmessage"),
                    bulk("__key*__:*"),
                    bulk(&format!("__keyspace@0__:{key}")),
                    bulk("set")
                )
            );
            assert_eq!(
                sub.reply(),
                format!(
                    "*4\r\n{}{}{}{}",
                    bulk("pmessage"),
                    bulk("__key*__:*"),
                    bulk("__keyevent@0__:set"),
                    bulk(&key)
                )
            );
        }
    }
    // Only the classes asked for: lists only, keyevent only.
    r.cmd(&["CONFIG", "SET", "notify-keyspace-events", "El"]);
    r.cmd(&["SET", "ignored", "v"]);
    r.cmd(&["LPUSH", "q", "a"]);
    for sub in &mut subscribers {
        assert_eq!(
            sub.reply(),
            format!(
                "*4\r\n{}{}{}{}",
                bulk("pmessage"),
                bulk("__key*__:*"),
                bulk("__keyevent@0__:lpush"),
                bulk("q")
            )
        );
    }
}

#[test]
fn slowlog_and_info_sections() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]),
        "+OK\r\n"
    );
    r.cmd(&["SET", "slow", "v"]);
    r.cmd(&["LPUSH", "slowlist", "x"]);
    let len = integer(&r.cmd(&["SLOWLOG", "LEN"]));
    assert!(len >= 2, "{len}");
    let got = r.cmd(&["SLOWLOG", "GET", "1"]);
    assert!(got.starts_with("*1\r\n*6\r\n"), "{got}");
    assert_eq!(r.cmd(&["SLOWLOG", "RESET"]), "+OK\r\n");
    r.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    r.cmd(&["SET", "fast", "v"]);
    assert_eq!(r.cmd(&["SLOWLOG", "LEN"]), ":0\r\n");

    assert_eq!(info_field(&mut r, "replication", "role"), "master");
    let cpu: f64 = info_field(&mut r, "cpu", "used_cpu_user").parse().unwrap();
    assert!(cpu >= 0.0);
    let stats = r.cmd(&["INFO", "commandstats"]);
    assert!(stats.contains("cmdstat_set:calls="), "{stats}");
    assert!(stats.contains("cmdstat_lpush:calls=1,"), "{stats}");
    let errors_before = r.cmd(&["INFO", "errorstats"]);
    assert!(!errors_before.contains("errorstat_WRONGTYPE"));
    // A list read as a string: the wrong type.
    assert!(r.cmd(&["GET", "slowlist"]).starts_with("-WRONGTYPE"));
    let errors = r.cmd(&["INFO", "errorstats"]);
    assert!(errors.contains("errorstat_WRONGTYPE:count=1"), "{errors}");
    for section in [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "keyspace",
    ] {
        let text = r.cmd(&["INFO", section]);
        assert!(
            text.to_lowercase().contains(&format!("# {section}")),
            "{section}: {text}"
        );
    }
}

#[test]
fn client_reply_off_skip_and_on() {
    let server = KvServer::start();
    let mut r = server.raw();
    let (a, b) = (common::key_on(0, "cr"), common::key_on(1, "cr"));
    // OFF: nothing comes back (local, remote and cross-shard commands alike) until ON.
    let mut burst = Vec::new();
    for args in [
        vec!["CLIENT", "REPLY", "OFF"],
        vec!["SET", a.as_str(), "1"],
        vec!["SET", b.as_str(), "2"],
        vec!["MGET", a.as_str(), b.as_str()],
        vec!["PING"],
        vec!["CLIENT", "REPLY", "ON"],
        vec!["GET", b.as_str()],
    ] {
        burst.extend(common::Raw::encode(&args));
    }
    r.send_bytes(&burst);
    assert_eq!(r.reply(), "+OK\r\n", "only ON answers");
    assert_eq!(r.reply(), bulk("2"), "and what follows it");
    // SKIP: the next command's reply only.
    r.send_bytes(
        &[
            common::Raw::encode(&["CLIENT", "REPLY", "SKIP"]),
            common::Raw::encode(&["GET", &a]),
            common::Raw::encode(&["GET", &b]),
        ]
        .concat(),
    );
    assert_eq!(r.reply(), bulk("2"));
    assert_eq!(
        r.cmd(&["CLIENT", "REPLY", "MAYBE"]),
        "-ERR syntax error\r\n"
    );
    // Subscribe confirmations and messages still arrive with replies off.
    let mut sub = server.raw();
    sub.send_bytes(&common::Raw::encode(&["CLIENT", "REPLY", "OFF"]));
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "ch"]),
        format!("*3\r\n{}{}:1\r\n", bulk("subscribe"), bulk("ch"))
    );
    r.cmd(&["PUBLISH", "ch", "hi"]);
    assert_eq!(
        sub.reply(),
        format!("*3\r\n{}{}{}", bulk("message"), bulk("ch"), bulk("hi"))
    );
}
