//! The mesh on a real server: calls between shards and their replies, broadcast, bounded
//! inboxes (backpressure), send order, typed channels, unknown targets and panicking
//! handlers.

#[path = "support/shards.rs"]
mod shards;

use std::{
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use percore::{
    mesh::{self, Channel, MeshError},
    time::{sleep, timeout},
};
use shards::{WAIT, hold_shard, lock, run_on, run_on_each, two_shards};

/// Long enough for a send that should stay blocked to have had many loop iterations (and a
/// real wake-up) in which to complete wrongly.
const STILL_BLOCKED: Duration = Duration::from_millis(50);

#[test]
fn a_message_wakes_a_shard_that_sleeps_in_the_kernel() {
    let reply = run_on(two_shards(), 0, || async {
        // Long enough for shard 1, which has nothing to do, to block in io_uring_enter.
        sleep(Duration::from_millis(50)).await;
        // Bounded by a timer on this shard, so a lost wake-up fails here rather than hangs.
        timeout(Duration::from_secs(2), mesh::submit_to(1, mesh::shard_id)).await
    });
    assert_eq!(
        reply,
        Ok(Ok(1)),
        "shard 1 did not run a message sent while it slept (lost wake-up)"
    );
}

#[test]
fn ping_pong_between_two_shards_checks_every_reply() {
    const ROUND_TRIPS: u64 = 10_000;
    // Messages run on each shard, counted on the shard that runs them.
    let handled = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let counted = handled.clone();
    // Both shards call each other at once, so each is caller and callee.
    let bad_replies = run_on_each(
        // It counts MSG_RING wake-ups: an io_uring test.
        two_shards().driver(percore::DriverChoice::IoUring),
        move |info| {
            let handled = handled.clone();
            async move {
                let peer = 1 - info.id;
                let mut bad = Vec::new();
                for round in 0..ROUND_TRIPS {
                    let handled = handled.clone();
                    let reply = mesh::submit_to(peer, move || {
                        let here = mesh::shard_id();
                        handled[here].fetch_add(1, Ordering::Relaxed);
                        (here, round * 3 + here as u64)
                    })
                    .await;
                    if reply != Ok((peer, round * 3 + peer as u64)) && bad.len() < 5 {
                        bad.push(format!("round {round}: {reply:?}"));
                    }
                }
                let ring = percore::stats().ring;
                (bad, ring.msg_ring_wakes, ring.msg_ring_failures)
            }
        },
    );
    let (bad_replies, wakes, failures): (Vec<_>, Vec<_>, Vec<_>) =
        bad_replies
            .into_iter()
            .fold((vec![], vec![], vec![]), |mut acc, (b, w, f)| {
                acc.0.push(b);
                acc.1.push(w);
                acc.2.push(f);
                acc
            });
    assert_eq!(
        bad_replies,
        vec![Vec::<String>::new(), Vec::new()],
        "wrong replies (first 5 per shard)"
    );
    assert_eq!(failures, vec![0, 0], "every MSG_RING wake-up was delivered");
    assert!(
        wakes.iter().sum::<u64>() > 0,
        "sleeping shards were woken through MSG_RING: {wakes:?}"
    );
    assert_eq!(counted[0].load(Ordering::Relaxed), ROUND_TRIPS);
    assert_eq!(counted[1].load(Ordering::Relaxed), ROUND_TRIPS);
}

#[test]
fn submit_to_async_replies_after_a_timer_on_the_target() {
    let (reply, took) = run_on(two_shards(), 0, || async {
        let start = Instant::now();
        let reply = mesh::submit_to_async(1, || async {
            let armed = Instant::now();
            sleep(Duration::from_millis(5)).await;
            (
                mesh::shard_id(),
                armed.elapsed(),
                format!("pong from {}", mesh::shard_id()),
            )
        })
        .await;
        (reply, start.elapsed())
    });
    let (ran_on, slept, text) = reply.expect("submit_to_async reply");
    assert_eq!(ran_on, 1, "the future ran on the target shard");
    assert_eq!(text, "pong from 1");
    // The timer itself is checked to the millisecond in time_timers; here only that the reply
    // waited for it (a whole millisecond of slack for the wheel's rounding).
    assert!(slept >= Duration::from_millis(4), "slept only {slept:?}");
    assert!(
        took >= slept,
        "reply came before the timer: {took:?} < {slept:?}"
    );
    assert!(took < Duration::from_secs(1), "reply took {took:?}");
}

#[test]
fn submit_to_async_to_the_current_shard_and_panics() {
    let (own, panicked) = run_on(two_shards(), 1, || async {
        let own = mesh::submit_to_async(1, || async {
            sleep(Duration::from_millis(1)).await;
            mesh::shard_id() + 40
        })
        .await;
        let panicked = mesh::submit_to_async(0, || async {
            sleep(Duration::from_millis(1)).await;
            explode("async handler")
        })
        .await;
        (own, panicked)
    });
    assert_eq!(own, Ok(41));
    assert!(
        matches!(&panicked, Err(MeshError::Panicked(m)) if m.contains("async handler failed on purpose")),
        "{panicked:?}"
    );
}

#[test]
fn submit_to_the_current_shard_runs_inline() {
    let (inbox_before, first_poll, inbox_after, caller_thread, ran) =
        run_on(two_shards(), 0, || async {
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let inbox_before = percore::stats().mesh_inbox;
            let call = pin!(mesh::submit_to(0, move || {
                flag.store(true, Ordering::SeqCst);
                (
                    mesh::shard_id(),
                    thread::current().id(),
                    percore::stats().mesh_inbox,
                )
            }));
            // One poll, with a waker that does nothing: a trip through the inbox would need
            // the shard's loop to run before the reply could be ready.
            let first_poll = call.poll(&mut Context::from_waker(Waker::noop()));
            let inbox_after = percore::stats().mesh_inbox;
            (
                inbox_before,
                first_poll,
                inbox_after,
                thread::current().id(),
                ran.load(Ordering::SeqCst),
            )
        });
    assert!(ran, "the closure ran");
    assert_eq!(first_poll, Poll::Ready(Ok((0, caller_thread, 0))));
    assert_eq!(
        (inbox_before, inbox_after),
        (0, 0),
        "nothing went through the inbox"
    );
}

#[test]
fn broadcast_reaches_every_shard_exactly_once() {
    const SHARDS: usize = 3;
    // (receiving shard, broadcasting shard) for every handler run.
    let runs = Arc::new(Mutex::new(Vec::new()));
    let recorded = runs.clone();
    // Every shard broadcasts at once; three shards on two cores.
    let outputs = run_on_each(
        percore::Server::builder().placement(percore::Placement::Unpinned(SHARDS)),
        move |info| {
            let runs = runs.clone();
            async move {
                let log = runs.clone();
                let result = mesh::broadcast(move || {
                    lock(&log).push((mesh::shard_id(), info.id));
                })
                .await;
                // broadcast returns once every shard ran the handler.
                let mut reached: Vec<usize> = lock(&runs)
                    .iter()
                    .filter(|(_, from)| *from == info.id)
                    .map(|(on, _)| *on)
                    .collect();
                reached.sort_unstable();
                (result, reached)
            }
        },
    );
    let all_shards: Vec<usize> = (0..SHARDS).collect();
    for (from, (result, reached)) in outputs.iter().enumerate() {
        assert_eq!(result, &Ok(()), "broadcast from shard {from}");
        assert_eq!(
            reached, &all_shards,
            "shards that had run shard {from}'s handler when its broadcast returned"
        );
    }
    let mut runs = lock(&recorded).clone();
    runs.sort_unstable();
    let expected: Vec<(usize, usize)> = (0..SHARDS)
        .flat_map(|on| (0..SHARDS).map(move |from| (on, from)))
        .collect();
    assert_eq!(runs, expected, "each broadcast ran once on each shard");
}

/// What shard 0 saw while shard 1's loop was blocked with a 4-message inbox.
#[derive(Debug)]
struct Backpressure {
    first_four: Vec<Result<(), MeshError>>,
    fifth: Result<(), MeshError>,
    send_finished_while_full: bool,
    ran_while_blocked: Vec<u32>,
    send_after_release: Result<(), String>,
    ran: Result<Vec<u32>, MeshError>,
}

#[test]
fn full_inbox_refuses_try_send_to_and_makes_send_to_wait() {
    let seen = run_on(two_shards().mesh_capacity(4), 0, || async {
        let log = Arc::new(Mutex::new(Vec::new()));
        // Shard 1's inbox is now empty and nothing drains it until released.
        let release_tx = hold_shard(1).await;

        let push = |value: u32| {
            let log = log.clone();
            move || lock(&log).push(value)
        };
        let first_four = (0..4).map(|i| mesh::try_send_to(1, push(i))).collect();
        let fifth = mesh::try_send_to(1, push(99));
        let waiting = percore::spawn(mesh::send_to(1, push(4)));
        sleep(STILL_BLOCKED).await;
        let send_finished_while_full = waiting.is_finished();
        let ran_while_blocked = lock(&log).clone();

        drop(release_tx);
        let send_after_release = match timeout(WAIT, waiting).await {
            Ok(Ok(sent)) => sent.map_err(|e| e.to_string()),
            other => Err(format!("{other:?}")),
        };
        let read = log.clone();
        let ran = mesh::submit_to(1, move || lock(&read).clone()).await;
        Backpressure {
            first_four,
            fifth,
            send_finished_while_full,
            ran_while_blocked,
            send_after_release,
            ran,
        }
    });
    assert_eq!(seen.first_four, vec![Ok(()); 4], "{seen:?}");
    assert_eq!(seen.fifth, Err(MeshError::Full), "{seen:?}");
    assert!(
        !seen.send_finished_while_full,
        "send_to completed into a full inbox: {seen:?}"
    );
    assert_eq!(seen.ran_while_blocked, Vec::<u32>::new(), "{seen:?}");
    assert_eq!(seen.send_after_release, Ok(()), "{seen:?}");
    // In send order, each once; the refused fifth message (99) never ran.
    assert_eq!(seen.ran, Ok(vec![0, 1, 2, 3, 4]), "{seen:?}");
}

#[test]
fn send_to_keeps_order_under_backpressure() {
    const MESSAGES: u32 = 2_000;
    let (sent, ran) = run_on(two_shards().mesh_capacity(4), 0, || async {
        let log = Arc::new(Mutex::new(Vec::with_capacity(MESSAGES as usize)));
        let mut sent = Ok(());
        for i in 0..MESSAGES {
            let log = log.clone();
            if let Err(e) = mesh::send_to(1, move || lock(&log).push(i)).await {
                sent = Err(e);
                break;
            }
        }
        let ran = mesh::submit_to(1, move || lock(&log).clone()).await;
        (sent, ran)
    });
    assert_eq!(sent, Ok(()));
    let ran = ran.expect("log read on shard 1");
    let expected: Vec<u32> = (0..MESSAGES).collect();
    assert!(
        ran == expected,
        "messages ran out of order or not exactly once: {} ran, first difference at {:?}",
        ran.len(),
        ran.iter().zip(&expected).position(|(a, b)| a != b)
    );
}

/// What shard 0 saw of a typed channel whose queue to shard 1 holds 4 messages.
#[derive(Debug)]
struct ChannelSeen {
    first_four: Vec<Result<(), MeshError>>,
    fifth: Result<(), MeshError>,
    queued: usize,
    send_finished_while_full: bool,
    received: Result<Vec<Result<u32, MeshError>>, MeshError>,
    send_after_release: Result<(), String>,
    empty_after: bool,
    nothing_for_shard_0: Option<u32>,
}

#[test]
fn typed_channel_is_bounded_and_ordered() {
    let channel = Channel::<u32>::new(2, 4);
    let seen = run_on(two_shards(), 0, move || async move {
        let first_four = (0..4).map(|i| channel.try_send_to(1, i)).collect();
        let fifth = channel.try_send_to(1, 99);
        let queued = channel.len(1);
        let sender = channel.clone();
        let waiting = percore::spawn(async move { sender.send_to(1, 4).await });
        sleep(STILL_BLOCKED).await;
        let send_finished_while_full = waiting.is_finished();
        // Shard 1 only starts receiving now.
        let receiver = channel.clone();
        let received = mesh::submit_to_async(1, move || async move {
            let mut got = Vec::new();
            for _ in 0..5 {
                got.push(receiver.recv().await);
            }
            got
        })
        .await;
        let send_after_release = match timeout(WAIT, waiting).await {
            Ok(Ok(sent)) => sent.map_err(|e| e.to_string()),
            other => Err(format!("{other:?}")),
        };
        ChannelSeen {
            first_four,
            fifth,
            queued,
            send_finished_while_full,
            received,
            send_after_release,
            empty_after: channel.is_empty(1),
            nothing_for_shard_0: channel.try_recv(),
        }
    });
    assert_eq!(seen.first_four, vec![Ok(()); 4], "{seen:?}");
    assert_eq!(seen.fifth, Err(MeshError::Full), "{seen:?}");
    assert_eq!(seen.queued, 4, "{seen:?}");
    assert!(
        !seen.send_finished_while_full,
        "send_to completed into a full queue: {seen:?}"
    );
    assert_eq!(seen.received, Ok((0..5).map(Ok).collect()), "{seen:?}");
    assert_eq!(seen.send_after_release, Ok(()), "{seen:?}");
    assert!(seen.empty_after, "{seen:?}");
    assert_eq!(seen.nothing_for_shard_0, None, "{seen:?}");
}

#[test]
fn unknown_shard_is_no_such_shard() {
    let channel = Channel::<u32>::new(2, 4);
    let errors = run_on(two_shards(), 0, move || async move {
        vec![
            mesh::try_send_to(99, || ()),
            mesh::send_to(99, || ()).await,
            mesh::submit_to(99, || ()).await,
            mesh::submit_to_async(99, || async {}).await,
            channel.try_send_to(99, 1),
            channel.send_to(99, 1).await,
        ]
    });
    assert_eq!(errors, vec![Err(MeshError::NoSuchShard(99)); 6]);
}

#[test]
fn panicking_handler_is_reported_and_the_target_goes_on() {
    let (panicked, next, panics_before, panics_after, last) = run_on(two_shards(), 0, || async {
        let panicked = mesh::submit_to(1, || explode("submit_to handler")).await;
        let next = mesh::submit_to(1, || mesh::shard_id() * 10 + 7).await;
        let panics_before = mesh::submit_to(1, || percore::stats().panics).await;
        // A handler with no caller to tell is contained and counted by the target. Messages
        // from one shard run in order, so the count is read after it ran.
        mesh::send_to(1, || {
            explode("send_to handler");
        })
        .await
        .expect("delivered");
        let panics_after = mesh::submit_to(1, || percore::stats().panics).await;
        let last = mesh::submit_to(1, mesh::shard_id).await;
        (panicked, next, panics_before, panics_after, last)
    });
    assert!(
        matches!(&panicked, Err(MeshError::Panicked(m)) if m.contains("submit_to handler failed on purpose")),
        "{panicked:?}"
    );
    assert_eq!(next, Ok(17), "shard 1 answers after a panicking handler");
    let panics_before = panics_before.expect("stats from shard 1");
    assert_eq!(
        panics_after,
        Ok(panics_before + 1),
        "contained panic counted"
    );
    assert_eq!(last, Ok(1));
}

/// Panics with a formatted (String) payload; typed so it can stand in for any handler's result.
fn explode(what: &str) -> usize {
    panic!("{what} failed on purpose")
}

#[test]
fn calls_to_a_shard_stuck_past_the_mesh_timeout_fail_instead_of_waiting() {
    const MESH_TIMEOUT: Duration = Duration::from_millis(300);
    let (waiting, waited, again, at_once, after) =
        run_on(two_shards().mesh_timeout(MESH_TIMEOUT), 0, || async {
            // Shard 1 blocks (a handler that never returns, until released).
            let release = hold_shard(1).await;
            let asked = Instant::now();
            let waiting = timeout(Duration::from_secs(3), mesh::submit_to(1, mesh::shard_id)).await;
            let waited = asked.elapsed();
            let asked = Instant::now();
            let again = mesh::submit_to(1, mesh::shard_id).await;
            let at_once = asked.elapsed();
            drop(release);
            let deadline = Instant::now() + Duration::from_secs(3);
            let after = loop {
                match mesh::submit_to(1, mesh::shard_id).await {
                    Err(MeshError::Unavailable(_)) if Instant::now() < deadline => {
                        sleep(Duration::from_millis(20)).await
                    }
                    other => break other,
                }
            };
            (waiting, waited, again, at_once, after)
        });
    assert_eq!(
        waiting,
        Ok(Err(MeshError::Unavailable(1))),
        "a waiting call fails, not times out"
    );
    assert!(
        waited < MESH_TIMEOUT + Duration::from_millis(500),
        "failed after {waited:?}"
    );
    assert_eq!(again, Err(MeshError::Unavailable(1)));
    assert!(
        at_once < Duration::from_millis(50),
        "a new call failed after {at_once:?}"
    );
    assert_eq!(after, Ok(1), "calls succeed again once the shard is back");
}

#[test]
fn a_sender_waiting_on_a_stuck_shards_full_inbox_fails_instead_of_waiting() {
    const MESH_TIMEOUT: Duration = Duration::from_millis(500);
    let (filled, waiting, waited) = run_on(
        two_shards().mesh_timeout(MESH_TIMEOUT).mesh_capacity(4),
        0,
        || async {
            let release = hold_shard(1).await;
            // Fill shard 1's inbox while it is not yet marked stuck.
            let mut filled = 0;
            while mesh::try_send_to(1, || {}).is_ok() {
                filled += 1;
                assert!(filled <= 64, "the inbox never filled");
            }
            let asked = Instant::now();
            let waiting = timeout(Duration::from_secs(3), mesh::send_to(1, || {})).await;
            let waited = asked.elapsed();
            drop(release);
            (filled, waiting, waited)
        },
    );
    assert!(filled >= 1, "nothing was queued before the inbox filled");
    assert_eq!(
        waiting,
        Ok(Err(MeshError::Unavailable(1))),
        "a sender waiting for room fails once the target is stuck"
    );
    assert!(
        waited < MESH_TIMEOUT + Duration::from_millis(700),
        "failed after {waited:?}"
    );
}

#[test]
fn a_conversation_keeps_both_shards_in_idle_polls_and_a_quiet_shard_never_polls() {
    const ROUND_TRIPS: u64 = 2_000;
    let (own, peer) = run_on(two_shards(), 0, || async {
        let mut peer = (0, 0);
        for _ in 0..ROUND_TRIPS {
            peer = mesh::submit_to(1, || {
                let stats = percore::stats().loop_;
                (stats.idle_polls, stats.idle_poll_hits)
            })
            .await
            .expect("shard 1 answers");
        }
        let stats = percore::stats().loop_;
        ((stats.idle_polls, stats.idle_poll_hits), peer)
    });
    // Each shard waits for the other's next message after every one it handled: in a
    // conversation of 2,000 round trips both poll, and polls find the peer's answer.
    for (shard, (polls, hits)) in [(0, own), (1, peer)] {
        assert!(
            polls > 0 && hits > 0,
            "shard {shard}: {polls} idle polls, {hits} hits"
        );
        assert!(hits <= polls, "shard {shard}: {hits} hits of {polls} polls");
    }
    // A shard with timers and no mesh traffic sleeps at once, every time.
    let quiet = run_on(percore::Server::builder().shards(1), 0, || async {
        for _ in 0..20 {
            sleep(Duration::from_millis(1)).await;
        }
        percore::stats().loop_.idle_polls
    });
    assert_eq!(quiet, 0, "a shard without mesh traffic polled");
}

/// A stream far longer than the queue, with partial batches (an odd count per iteration)
/// and waits for room: every message arrives once, in order, and the count returns to 0.
#[test]
fn typed_channel_stream_arrives_whole_and_in_order_through_batches() {
    const MESSAGES: u32 = 20_000;
    let channel = Channel::<u32>::new(2, 100);
    let (got, len_after) = run_on(two_shards(), 0, move || async move {
        let receiver = channel.clone();
        let received = mesh::submit_to_async(1, move || async move {
            let mut got = Vec::new();
            while got.len() < MESSAGES as usize {
                match timeout(WAIT, receiver.recv()).await {
                    Ok(Ok(message)) => got.push(message),
                    _ => break,
                }
            }
            got
        });
        let sender = channel.clone();
        let sending = percore::spawn(async move {
            for i in 0..MESSAGES {
                sender.send_to(1, i).await.expect("sent");
                if i % 37 == 0 {
                    // Ends the run phase mid-batch: the partial batch must still leave.
                    percore::yield_now().await;
                }
            }
        });
        let got = received.await.expect("received");
        let _ = timeout(WAIT, sending).await;
        (got, channel.len(1))
    });
    assert_eq!(got.len(), MESSAGES as usize, "every message arrived");
    assert!(
        got.iter().copied().eq(0..MESSAGES),
        "messages arrived in the order sent"
    );
    assert_eq!(len_after, 0);
}

/// A batch reserves room for the whole batch at its first message; what it did not use is
/// given back when the batch leaves at the end of the run phase, so other senders can use it
/// then. A channel's batches count as mesh traffic on both ends (what keeps two streaming
/// shards polling instead of sleeping between batches).
#[test]
fn typed_channel_gives_back_unused_room_and_counts_as_mesh_traffic() {
    let channel = Channel::<u32>::new(2, 8);
    let (sent, len_after_run, from_shard_1, received) =
        run_on(two_shards(), 0, move || async move {
            let sent_before = percore::stats().loop_.mesh_sent;
            let sent = channel.try_send_to(1, 0);
            // The end of this run phase: the one-message batch leaves, 7 reserved slots
            // come back.
            percore::yield_now().await;
            let len_after_run = channel.len(1);
            let batches_sent = percore::stats().loop_.mesh_sent - sent_before;
            let receiver = channel.clone();
            let on_shard_1 = mesh::submit_to_async(1, move || async move {
                let received_before = percore::stats().loop_.mesh_received;
                // Shard 1 sends to itself: the room shard 0 gave back is there for it.
                let sends: Vec<_> = (1..9).map(|i| receiver.try_send_to(1, i)).collect();
                percore::yield_now().await;
                let mut got = Vec::new();
                while let Ok(Ok(message)) = timeout(WAIT, receiver.recv()).await {
                    got.push(message);
                    if got.len() == 8 {
                        break;
                    }
                }
                let batches_taken = percore::stats().loop_.mesh_received - received_before;
                (sends, got, batches_taken)
            })
            .await
            .expect("shard 1 answered");
            (
                sent,
                (len_after_run, batches_sent),
                on_shard_1.0,
                (on_shard_1.1, on_shard_1.2),
            )
        });
    assert_eq!(sent, Ok(()));
    assert_eq!(
        len_after_run,
        (1, 1),
        "(queued after the run phase, batches sent)"
    );
    let mut expected_sends = vec![Ok(()); 7];
    expected_sends.push(Err(MeshError::Full));
    assert_eq!(from_shard_1, expected_sends, "7 of 8 slots were free again");
    let (got, batches_taken) = received;
    assert_eq!(
        got,
        (0..8).collect::<Vec<_>>(),
        "shard 0's message first, then shard 1's"
    );
    assert!(
        batches_taken >= 2,
        "taking a batch counts as mesh traffic: {batches_taken}"
    );
}
