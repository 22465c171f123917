//! Pub/sub across shards: subscribers on both shards, publishers on both, messages in
//! publish order, receiver counts summed over shards, and a subscriber that does not read
//! is disconnected past its output limit.

mod common;

use std::time::{Duration, Instant};

use common::{KvServer, bulk};

#[test]
fn messages_reach_subscribers_on_every_shard_in_publish_order() {
    let server = KvServer::start();
    let mut connections: Vec<redis::Connection> = (0..2).map(|s| server.redis_on(s)).collect();
    let mut publishers: Vec<redis::Connection> = (0..2).map(|s| server.redis_on(s)).collect();
    // (A `PubSub` unsubscribes when dropped: these live to the end.)
    let mut subscribers: Vec<redis::PubSub<'_>> =
        connections.iter_mut().map(|c| c.as_pubsub()).collect();
    for ps in &mut subscribers {
        ps.subscribe("news").unwrap();
        ps.psubscribe("n*").unwrap();
    }
    const MESSAGES: usize = 200;
    for i in 0..MESSAGES {
        let publisher = &mut publishers[i % 2];
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg(format!("m{i}"))
            .query(publisher)
            .unwrap();
        assert_eq!(receivers, 4, "2 channel + 2 pattern subscriptions");
    }
    let none: i64 = redis::cmd("PUBLISH")
        .arg("other")
        .arg("x")
        .query(&mut publishers[0])
        .unwrap();
    assert_eq!(none, 0);
    for (shard, ps) in subscribers.iter_mut().enumerate() {
        ps.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (mut direct, mut via_pattern) = (Vec::new(), Vec::new());
        for _ in 0..2 * MESSAGES {
            let msg = ps.get_message().expect("a message");
            assert_eq!(msg.get_channel_name(), "news");
            let payload: String = msg.get_payload().unwrap();
            if msg.from_pattern() {
                assert_eq!(msg.get_pattern::<String>().unwrap(), "n*");
                via_pattern.push(payload);
            } else {
                direct.push(payload);
            }
        }
        let expected: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
        assert_eq!(direct, expected, "subscriber on shard {shard}");
        assert_eq!(via_pattern, expected, "pattern subscriber on shard {shard}");
    }
}

#[test]
fn subscribe_mode_replies_and_unsubscribe() {
    let server = KvServer::start();
    let mut r = server.raw();
    assert_eq!(
        r.cmd(&["SUBSCRIBE", "a", "b"]),
        format!("*3\r\n{}{}:1\r\n", bulk("subscribe"), bulk("a"))
    );
    assert_eq!(
        r.reply(),
        format!("*3\r\n{}{}:2\r\n", bulk("subscribe"), bulk("b"))
    );
    assert_eq!(
        r.cmd(&["GET", "k"]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        r.cmd(&["PING"]),
        format!("*2\r\n{}{}", bulk("pong"), bulk(""))
    );
    assert_eq!(
        r.cmd(&["PSUBSCRIBE", "x*"]),
        format!("*3\r\n{}{}:3\r\n", bulk("psubscribe"), bulk("x*"))
    );
    assert_eq!(
        r.cmd(&["UNSUBSCRIBE"]),
        format!("*3\r\n{}{}:2\r\n", bulk("unsubscribe"), bulk("a"))
    );
    assert_eq!(
        r.reply(),
        format!("*3\r\n{}{}:1\r\n", bulk("unsubscribe"), bulk("b"))
    );
    assert_eq!(
        r.cmd(&["PUNSUBSCRIBE"]),
        format!("*3\r\n{}{}:0\r\n", bulk("punsubscribe"), bulk("x*"))
    );
    // Out of subscribe mode: normal commands again.
    assert_eq!(r.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(
        r.cmd(&["UNSUBSCRIBE"]),
        format!("*3\r\n{}$-1\r\n:0\r\n", bulk("unsubscribe"))
    );
    let mut publisher = server.raw();
    assert_eq!(publisher.cmd(&["PUBLISH", "a", "gone"]), ":0\r\n");
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_its_limit() {
    let server = KvServer::with_config(percore_kv::Config {
        pubsub_output_limit: 256 * 1024,
        ..Default::default()
    });
    let mut slow = server.raw();
    assert!(slow.cmd(&["SUBSCRIBE", "flood"]).starts_with("*3\r\n"));
    let mut publisher = server.raw();
    let payload = "p".repeat(16 * 1024);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut published = 0;
    loop {
        let reply = publisher.cmd(&["PUBLISH", "flood", &payload]);
        published += 1;
        if reply == ":0\r\n" {
            break; // The subscriber was dropped.
        }
        assert_eq!(reply, ":1\r\n");
        assert!(
            Instant::now() < deadline && published < 20_000,
            "the slow subscriber was never disconnected ({published} messages)"
        );
    }
    // Its connection ends after what was already sent.
    assert!(slow.ends());
    // Others are unaffected.
    assert_eq!(publisher.cmd(&["PING"]), "+PONG\r\n");
}
