//! Commands that touch several shards: multi-key commands whose keys have different owners
//! (DEL, EXISTS, MGET, MSET: locked, split by owner, one mesh call per shard, merged in key
//! order),
//! fan-outs to every shard (KEYS, SCAN, DBSIZE, FLUSHALL) and PUBLISH.

use std::{future::Future, pin::Pin};

use percore::mesh::{MeshError, submit_to};

use crate::{
    blocking,
    commands::{
        self, keys,
        table::{Cmd, SYNTAX, Spec},
    },
    conn::Conn,
    hash::owner,
    persist, resp,
    route::join_all,
    shard::{self, now_ms, with_dbs},
    store::{Databases, Entry, SLOTS},
    txn, watch,
};

type Call<T> = Pin<Box<dyn Future<Output = Result<T, MeshError>>>>;

/// One shard's part of a multi-key command: counts, values, and whether it refused (OOM).
type Part = (Vec<i64>, Vec<Option<Vec<u8>>>, bool);

/// Runs `f` on every shard concurrently; results in shard order.
async fn on_every_shard<T, F>(conn: &Conn, f: F) -> Result<Vec<T>, MeshError>
where
    T: Send + 'static,
    F: Fn(&mut crate::store::Databases) -> T + Send + Sync + Clone + 'static,
{
    let calls: Vec<Call<T>> = (0..conn.shards)
        .map(|shard| {
            let f = f.clone();
            let config = conn.state.config.clone();
            Box::pin(submit_to(shard, move || with_dbs(&config, |dbs| f(dbs)))) as Call<T>
        })
        .collect();
    join_all(calls).await.into_iter().collect()
}

fn mesh_error(out: &mut Vec<u8>, e: &MeshError) {
    match e {
        MeshError::Unavailable(n) => {
            resp::error(out, &format!("TRYAGAIN shard {n} is unavailable"))
        }
        e => resp::error(out, &format!("ERR a shard is unavailable: {e}")),
    }
}

/// DEL, EXISTS, MGET, MSET with keys on several shards: the keys are locked first (see
/// `txn`), then each shard runs its part, then the locks are released.
pub async fn multi_key(conn: &Conn, spec: &'static Spec, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let step = if spec.cmd == Cmd::Mset { 2 } else { 1 };
    if spec.cmd == Cmd::Mset && args.len().is_multiple_of(2) {
        return resp::error(out, &crate::commands::table::wrong_arity(spec.name));
    }
    // Per shard: the argument groups it owns, and each group's index among the keys.
    let mut groups: Vec<(Vec<Vec<u8>>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); conn.shards];
    for (i, group) in args[1..].chunks(step).enumerate() {
        let shard = owner(&group[0], conn.shards);
        groups[shard].0.extend(group.iter().cloned());
        groups[shard].1.push(i);
    }
    let cmd = spec.cmd;
    // Atomic across shards: every key locked first (see `txn`), so no other client sees
    // one shard's part before another's.
    let claims = txn::claims_of(
        args[1..].iter().step_by(step).map(Vec::as_slice),
        conn.shards,
    );
    let txn = match txn::Txn::begin(conn, claims).await {
        Ok(txn) => txn,
        Err(e) => {
            conn.speak();
            return resp::error(out, &e);
        }
    };
    let mut calls: Vec<Call<Part>> = Vec::new();
    let mut placed = Vec::new();
    for (shard, (group, indices)) in groups.into_iter().enumerate() {
        if indices.is_empty() {
            continue;
        }
        placed.push(indices);
        let config = conn.state.config.clone();
        let db = conn.db;
        calls.push(Box::pin(submit_to(shard, move || {
            with_dbs(&config, |dbs| {
                let now = now_ms();
                let over_limit = dbs.over_limit();
                let store = dbs.db(db);
                store.stats.commands += 1;
                if cmd == Cmd::Del || cmd == Cmd::Mset && !over_limit {
                    for key in group.iter().step_by(step) {
                        watch::touch(db, key);
                        persist::note(db, key);
                        if crate::notify::on()
                            && (cmd == Cmd::Mset || store.peek(key, now).is_some())
                        {
                            let (event, class) = if cmd == Cmd::Mset {
                                (&b"set"[..], crate::notify::STRING)
                            } else {
                                (&b"del"[..], crate::notify::GENERIC)
                            };
                            crate::notify::keyspace(db, event, key, class);
                        }
                    }
                }
                match cmd {
                    Cmd::Del => (vec![keys::del(store, &group, now)], Vec::new(), false),
                    Cmd::Exists => (vec![keys::exists(store, &group, now)], Vec::new(), false),
                    Cmd::Mget => (Vec::new(), crate::commands::mget(store, &group, now), false),
                    _ if over_limit => (Vec::new(), Vec::new(), true),
                    _ => {
                        crate::commands::mset(store, &group);
                        (Vec::new(), Vec::new(), false)
                    }
                }
            })
        })));
    }
    let results = join_all(calls).await;
    drop(txn);
    conn.speak();
    let mut total = 0;
    let mut values: Vec<Option<Vec<u8>>> = vec![None; (args.len() - 1) / step];
    let mut oom = false;
    for (result, indices) in results.into_iter().zip(placed) {
        match result {
            Ok((counts, found, refused)) => {
                total += counts.iter().sum::<i64>();
                oom |= refused;
                for (value, i) in found.into_iter().zip(indices) {
                    values[i] = value;
                }
            }
            Err(e) => return mesh_error(out, &e),
        }
    }
    match cmd {
        Cmd::Del | Cmd::Exists => resp::integer(out, total),
        Cmd::Mget => {
            resp::array(out, values.len());
            for value in &values {
                match value {
                    Some(v) => resp::bulk(out, v),
                    None => resp::null(out),
                }
            }
        }
        _ if oom => resp::error(out, crate::commands::table::OOM),
        _ => resp::ok(out),
    }
}

