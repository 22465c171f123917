//! Pipelines that mix shards keep their order; concurrent INCRs from both shards give exact
//! totals (through the `redis` crate as the client); clients that vanish with cross-shard
//! commands in flight leave no task or client behind.

mod common;

use std::thread;

use common::{KvServer, Raw, bulk, key_on, keys_on};

#[test]
fn a_pipeline_mixing_shards_is_answered_in_order() {
    let server = KvServer::start();
    for conn_shard in 0..2 {
        let mut con = server.redis_on(conn_shard);
        let here = keys_on(conn_shard, &format!("here{conn_shard}:"), 50);
        let there = keys_on(1 - conn_shard, &format!("there{conn_shard}:"), 50);
        let mut pipe = redis::pipe();
        let mut expected: Vec<redis::Value> = Vec::new();
        for i in 0..50 {
            // Alternate owners command by command, with a barrier (DBSIZE) every 10.
            pipe.cmd("SET").arg(&there[i]).arg(i);
            expected.push(redis::Value::Okay);
            pipe.cmd("SET").arg(&here[i]).arg(i * 10);
            expected.push(redis::Value::Okay);
            pipe.cmd("GET").arg(&there[i]);
            expected.push(redis::Value::BulkString(i.to_string().into_bytes()));
            pipe.cmd("INCR").arg(&here[i]);
            expected.push(redis::Value::Int(i as i64 * 10 + 1));
            pipe.cmd("PING");
            expected.push(redis::Value::SimpleString("PONG".into()));
            if i % 10 == 9 {
                pipe.cmd("DBSIZE");
                expected.push(redis::Value::Int(2 * (i as i64 + 1)));
                pipe.cmd("MGET").arg(&here[i]).arg(&there[i]);
                expected.push(redis::Value::Array(vec![
                    redis::Value::BulkString((i * 10 + 1).to_string().into_bytes()),
                    redis::Value::BulkString(i.to_string().into_bytes()),
                ]));
            }
        }
        let got: Vec<redis::Value> = pipe.query(&mut con).expect("pipeline");
        assert_eq!(got, expected, "from shard {conn_shard}");
        let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    }
}

#[test]
fn replies_and_errors_keep_order_in_one_write() {
    let server = KvServer::start();
    let k0 = key_on(0, "p0:");
    let k1 = key_on(1, "p1:");
    for conn_shard in 0..2 {
        let mut r = server.raw_on(conn_shard);
        let mut input = Vec::new();
        let commands: &[&[&str]] = &[
            &["SET", &k1, "a"],
            &["NOPE"],
            &["GET", &k1],
            &["LPUSH", &k0, "x"],
            &["GET", &k0],
            &["GET"],
            &["INCR", &k1],
            &["DEL", &k0, &k1],
            &["GET", &k1],
        ];
        for c in commands {
            input.extend_from_slice(&Raw::encode(c));
        }
        r.send_bytes(&input);
        let expected = [
            "+OK\r\n".to_string(),
            "-ERR unknown command 'NOPE', with args beginning with: \r\n".into(),
            bulk("a"),
            ":1\r\n".into(),
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n".into(),
            "-ERR wrong number of arguments for 'get' command\r\n".into(),
            "-ERR value is not an integer or out of range\r\n".into(),
            ":2\r\n".into(),
            "$-1\r\n".into(),
        ];
        for e in expected {
            assert_eq!(r.reply(), e, "from shard {conn_shard}");
        }
    }
}

#[test]
fn concurrent_incrs_from_both_shards_give_exact_totals() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 300;
    let server = KvServer::start();
    let counters = [key_on(0, "ctr0:"), key_on(1, "ctr1:")];
    thread::scope(|s| {
        for t in 0..THREADS {
            let server = &server;
            let counters = &counters;
            s.spawn(move || {
                let mut con = server.redis_on(t % 2);
                for round in 0..ROUNDS {
                    if round % 10 == 0 {
                        // A pipelined burst across both owners.
                        let mut pipe = redis::pipe();
                        for c in counters {
                            pipe.cmd("INCRBY").arg(c).arg(2).ignore();
                            pipe.cmd("INCR").arg(c).ignore();
                        }
                        let () = pipe.query(&mut con).unwrap();
                    } else {
                        for c in counters {
                            let _: i64 = redis::cmd("INCR").arg(c).query(&mut con).unwrap();
                        }
                    }
                }
            });
        }
    });
    let mut con = server.redis_on(0);
    let per_thread = (ROUNDS / 10) * 3 + (ROUNDS - ROUNDS / 10);
    for c in &counters {
        let total: i64 = redis::cmd("GET").arg(c).query(&mut con).unwrap();
        assert_eq!(total, (THREADS * per_thread) as i64, "{c}");
    }
}

/// Each shard's `tasks=` and the server's `connected_clients`, from INFO.
fn tasks_and_clients(raw: &mut Raw) -> (Vec<u64>, u64) {
    let info = raw.cmd(&["INFO"]);
    let field = |line: &str, name: &str| -> u64 {
        line.split(',')
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    let tasks = info
        .lines()
        .filter(|l| l.starts_with("shard") && l.contains("tasks="))
        .map(|l| field(l, "tasks="))
        .collect();
    let clients = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients in INFO");
    (tasks, clients)
}

#[test]
fn clients_that_vanish_mid_pipeline_leave_nothing_behind() {
    const CLIENTS: usize = 200;
    let server = KvServer::start();
    let mut checker = server.raw();
    let (tasks_before, clients_before) = tasks_and_clients(&mut checker);
    assert_eq!(clients_before, 1);
    let keys: Vec<String> = [keys_on(0, "gone0:", 8), keys_on(1, "gone1:", 8)].concat();
    // Pipelines whose commands go to both shards (so batches are in flight between them),
    // sent by clients that close or reset without reading a reply.
    let mut pipeline = Vec::new();
    for (i, key) in keys.iter().cycle().take(96).enumerate() {
        let command = match i % 3 {
            0 => Raw::encode(&["SET", key, "v"]),
            1 => Raw::encode(&["INCR", &format!("{key}:n")]),
            _ => Raw::encode(&["GET", key]),
        };
        pipeline.extend_from_slice(&command);
    }
    thread::scope(|s| {
        for t in 0..4 {
            let (server, pipeline) = (&server, &pipeline);
            s.spawn(move || {
                for i in 0..CLIENTS / 4 {
                    let mut raw = server.raw();
                    raw.send_bytes(pipeline);
                    if (t + i) % 2 == 0 {
                        raw.shutdown();
                    }
                    drop(raw);
                }
            });
        }
    });
    // No event tells when the server has noticed every close: poll INFO, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = tasks_and_clients(&mut checker);
    while seen != (tasks_before.clone(), 1) && std::time::Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(20));
        seen = tasks_and_clients(&mut checker);
    }
    assert_eq!(
        seen,
        (tasks_before, 1),
        "tasks per shard and clients went back to what they were"
    );
    // Both shards still answer, in order, through the mesh.
    for key in &keys {
        let counter = format!("{key}:n");
        let before: i64 = match checker.cmd(&["GET", &counter]).lines().nth(1) {
            Some(n) => n.parse().expect("a number"),
            None => 0,
        };
        assert!(before <= (CLIENTS * 2) as i64, "{counter} = {before}");
        assert_eq!(
            checker.cmd(&["INCR", &counter]),
            format!(":{}\r\n", before + 1)
        );
    }
}
