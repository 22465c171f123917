//! Pipelines that mix shards keep their order; concurrent INCRs from both shards give exact
//! totals (through the `redis` crate as the client).

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
