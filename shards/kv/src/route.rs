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
    conn::{Checked, Conn, Deferred, ReplyKind, check, subscription},
    fanout,
    hash::owner,
    persist, resp, shard,
    shard::{now_ms, with_dbs},
    store::Databases,
    txn::{self, TxId},
    watch,
};

/// What a connection's batch gets back from its shard.
pub enum BatchReply {
    /// All replies back to back, and where each ends.
    Ran(Vec<u8>, Vec<usize>),
    /// A command of the batch panicked on the owner: the panic's message.
    Panicked(String),
    /// A key of the batch is locked by a transaction (see `txn`): the batch waits in the
    /// shard's queue and its reply comes through this channel.
    Parked(flume::Receiver<BatchReply>),
    /// A one-shard EXEC whose watch was broken: nothing ran.
    Aborted,
}

/// One connection's commands for one shard: the transaction they belong to (0: none) and
/// each command's database, whether its reply is RESP3, its arguments and its entry.
#[derive(Default)]
pub struct Batch {
    pub tx: TxId,
    pub commands: Vec<(usize, bool, Vec<Vec<u8>>, &'static Spec)>,
    /// Releases the transaction's locks on the shard (a dropped transaction's release).
    pub release: bool,
    /// A one-shard EXEC's watch: checked before the batch runs, which it aborts if broken.
    pub watch: Option<watch::WatchCheck>,
}

type Call = Pin<Box<dyn Future<Output = Result<BatchReply, MeshError>>>>;

/// Per shard of a segment: its replies, the next reply's index and where it starts; or the
/// error every command sent there answers.
type ShardReplies = Result<((Vec<u8>, Vec<usize>), usize, usize), String>;

/// The keys a command touches (for the lock check of `txn`).
pub fn command_keys(spec: &Spec, args: &[Vec<u8>]) -> Vec<Vec<u8>> {
    match spec.route {
        Route::Key => vec![args[1].clone()],
        Route::Keys { step } => args[1..].iter().step_by(step).cloned().collect(),
        Route::Multi | Route::Blocking => key_positions(spec, args)
            .unwrap_or_default()
            .into_iter()
            .map(|i| args[i].clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// Runs one connection's batch on this shard's store, in order.
fn run_batch(dbs: &mut Databases, batch: &Batch) -> BatchReply {
    let now = now_ms();
    if batch.watch.as_ref().is_some_and(|w| watch::broken(w, now)) {
        return BatchReply::Aborted;
    }
    // One connection's failure stays its own: the other connections whose commands share
    // the message get their replies.
    let ran = catch_unwind(AssertUnwindSafe(|| {
        let mut out = Vec::new();
        let mut ends = Vec::with_capacity(batch.commands.len());
        for (db, resp3, args, spec) in &batch.commands {
            resp::set_protocol(*resp3);
            commands::run_in(dbs, *db, spec, args, now, &mut out);
            ends.push(out.len());
        }
        // After the connection's batch (a transaction runs as one).
        blocking::serve_ready(dbs, now);
        (out, ends)
    }));
    resp::set_protocol(false);
    match ran {
        Ok((out, ends)) => BatchReply::Ran(out, ends),
        Err(payload) => {
            let text = panic_text(&*payload);
            tracing::error!(
                shard = percore::mesh::shard_id(),
                "a command panicked: {text}; its connection gets an error, the shard goes on"
            );
            BatchReply::Panicked(text)
        }
    }
}

/// The batcher of one shard's calls to the owners of keys: runs every connection's batch
/// of an iteration on the owner's store, in order. A batch with a key locked by another
/// transaction (or wanted by an earlier waiter) is parked until its turn (see `txn`).
pub fn batcher(config: &crate::Config) -> CallBatcher<Batch, BatchReply> {
    let config = config.clone();
    CallBatcher::new(move |batches: Vec<Batch>| {
        let _ = shard::init(&config);
        batches
            .into_iter()
            .map(|batch| {
                if batch.release {
                    txn::release_here(batch.tx);
                    return BatchReply::Ran(Vec::new(), Vec::new());
                }
                if txn::active() {
                    let keys: Vec<Vec<u8>> = batch
                        .commands
                        .iter()
                        .flat_map(|(_, _, args, spec)| command_keys(spec, args))
                        .collect();
                    if !txn::free(batch.tx, &keys) {
                        let (reply, replied) = flume::bounded(1);
                        let config = config.clone();
                        txn::park(
                            batch.tx,
                            keys,
                            Box::new(move || {
                                let answer = with_dbs(&config, |dbs| run_batch(dbs, &batch));
                                let _ = reply.send(answer);
                            }),
                        );
                        return BatchReply::Parked(replied);
                    }
                }
                with_dbs(&config, |dbs| run_batch(dbs, &batch))
            })
            .collect()
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
    if persist::always() && !conn.wrote.is_empty() {
        let wrote = std::mem::take(&mut conn.wrote);
        persist::wait_durable(&conn.state.config, &wrote).await;
        conn.speak();
    }
    conn.wrote.clear();
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
        if conn.kill.is_killed() && !in_exec {
            // CLIENT KILL: nothing new starts (what runs finishes first).
            break;
        }
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
                run_segment(conn, std::mem::take(&mut segment), in_exec, out).await;
                let (mode, before) = (conn.reply, out.len());
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
                if !in_exec {
                    conn.reply_rule(mode, ReplyKind::Normal, out, before);
                }
                conn.speak();
            }
        }
    }
    run_segment(conn, segment, in_exec, out).await;
    conn.speak();
}

/// EXEC: runs the queued commands and answers them as one array, atomically: no other
/// client sees part of it.
///
/// When every key of the queued commands lives on one shard (and nothing is watched),
/// they go to it as one batch, which the shard runs without running anything else in
/// between. Otherwise the transaction first locks, in shard order, every key the queued
/// commands name and every watched key (the whole shard, on every shard, when a command
/// scans or flushes the keyspace), checks the watched keys, runs the commands through
/// the ordinary paths under its locks, and releases (see `txn`).
async fn exec(stream: &mut TcpStream, conn: &mut Conn, out: &mut Vec<u8>) {
    let Some(multi) = conn.multi.take() else {
        return resp::error(out, "ERR EXEC without MULTI");
    };
    let watching = conn.watching.take();
    if multi.failed {
        if let Some(w) = watching {
            watch::forget(conn, w);
        }
        return resp::error(
            out,
            "EXECABORT Transaction discarded because of previous errors.",
        );
    }
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut whole = false;
    for args in &multi.commands {
        let Some(spec) = crate::commands::table::lookup(&args[0]) else {
            continue;
        };
        if spec.route == Route::All && spec.cmd != Cmd::PubSubInfo {
            whole = true;
        }
        keys.extend(command_keys(spec, args));
    }
    if let Some(w) = &watching {
        keys.extend(w.keys().map(<[u8]>::to_vec));
    }
    let first = keys.first().map(|k| owner(k, conn.shards));
    let one_shard = keys.iter().all(|k| Some(owner(k, conn.shards)) == first);
    let count = multi.commands.len();
    let mut replies = Vec::new();
    if conn.kill.is_killed() {
        return resp::error(out, "ERR the client was killed");
    }
    // Watched, on one shard, and one batch (no command that runs apart): the watch is
    // checked inside the batch, on the shard, atomically with the commands.
    let one_batch = one_shard
        && !whole
        && multi.commands.iter().any(|args| {
            crate::commands::table::lookup(&args[0])
                .is_some_and(|spec| matches!(batch_target(conn, spec, args), Some(Some(_))))
        })
        && multi.commands.iter().all(|args| {
            crate::commands::table::lookup(&args[0])
                .is_some_and(|spec| batch_target(conn, spec, args).is_some())
        });
    if watching.is_none() && !whole && one_shard || watching.is_some() && one_batch {
        // A CLIENT KILL waits for the transaction's end.
        let _shield = conn.kill.shield();
        // Forgotten after the batch ran (a forget reaching the shard first would let a
        // write slip by unseen).
        conn.exec_watch = watching.as_ref().map(watch::Watching::check);
        conn.exec_aborted = false;
        Box::pin(run_commands(
            stream,
            conn,
            multi.commands,
            true,
            &mut replies,
        ))
        .await;
        conn.exec_watch = None;
        if let Some(w) = watching {
            watch::forget(conn, w);
        }
        if std::mem::take(&mut conn.exec_aborted) {
            return resp::null_array(out);
        }
    } else {
        let mut claims = txn::claims_of(keys.iter().map(Vec::as_slice), conn.shards);
        if whole {
            claims.iter_mut().for_each(|c| c.whole = true);
        }
        let locked = txn::Txn::begin(conn, claims).await;
        conn.speak();
        let txn = match locked {
            Ok(txn) => txn,
            Err(e) => {
                if let Some(w) = watching {
                    watch::forget(conn, w);
                }
                return resp::error(out, &e);
            }
        };
        if let Some(w) = watching {
            let dirty = w.dirty(now_ms());
            watch::forget(conn, w);
            if dirty {
                drop(txn);
                return resp::null_array(out);
            }
        }
        conn.tx = Some(txn.id);
        Box::pin(run_commands(
            stream,
            conn,
            multi.commands,
            true,
            &mut replies,
        ))
        .await;
        conn.tx = None;
        // Released in the background: the writes are all made; what waits for the
        // locks runs once the releases arrive.
        drop(txn);
    }
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
            if !matches!(spec.cmd, Cmd::Info | Cmd::Exec | Cmd::Watch | Cmd::Save)
                && !Conn::client_fanout(spec, args) =>
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
async fn run_segment(conn: &mut Conn, segment: Vec<Item>, in_exec: bool, out: &mut Vec<u8>) {
    if segment.is_empty() {
        return;
    }
    let tx = conn.tx.unwrap_or(0);
    let mut batches: Vec<Batch> = (0..conn.shards)
        .map(|_| Batch {
            tx,
            commands: Vec::new(),
            release: false,
            watch: None,
        })
        .collect();
    let mut order = Vec::with_capacity(segment.len());
    for item in segment {
        match item {
            Item::Shard(shard, db, resp3, args, spec) => {
                if spec.flags.contains(&"write") && !conn.wrote.contains(&shard) {
                    conn.wrote.push(shard);
                }
                batches[shard].commands.push((db, resp3, args, spec));
                order.push(Item::Shard(shard, db, resp3, Vec::new(), spec));
            }
            other => order.push(other),
        }
    }
    let mut calls: Vec<Call> = Vec::new();
    let mut shard_of_call = Vec::new();
    for (shard, batch) in batches.into_iter().enumerate() {
        if batch.commands.is_empty() {
            continue;
        }
        shard_of_call.push(shard);
        let mut batch = batch;
        if let Some(check) = conn.exec_watch.take() {
            batch.watch = Some(check);
        }
        let call = conn.state.batcher.call(shard, batch);
        calls.push(Box::pin(async move {
            match call.await? {
                BatchReply::Parked(replied) => {
                    replied.recv_async().await.map_err(|_| MeshError::Closed)
                }
                reply => Ok(reply),
            }
        }));
    }
    let results = join_all(calls).await;
    conn.speak();
    let mut replies: Vec<ShardReplies> = (0..conn.shards).map(|_| Err(String::new())).collect();
    for (shard, result) in shard_of_call.into_iter().zip(results) {
        replies[shard] = match result {
            Ok(BatchReply::Ran(bytes, ends)) => Ok(((bytes, ends), 0, 0)),
            Ok(BatchReply::Panicked(panic)) => {
                Err(format!("ERR command failed on shard {shard}: {panic}"))
            }
            Ok(BatchReply::Parked(_)) => Err(format!("ERR shard {shard}: a parked reply")),
            Ok(BatchReply::Aborted) => {
                conn.exec_aborted = true;
                Err(String::new())
            }
            // Stuck past the mesh timeout: a retryable error, never a hang.
            Err(MeshError::Unavailable(n)) => Err(format!("TRYAGAIN shard {n} is unavailable")),
            Err(e) => Err(format!("ERR shard {shard} unavailable: {e}")),
        };
    }
    for item in order {
        let (mode, before) = (conn.reply, out.len());
        let mut kind = ReplyKind::Normal;
        match item {
            Item::Reply(reply) => out.extend_from_slice(&reply),
            Item::Here(args, spec) => {
                if args.len() > 1 {
                    kind = ReplyKind::of(Some(spec), &args);
                }
                match spec.route {
                    Route::PubSub => subscription(conn, spec, &args, out),
                    _ => admin::connection_command(conn, spec, &args, out),
                }
            }
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
        // Inside EXEC the replies are the array's: CLIENT REPLY applies to EXEC's.
        if !in_exec {
            conn.reply_rule(mode, kind, out, before);
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
    if spec.flags.contains(&"write") {
        conn.wrote = (0..conn.shards).collect();
    }
    conn.speak();
    match spec.cmd {
        Cmd::Info => admin::info(conn, args, out).await,
        Cmd::Watch => watch::watch(conn, args, out).await,
        Cmd::Save => persist::command(conn, args, out).await,
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
