//! Running commands on the shards that own their keys, replies in order.
//!
//! A connection's deferred commands (see `conn`) are cut into segments at *barriers*:
//! commands that touch several shards (multi-key commands whose keys have different owners,
//! fan-outs, INFO, PUBLISH). Within a segment, the keyed commands are grouped by owner, each
//! group goes to its shard as one mesh message (this shard's own group runs in place), all
//! groups run concurrently, and the replies are merged back in command order. A barrier
//! runs alone, after the segment before it has completed, so a pipeline sees its own writes
//! in order (`SET a 1` then `DBSIZE` counts `a`).
//!
//! Groups for other shards go through the shard's [`CallBatcher`]: the groups that all the
//! connections of one loop iteration make for one shard travel as one mesh message, run
//! there under one borrow of the store, and come back as one reply.

use std::{
    any::Any,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
};

use percore::{
    TcpStream,
    mesh::{CallBatcher, MeshError},
};

use crate::{
    admin, blocking,
    commands::{
        self,
        table::{Cmd, Route, Spec, key_positions},
    },
    conn::{Checked, Conn, Deferred, check, subscription},
    fanout,
    hash::owner,
    resp,
    shard::{now_ms, with_dbs},
};

/// Replies of one connection's batch: all replies back to back, and where each ends; or,
/// when a command of the batch panicked on the owner, the panic's message.
pub type BatchReply = Result<(Vec<u8>, Vec<usize>), String>;