/// KEYS, SCAN, DBSIZE, FLUSHALL/FLUSHDB on every shard.
pub async fn all_shards(conn: &Conn, spec: &'static Spec, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let db = conn.db;
    match spec.cmd {
        Cmd::Keys => {
            let pattern = args[1].clone();
            let db = conn.db;
            match on_every_shard(conn, move |dbs| keys::keys(dbs.db(db), &pattern, now_ms())).await
            {
                Ok(per_shard) => {
                    resp::array(out, per_shard.iter().map(Vec::len).sum());
                    for key in per_shard.iter().flatten() {
                        resp::bulk(out, key);
                    }
                }
                Err(e) => mesh_error(out, &e),
            }
        }
        Cmd::DbSize => {
            match on_every_shard(conn, move |dbs| dbs.existing(db).map_or(0, |s| s.len())).await {
                Ok(sizes) => resp::integer(out, sizes.iter().sum::<usize>() as i64),
                Err(e) => mesh_error(out, &e),
            }
        }
        Cmd::FlushAll | Cmd::FlushDb => {
            if args.len() > 2
                || args.get(1).is_some_and(|a| {
                    !a.eq_ignore_ascii_case(b"async") && !a.eq_ignore_ascii_case(b"sync")
                })
            {
                return resp::error(out, SYNTAX);
            }
            let all = spec.cmd == Cmd::FlushAll;
            let txn = match lock_every_shard(conn).await {
                Ok(txn) => txn,
                Err(e) => return resp::error(out, &e),
            };
            let flushed = on_every_shard(conn, move |dbs| {
                watch::touch_existing(dbs, (!all).then_some(db));
                persist::note_special(dbs, (!all).then_some(db), None);
                if all {
                    dbs.iter_mut().for_each(|s| s.clear());
                } else {
                    dbs.db(db).clear();
                }
            });
            let flushed = flushed.await;
            drop(txn);
            conn.speak();
            match flushed {
                Ok(_) => resp::ok(out),
                Err(e) => mesh_error(out, &e),
            }
        }
        Cmd::Scan => scan(conn, args, out).await,
        Cmd::RandomKey => random_key(conn, out).await,
        Cmd::PubSubInfo => pubsub_info(conn, args, out).await,
        Cmd::SlowLog => crate::admin::slowlog(conn, args, out).await,
        Cmd::SwapDb => {
            let index = |arg: &[u8], which: &str| match crate::resp::parse_int(arg) {
                None => Err(format!("ERR invalid {which} DB index")),
                Some(n) if (0..crate::store::DATABASES as i64).contains(&n) => Ok(n as usize),
                Some(_) => Err("ERR DB index is out of range".to_string()),
            };
            let (a, b) = match (index(&args[1], "first"), index(&args[2], "second")) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return resp::error(out, &e),
            };
            let txn = match lock_every_shard(conn).await {
                Ok(txn) => txn,
                Err(e) => return resp::error(out, &e),
            };
            let swapped = on_every_shard(conn, move |dbs| {
                watch::touch_existing(dbs, Some(a));
                watch::touch_existing(dbs, Some(b));
                persist::note_special(dbs, None, Some((a, b)));
                dbs.swap(a, b);
                watch::touch_existing(dbs, Some(a));
                watch::touch_existing(dbs, Some(b));
            })
            .await;
            drop(txn);
            conn.speak();
            match swapped {
                Ok(_) => resp::ok(out),
                Err(e) => mesh_error(out, &e),
            }
        }
        _ => resp::error(out, "ERR internal: not a fan-out command"),
    }
}

