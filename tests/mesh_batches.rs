//! Batched mesh calls ([`percore::mesh::CallBatcher`]) on a real two-shard server: one
//! message per target per iteration, answers in call order, inline calls to the own shard,
//! failures reaching every call of a batch, and order kept behind a full inbox.

#[path = "support/shards.rs"]
mod shards;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use percore::{
    mesh::{self, CallBatcher, MAX_CALLS_PER_MESSAGE, MeshError},
    time::{sleep, timeout},
    yield_now,
};
use shards::{WAIT, hold_shard, lock, run_on, two_shards};

/// What the handler saw: (shard it ran on, the batch's requests), one entry per batch.
type Seen = Arc<Mutex<Vec<(usize, Vec<u32>)>>>;

/// A batcher whose handler logs each batch and answers `request * 10 + shard`.
fn logging_batcher(seen: &Seen) -> CallBatcher<u32, u32> {
    let seen = seen.clone();
    CallBatcher::new(move |requests: Vec<u32>| {
        let here = mesh::shard_id();
        lock(&seen).push((here, requests.clone()));
        requests.iter().map(|r| r * 10 + here as u32).collect()
    })
}

/// On shard 0: `calls` tasks spawned together, task `i` calling shard 1 with `i`. Tasks
/// spawned together are polled together in the next iteration, so the calls are made in
/// one iteration. Returns the answers in task order and the mesh messages shard 0 sent.
async fn calls_from_tasks(log: Seen, calls: u32) -> (Vec<Result<u32, MeshError>>, u64) {
    let batcher = logging_batcher(&log);
    let sent_before = percore::stats().loop_.mesh_sent;
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let batcher = batcher.clone();
            percore::spawn(async move { batcher.call(1, i).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(timeout(WAIT, task).await.expect("answered").expect("task"));
    }
    (answers, percore::stats().loop_.mesh_sent - sent_before)
}

#[test]
fn calls_of_one_iteration_travel_as_one_message_and_come_back_in_order() {
    const CALLS: u32 = 100;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let (answers, sent) = run_on(two_shards(), 0, move || calls_from_tasks(log, CALLS));
    let expected: Vec<Result<u32, MeshError>> = (0..CALLS).map(|i| Ok(i * 10 + 1)).collect();
    assert_eq!(answers, expected);
    assert_eq!(
        *lock(&seen),
        vec![(1, (0..CALLS).collect::<Vec<_>>())],
        "one batch, on shard 1, requests in call order"
    );
    assert_eq!(sent, 1, "one mesh message for {CALLS} calls");
}

#[test]
fn a_call_to_the_own_shard_runs_at_once_without_the_mesh() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let (ran_before_await, answer, sent) = run_on(two_shards(), 0, move || async move {
        let batcher = logging_batcher(&log);
        let sent_before = percore::stats().loop_.mesh_sent;
        let call = batcher.call(0, 7);
        let ran_before_await = lock(&log).len();
        let answer = call.await;
        (
            ran_before_await,
            answer,
            percore::stats().loop_.mesh_sent - sent_before,
        )
    });
    assert_eq!(ran_before_await, 1, "the handler ran inside call()");
    assert_eq!(answer, Ok(70));
    assert_eq!(sent, 0);
    assert_eq!(*lock(&seen), vec![(0, vec![7])]);
}

#[test]
fn failures_reach_every_call_of_the_batch_and_the_target_goes_on() {
    let answers = run_on(two_shards(), 0, || async {
        let panicking = CallBatcher::new(|requests: Vec<u32>| {
            if requests.contains(&13) {
                panic!("unlucky batch");
            }
            requests
        });
        let short = CallBatcher::new(|requests: Vec<u32>| requests.into_iter().take(1).collect());
        let unlucky = vec![panicking.call(1, 1), panicking.call(1, 13)];
        let answered_short = vec![short.call(1, 1), short.call(1, 2), short.call(1, 3)];
        let mut answers = Vec::new();
        for call in unlucky.into_iter().chain(answered_short) {
            answers.push(timeout(WAIT, call).await.expect("answered"));
        }
        answers.push(panicking.call(1, 5).await);
        answers.push(panicking.call(9, 5).await);
        answers
    });
    for unlucky in &answers[..2] {
        assert!(
            matches!(unlucky, Err(MeshError::Panicked(m)) if m.contains("unlucky batch")),
            "{answers:?}"
        );
    }
    for short in &answers[2..5] {
        assert!(
            matches!(short, Err(MeshError::Panicked(m)) if m.contains("answered 1 of 3")),
            "{answers:?}"
        );
    }
    assert_eq!(answers[5], Ok(5), "shard 1 answers after a panicking batch");
    assert_eq!(answers[6], Err(MeshError::NoSuchShard(9)));
}

#[test]
fn batches_keep_their_order_behind_a_full_inbox() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let outcome = run_on(two_shards().mesh_capacity(2), 0, move || async move {
        let batcher = logging_batcher(&log);
        let release = hold_shard(1).await;
        // Fill the inbox: nothing drains it while shard 1 is held.
        while mesh::try_send_to(1, || {}).is_ok() {}
        // Three iterations' batches: the first waits for room, the others behind it.
        let mut calls = Vec::new();
        for batch in 0..3u32 {
            calls.push(percore::spawn(batcher.call(1, batch * 2)));
            calls.push(percore::spawn(batcher.call(1, batch * 2 + 1)));
            yield_now().await;
            yield_now().await;
        }
        // Many iterations (and wake-ups) in which a wrong early answer could come.
        sleep(Duration::from_millis(30)).await;
        let answered_while_full = calls.iter().filter(|c| c.is_finished()).count();
        drop(release);
        let mut answers = Vec::new();
        for call in calls {
            answers.push(timeout(WAIT, call).await.expect("answered").expect("task"));
        }
        (answered_while_full, answers)
    });
    let (answered_while_full, answers) = outcome;
    assert_eq!(answered_while_full, 0);
    let expected: Vec<Result<u32, MeshError>> = (0..6).map(|i| Ok(i * 10 + 1)).collect();
    assert_eq!(answers, expected);
    // The first batch waited for room; the two made meanwhile waited behind it and then
    // left together, in order.
    assert_eq!(*lock(&seen), vec![(1, vec![0, 1]), (1, vec![2, 3, 4, 5])]);
}

#[test]
fn a_large_batch_is_split_into_bounded_messages_in_order() {
    let calls = MAX_CALLS_PER_MESSAGE as u32 * 2 + 17;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let (answers, sent) = run_on(two_shards(), 0, move || calls_from_tasks(log, calls));
    assert_eq!(
        answers,
        (0..calls).map(|i| Ok(i * 10 + 1)).collect::<Vec<_>>()
    );
    let sizes: Vec<usize> = lock(&seen).iter().map(|(_, r)| r.len()).collect();
    let max = MAX_CALLS_PER_MESSAGE;
    assert_eq!(sizes, vec![max, max, 17]);
    let order: Vec<u32> = lock(&seen).iter().flat_map(|(_, r)| r.clone()).collect();
    assert_eq!(order, (0..calls).collect::<Vec<_>>());
    assert_eq!(sent, 3, "three messages");
}