/// One connection's commands for one shard: each command's database, whether its reply is
/// RESP3, its arguments and its entry.
pub type Batch = Vec<(usize, bool, Vec<Vec<u8>>, &'static Spec)>;

type Call = Pin<Box<dyn Future<Output = Result<BatchReply, MeshError>>>>;

/// Per shard of a segment: its replies, the next reply's index and where it starts; or the
/// error every command sent there answers.
type ShardReplies = Result<((Vec<u8>, Vec<usize>), usize, usize), String>;

/// The batcher of one shard's calls to the owners of keys: runs every connection's batch
/// of an iteration on the owner's store, in order.
pub fn batcher(config: &crate::Config) -> CallBatcher<Batch, BatchReply> {
    let config = config.clone();
    CallBatcher::new(move |batches: Vec<Batch>| {
        with_dbs(&config, |dbs| {
            let now = now_ms();
            let replies = batches
                .iter()
                .map(|batch| {
                    // One connection's failure stays its own: the other connections whose
                    // commands share the message get their replies.
                    catch_unwind(AssertUnwindSafe(|| {
                        let mut out = Vec::new();
                        let mut ends = Vec::with_capacity(batch.len());
                        for (db, resp3, args, spec) in batch {
                            resp::set_protocol(*resp3);
                            commands::run_in(dbs, *db, spec, args, now, &mut out);
                            ends.push(out.len());
                        }
                        // After the connection's batch (a transaction runs as one).
                        blocking::serve_ready(dbs, now);
                        (out, ends)
                    }))
                    .map_err(|payload| {
                        let text = panic_text(&*payload);
                        tracing::error!(
                            shard = percore::mesh::shard_id(),
                            "a command panicked: {text}; its connection gets an error, the shard goes on"
                        );
                        text
                    })
                })
                .collect();
            resp::set_protocol(false);
            replies
        })
    })
}

/// One deferred command of a segment.
enum Item {
    /// A keyed command for the shard that owns its keys.
    Shard(usize, usize, bool, Vec<Vec<u8>>, &'static Spec),
    /// A connection command, run here when the segment's replies are merged.
    Here(Vec<Vec<u8>>, &'static Spec),
    /// A reply known already (an error found by the checks).
    Reply(Vec<u8>),
}

/// Runs `commands` (in order) and writes every reply, in order, in one write.
pub async fn run(stream: &mut TcpStream, conn: &mut Conn, deferred: Deferred) {
    let mut out = Vec::new();
    run_commands(stream, conn, deferred.commands, false, &mut out).await;
    if let Some(error) = deferred.protocol_error {
        resp::error(&mut out, &error);
    }
    let _ = stream.write_with(|o| o.extend_from_slice(&out));
}

/// Runs `commands` in order, their replies into `out`. In a transaction's EXEC
/// (`in_exec`), blocking commands do not wait.
async fn run_commands(
    stream: &mut TcpStream,
    conn: &mut Conn,
    commands: Vec<Vec<Vec<u8>>>,
    in_exec: bool,
    out: &mut Vec<u8>,
) {
    let mut segment: Vec<Item> = Vec::new();
    for args in commands {
        let mut reply = Vec::new();
        let spec = match check(conn, &args, &mut reply) {
            Checked::Answered => {
                segment.push(Item::Reply(reply));
                continue;
            }
            Checked::Run(spec) => spec,
        };
        if matches!(spec.cmd, Cmd::Select | Cmd::Multi | Cmd::Discard) {
            // They change how the commands after them run (database, queueing), and
            // those are put in batches before this segment's connection commands run:
            // run now.
            let mut reply = Vec::new();
            admin::connection_command(conn, spec, &args, &mut reply);
            segment.push(Item::Reply(reply));
            continue;
        }
        match batch_target(conn, spec, &args) {
            Some(Some(shard)) => {
                segment.push(Item::Shard(shard, conn.db, conn.resp == 3, args, spec))
            }
            Some(None) => segment.push(Item::Here(args, spec)),
            None => {
                run_segment(conn, std::mem::take(&mut segment), out).await;
                if spec.cmd == Cmd::Exec {
                    exec(stream, conn, out).await;
                } else if in_exec && spec.route == Route::Blocking {
                    // In a transaction a blocking pop does not wait: it answers what is
                    // there, or the null of its timeout.
                    let positions = key_positions(spec, &args).unwrap_or_default();
                    let mut reply = Vec::new();
                    fanout::gathered(conn, spec, &args, &positions, &mut reply).await;
                    conn.speak();
                    if reply.is_empty() {
                        blocking::timed_out(spec, &mut reply);
                    }
                    out.extend_from_slice(&reply);
                } else {
                    barrier(stream, conn, spec, &args, out).await;
                }
                conn.speak();
            }
        }
    }
    run_segment(conn, segment, out).await;
    conn.speak();
}

/// EXEC: runs the queued commands and answers them as one array. The keyed commands of a
/// transaction must all live on one shard (hash tags put related keys there); they then
/// go to it as one batch, which the shard runs without running anything else in between,
/// so no other client sees part of the transaction. Keys on several shards are refused
/// before anything runs, with Redis Cluster's CROSSSLOT error. Commands that touch every
/// shard (FLUSHALL, KEYS, PUBLISH, ...) run in order but are not isolated.
async fn exec(stream: &mut TcpStream, conn: &mut Conn, out: &mut Vec<u8>) {
    let Some(multi) = conn.multi.take() else {
        return resp::error(out, "ERR EXEC without MULTI");
    };
    if multi.failed {
        return resp::error(
            out,
            "EXECABORT Transaction discarded because of previous errors.",
        );
    }
    let mut owner_shard: Option<usize> = None;
    for args in &multi.commands {
        let Some(spec) = crate::commands::table::lookup(&args[0]) else {
            continue;
        };
        let positions = match spec.route {
            Route::Key | Route::Keys { .. } | Route::Multi | Route::Blocking => {
                key_positions(spec, args).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        for i in positions {
            let shard = owner(&args[i], conn.shards);
            if *owner_shard.get_or_insert(shard) != shard {
                return resp::error(out, "CROSSSLOT Keys in request don't hash to the same slot");
            }
        }
    }
    let count = multi.commands.len();
    let mut replies = Vec::new();
    Box::pin(run_commands(
        stream,
        conn,
        multi.commands,
        true,
        &mut replies,
    ))
    .await;
    resp::array(out, count);
    out.extend_from_slice(&replies);
}

/// The shard a command can be batched to (`Some(None)`: runs here, touching no key), or
/// `None` for a barrier.
fn batch_target(conn: &Conn, spec: &Spec, args: &[Vec<u8>]) -> Option<Option<usize>> {
    match spec.route {
        Route::Key => Some(Some(owner(&args[1], conn.shards))),
        Route::Keys { step } => {
            let first = owner(&args[1], conn.shards);
            let same = args[1..]
                .iter()
                .step_by(step)
                .all(|key| owner(key, conn.shards) == first);
            same.then_some(Some(first))
        }
        Route::Multi => match multi_owner(conn, spec, args) {
            MultiOwner::One(shard) => Some(Some(shard)),
            MultiOwner::Several => None,
        },
        Route::Conn
            if !matches!(spec.cmd, Cmd::Info | Cmd::Exec) && !Conn::client_fanout(spec, args) =>
        {
            Some(None)
        }
        Route::PubSub if spec.cmd != Cmd::Publish => Some(None),
        _ => None,
    }
}

/// Where the keys of a `Route::Multi` command live.
pub enum MultiOwner {
    /// On one shard (or malformed key positions: run on the connection's shard, which
    /// answers the command's own error).
    One(usize),
    /// On several.
    Several,
}

pub fn multi_owner(conn: &Conn, spec: &Spec, args: &[Vec<u8>]) -> MultiOwner {
    let Some(positions) = key_positions(spec, args) else {
        return MultiOwner::One(conn.shard);
    };
    let Some(&first) = positions.first() else {
        return MultiOwner::One(conn.shard);
    };
    let shard = owner(&args[first], conn.shards);
    if positions
        .iter()
        .all(|&i| owner(&args[i], conn.shards) == shard)
    {
        MultiOwner::One(shard)
    } else {
        MultiOwner::Several
    }
}

/// Runs one segment: a batch per shard, concurrently, replies merged in order.
async fn run_segment(conn: &mut Conn, segment: Vec<Item>, out: &mut Vec<u8>) {
    if segment.is_empty() {
        return;
    }
    let mut batches: Vec<Batch> = vec![Vec::new(); conn.shards];
    let mut order = Vec::with_capacity(segment.len());
    for item in segment {
        match item {
            Item::Shard(shard, db, resp3, args, spec) => {
                batches[shard].push((db, resp3, args, spec));
                order.push(Item::Shard(shard, db, resp3, Vec::new(), spec));
            }
            other => order.push(other),
        }
    }
    let mut calls: Vec<Call> = Vec::new();
    let mut shard_of_call = Vec::new();
    for (shard, batch) in batches.into_iter().enumerate() {
        if batch.is_empty() {
            continue;
        }
        shard_of_call.push(shard);
        calls.push(Box::pin(conn.state.batcher.call(shard, batch)));
    }
    let results = join_all(calls).await;
    conn.speak();
    let mut replies: Vec<ShardReplies> = (0..conn.shards).map(|_| Err(String::new())).collect();
    for (shard, result) in shard_of_call.into_iter().zip(results) {
        replies[shard] = match result {
            Ok(Ok(reply)) => Ok((reply, 0, 0)),
            Ok(Err(panic)) => Err(format!("ERR command failed on shard {shard}: {panic}")),
            // Stuck past the mesh timeout: a retryable error, never a hang.
            Err(MeshError::Unavailable(n)) => Err(format!("TRYAGAIN shard {n} is unavailable")),
            Err(e) => Err(format!("ERR shard {shard} unavailable: {e}")),
        };
    }
    for item in order {
        match item {
            Item::Reply(reply) => out.extend_from_slice(&reply),
            Item::Here(args, spec) => match spec.route {
                Route::PubSub => subscription(conn, spec, &args, out),
                _ => admin::connection_command(conn, spec, &args, out),
            },
            Item::Shard(shard, _, _, _, _) => match &mut replies[shard] {
                Ok(((bytes, ends), next, start)) => {
                    let end = ends[*next];
                    out.extend_from_slice(&bytes[*start..end]);
                    *start = end;
                    *next += 1;
                }
                Err(error) => resp::error(out, error),
            },
        }
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// A command that touches several shards, run alone.
async fn barrier(
    stream: &mut TcpStream,
    conn: &mut Conn,
    spec: &'static Spec,
    args: &[Vec<u8>],
    out: &mut Vec<u8>,
) {
    if !matches!(spec.route, Route::Blocking | Route::Multi) {
        conn.count_command();
    }
    conn.speak();
    match spec.cmd {
        Cmd::Info => admin::info(conn, args, out).await,
        Cmd::Client => admin::client_fanout(conn, args, out).await,
        Cmd::Publish => fanout::publish(conn, args, out).await,
        _ if spec.route == Route::Blocking => blocking::run(stream, conn, spec, args, out).await,
        _ if spec.route == Route::Multi => {
            let positions = key_positions(spec, args).unwrap_or_default();
            fanout::gathered(conn, spec, args, &positions, out).await
        }
        _ if matches!(spec.route, Route::Keys { .. }) => {
            fanout::multi_key(conn, spec, args, out).await
        }
        _ => fanout::all_shards(conn, spec, args, out).await,
    }
}

/// Polls every future until all are done; outputs in input order.
pub async fn join_all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T>>>>) -> Vec<T> {
    let mut results: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in futures.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}