/// Locks every shard whole (FLUSHALL, FLUSHDB, SWAPDB): they wait for the transactions
/// running, and what comes after them waits for them.
async fn lock_every_shard(conn: &Conn) -> Result<txn::Txn, String> {
    let claims = (0..conn.shards)
        .map(|_| txn::Claim {
            keys: Vec::new(),
            whole: true,
        })
        .collect();
    let locked = txn::Txn::begin(conn, claims).await;
    conn.speak();
    locked
}

/// SCAN across shards. The cursor encodes the shard and the position in it:
/// `cursor = position × shards + shard`; 0 starts at shard 0 and means done. The position
/// is a slot of that shard's store (below [`SLOTS`]), so a cursor stays below
/// `SLOTS × shards`, far inside the i64 the reply carries. A cursor whose position is
/// past the last slot (one this server never handed out) finds that shard done: the
/// reply has no keys and the cursor of the next shard (0 after the last), as a shard that
/// finished would; Redis, too, answers a made-up cursor without an error.
async fn scan(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let (cursor, opts) = match keys::scan_options(args) {
        Ok(parsed) => parsed,
        Err(e) => return resp::error(out, &e),
    };
    let shards = conn.shards as u64;
    let (shard, position) = ((cursor % shards) as usize, (cursor / shards) as usize);
    let config = conn.state.config.clone();
    let db = conn.db;
    let result = submit_to(shard, move || {
        with_dbs(&config, |dbs| {
            keys::scan(dbs.db(db), position, &opts, now_ms())
        })
    })
    .await;
    let (found, next) = match result {
        Ok(r) => r,
        Err(e) => return mesh_error(out, &e),
    };
    let next_cursor = if next != 0 {
        debug_assert!(next < SLOTS);
        next as u64 * shards + shard as u64
    } else if shard + 1 < conn.shards {
        shard as u64 + 1
    } else {
        0
    };
    resp::array(out, 2);
    resp::bulk_int(out, next_cursor as i64);
    resp::array(out, found.len());
    for key in &found {
        resp::bulk(out, key);
    }
}

/// PUBLISH channel message: runs on the channel's owner shard, which delivers to its own
/// subscribers and sends the message on to every other shard (in order, through the mesh);
/// the reply is the sum of every shard's receivers.
pub async fn publish(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let channel = args[1].clone();
    let message = args[2].clone();
    let config = conn.state.config.clone();
    let shards = conn.shards;
    let owner_shard = owner(&channel, shards);
    let started = submit_to(owner_shard, move || {
        let here = percore::mesh::shard_id();
        let local = shard::init(&config)
            .pubsub
            .borrow()
            .deliver(&channel, &message);
        let mut waits = Vec::new();
        for target in (0..shards).filter(|&t| t != here) {
            let (tx, rx) = flume::bounded(1);
            let (channel, message, config) = (channel.clone(), message.clone(), config.clone());
            let deliver = move || {
                let n = shard::init(&config)
                    .pubsub
                    .borrow()
                    .deliver(&channel, &message);
                let _ = tx.send(n);
            };
            match percore::mesh::try_send_to(target, deliver.clone()) {
                Ok(()) => {}
                // A full inbox: wait for room in a task (the order of this one message
                // relative to later ones is then no longer guaranteed).
                Err(MeshError::Full) => {
                    percore::spawn(async move {
                        let _ = percore::mesh::send_to(target, deliver).await;
                    });
                }
                Err(_) => continue,
            }
            waits.push(rx);
        }
        (local, waits)
    })
    .await;
    let (local, waits) = match started {
        Ok(r) => r,
        Err(e) => return mesh_error(out, &e),
    };
    let mut receivers = local;
    for rx in waits {
        receivers += rx.recv_async().await.unwrap_or(0);
    }
    resp::integer(out, receivers as i64);
}

/// Keys and their entries (`None`: no such key).
type KeyEntries = Vec<(Vec<u8>, Option<Entry>)>;

