//! Expiry over a socket: lazy on access, and the active sweep removes keys nobody reads.
//! (The exact TTL arithmetic is tested with a test clock in the crate's unit tests.)

mod common;

use std::time::{Duration, Instant};

use common::{KvServer, keys_on};

#[test]
fn a_key_expires_on_access() {
    let server = KvServer::start();
    let mut con = server.redis_on(0);
    for shard in 0..2 {
        let key = &keys_on(shard, "lazy:", 1)[0];
        let start = Instant::now();
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("v")
            .arg("PX")
            .arg(100)
            .query(&mut con)
            .unwrap();
        let mut gone_after = None;
        while start.elapsed() < Duration::from_secs(5) {
            let value: Option<String> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
            if value.is_none() {
                gone_after = Some(start.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let gone_after = gone_after.expect("the key expired");
        // Expiry has millisecond granularity (as in Redis): up to 1 ms early by the client's
        // finer clock.
        assert!(gone_after >= Duration::from_millis(99), "{gone_after:?}");
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut con).unwrap();
        assert_eq!(ttl, -2);
    }
}

#[test]
fn the_active_sweep_removes_keys_nobody_reads() {
    let server = KvServer::start();
    let mut con = server.redis_on(1);
    let mut pipe = redis::pipe();
    for shard in 0..2 {
        for key in keys_on(shard, "swept:", 150) {
            pipe.cmd("SET").arg(key).arg("v").arg("PX").arg(30).ignore();
        }
    }
    pipe.cmd("SET").arg("stays").arg("v").ignore();
    let () = pipe.query(&mut con).unwrap();
    // DBSIZE counts expired keys not yet removed (as Redis does): only the sweep brings it
    // down, since nothing reads these keys.
    let start = Instant::now();
    loop {
        let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        if size == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sweep stuck at {size} keys"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    assert!(info.contains("expired_keys:300"), "{info}");
}