/// A command whose keys (`keys`) all live on `shard`: runs there, whole, once its keys are
/// not locked by a transaction. `then` gets its reply there, right after it ran, and may
/// change it: what it does is atomic with the command (the blocking pops queue their
/// waiter in it when the command found nothing).
pub async fn on_owner(
    conn: &Conn,
    spec: &'static Spec,
    args: &[Vec<u8>],
    shard: usize,
    keys: Vec<Vec<u8>>,
    then: impl FnOnce(&mut Vec<u8>) + Send + 'static,
    out: &mut Vec<u8>,
) {
    let (db, resp3) = (conn.db, conn.resp == 3);
    let config = conn.state.config.clone();
    let args = args.to_vec();
    let work_config = config.clone();
    let tx = conn.tx.unwrap_or(0);
    let result = txn::run_when_free(&config, shard, tx, keys, move || {
        with_dbs(&work_config, |dbs| {
            let mut reply = Vec::new();
            resp::set_protocol(resp3);
            let now = now_ms();
            commands::run_in(dbs, db, spec, &args, now, &mut reply);
            resp::set_protocol(false);
            blocking::serve_ready(dbs, now);
            then(&mut reply);
            reply
        })
    })
    .await;
    match result {
        Ok(reply) => out.extend_from_slice(&reply),
        Err(e) => mesh_error(out, &e),
    }
}

/// A command over several keys (`Route::Multi`, and the steps of the blocking pops) with
/// its keys at `positions`. On one shard it runs there, whole (once its keys are not
/// locked by a transaction). Across shards it is gathered under locks: the keys are
/// locked on their owners (see `txn`), their entries are copied into a scratch store, the
/// command runs there, every entry it changed is written back to its owner, and the
/// locks are released; nobody sees or writes the keys in between.
pub async fn gathered(
    conn: &Conn,
    spec: &'static Spec,
    args: &[Vec<u8>],
    positions: &[usize],
    out: &mut Vec<u8>,
) {
    let db = conn.db;
    let config = conn.state.config.clone();
    let shards = conn.shards;
    let mut per_shard: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shards];
    for &i in positions {
        let shard = owner(&args[i], shards);
        if !per_shard[shard].contains(&args[i]) {
            per_shard[shard].push(args[i].clone());
        }
    }
    let used: Vec<usize> = (0..shards).filter(|&s| !per_shard[s].is_empty()).collect();
    if used.len() <= 1 {
        let shard = used.first().copied().unwrap_or(conn.shard);
        let keys = used
            .first()
            .map(|&s| std::mem::take(&mut per_shard[s]))
            .unwrap_or_default();
        return on_owner(conn, spec, args, shard, keys, |_| {}, out).await;
    }
    // Atomic across shards: the keys locked for the read, the run and the write back.
    let claims = (0..shards)
        .map(|s| txn::Claim {
            keys: per_shard[s].clone(),
            whole: false,
        })
        .collect();
    let txn = match txn::Txn::begin(conn, claims).await {
        Ok(txn) => txn,
        Err(e) => {
            conn.speak();
            return resp::error(out, &e);
        }
    };
    let now = now_ms();
    let calls: Vec<Call<KeyEntries>> = used
        .iter()
        .map(|&shard| {
            let keys = std::mem::take(&mut per_shard[shard]);
            let config = config.clone();
            Box::pin(submit_to(shard, move || {
                with_dbs(&config, |dbs| {
                    let store = dbs.db(db);
                    keys.into_iter()
                        .map(|k| {
                            let entry = store.get(&k, now).cloned();
                            (k, entry)
                        })
                        .collect()
                })
            })) as Call<_>
        })
        .collect();
    let mut before = Vec::new();
    for (result, &shard) in join_all(calls).await.into_iter().zip(&used) {
        match result {
            Ok(entries) => before.extend(entries.into_iter().map(|(k, e)| (shard, k, e))),
            Err(e) => return mesh_error(out, &e),
        }
    }
    let mut scratch = Databases::new(None);
    for (_, key, entry) in &before {
        if let Some(entry) = entry {
            scratch.db(db).insert(key, entry.clone());
        }
    }
    conn.count_command();
    conn.speak();
    commands::run_in(&mut scratch, db, spec, args, now, out);
    let mut writes: Vec<Vec<(Vec<u8>, Option<Entry>)>> = vec![Vec::new(); shards];
    // COPY ... DB n writes into another database: what landed there is written as is.
    let mut other_dbs: Vec<Vec<(usize, Vec<u8>, Entry)>> = vec![Vec::new(); shards];
    for (index, other) in scratch.iter().filter(|(i, _)| *i != db) {
        for (shard, key, _) in &before {
            if let Some(entry) = other.peek(key, now) {
                other_dbs[*shard].push((index, key.clone(), entry.clone()));
            }
        }
    }
    for (shard, key, old) in before {
        let new = scratch.db(db).get(&key, now).cloned();
        if new != old {
            writes[shard].push((key, new));
        }
    }
    let calls: Vec<Call<()>> = writes
        .into_iter()
        .enumerate()
        .zip(other_dbs)
        .filter(|((_, w), o)| !w.is_empty() || !o.is_empty())
        .map(|((shard, writes), other_dbs)| {
            let config = config.clone();
            Box::pin(submit_to(shard, move || {
                with_dbs(&config, |dbs| {
                    for (index, key, entry) in other_dbs {
                        persist::note(index, &key);
                        dbs.db(index).insert(&key, entry);
                    }
                    let store = dbs.db(db);
                    let now = now_ms();
                    for (key, entry) in &writes {
                        watch::touch(db, key);
                        persist::note(db, key);
                        store.remove(key);
                        if let Some(entry) = entry {
                            store.insert(key, entry.clone());
                        }
                    }
                    if blocking::any_waiters() {
                        for (key, _) in &writes {
                            blocking::fed(store, db, key, now);
                        }
                    }
                })
            })) as Call<()>
        })
        .collect();
    for result in join_all(calls).await {
        if let Err(e) = result {
            tracing::warn!("a cross-shard command's write back failed: {e}");
        }
    }
    drop(txn);
}

/// RANDOMKEY: a random key of a random shard that has keys in the database (null when
/// the database is empty); tries each shard at most once.
async fn random_key(conn: &Conn, out: &mut Vec<u8>) {
    let db = conn.db;
    let counts =
        match on_every_shard(conn, move |dbs| dbs.existing(db).map_or(0, |s| s.len())).await {
            Ok(c) => c,
            Err(e) => return mesh_error(out, &e),
        };
    let total: usize = counts.iter().sum();
    if total == 0 {
        return resp::null(out);
    }
    // A shard picked in proportion to its keys, so every key is about equally likely.
    let mut pick = commands::random_below(total);
    let shard = counts
        .iter()
        .position(|&n| {
            if pick < n {
                true
            } else {
                pick -= n;
                false
            }
        })
        .unwrap_or(0);
    let config = conn.state.config.clone();
    let found = submit_to(shard, move || {
        with_dbs(&config, |dbs| dbs.db(db).random_key(now_ms()))
    })
    .await;
    conn.speak();
    match found {
        Ok(Some(key)) => resp::bulk(out, &key),
        Ok(None) => resp::null(out),
        Err(e) => mesh_error(out, &e),
    }
}

/// PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT, over every shard's
/// subscribers.
async fn pubsub_info(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    let valid = match sub.as_slice() {
        b"CHANNELS" => args.len() <= 3,
        b"NUMSUB" => true,
        b"NUMPAT" => args.len() == 2,
        _ => false,
    };
    if !valid {
        return resp::error(
            out,
            &format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&args[1])
            ),
        );
    }
    let args = args.to_vec();
    let config = conn.state.config.clone();
    // Per shard: channel or pattern names, and subscriber counts.
    type Answer = (Vec<Vec<u8>>, Vec<usize>);
    let calls: Vec<Call<Answer>> = (0..conn.shards)
        .map(|shard| {
            let (args, config, sub) = (args.clone(), config.clone(), sub.clone());
            Box::pin(submit_to(shard, move || {
                let state = shard::init(&config);
                let registry = state.pubsub.borrow();
                match sub.as_slice() {
                    b"CHANNELS" => (
                        registry.channel_names(args.get(2).map(Vec::as_slice)),
                        Vec::new(),
                    ),
                    b"NUMSUB" => (
                        Vec::new(),
                        args[2..].iter().map(|c| registry.numsub(c)).collect(),
                    ),
                    _ => (registry.pattern_names(), Vec::new()),
                }
            })) as Call<_>
        })
        .collect();
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut counts = vec![0usize; args.len().saturating_sub(2)];
    for result in join_all(calls).await {
        match result {
            Ok((n, c)) => {
                names.extend(n);
                for (total, c) in counts.iter_mut().zip(c) {
                    *total += c;
                }
            }
            Err(e) => return mesh_error(out, &e),
        }
    }
    conn.speak();
    names.sort();
    names.dedup();
    match sub.as_slice() {
        b"CHANNELS" => {
            resp::array(out, names.len());
            for name in &names {
                resp::bulk(out, name);
            }
        }
        b"NUMSUB" => {
            resp::map(out, counts.len());
            for (channel, n) in args[2..].iter().zip(counts) {
                resp::bulk(out, channel);
                resp::integer(out, n as i64);
            }
        }
        _ => resp::integer(out, names.len() as i64),
    }
}
