//! One client connection: the task that reads commands, answers them in order, and (in
//! subscribe mode) forwards pub/sub messages.
//!
//! Every command found in one read is answered in one send. Commands that can be answered
//! on this shard (its own keys, connection commands) are run inside the read, straight into
//! the output buffer. From the first command that needs another shard on, the rest of the
//! read's commands are deferred, in order, to [`route::run`], which runs them in batches
//! (one mesh message per shard) and writes every reply in order.

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use percore::{
    TcpStream,
    future::{Either, select},
    shutdown_requested, shutdown_signal,
    time::timeout,
};

use crate::{
    Config, admin, clients,
    commands::{
        self,
        table::{Cmd, Route, Spec, lookup, unknown_command, wrong_arity},
    },
    hash::owner,
    pubsub::{self, Outbox, Subscriptions},
    resp::{self, Parsed, Parser},
    route,
    shard::{self, ShardState, now_ms},
};

/// Deferred commands per read before the rest of the read waits for the next pass.
const MAX_DEFERRED: usize = 1024;
/// Output per read before the rest of the read waits for the next pass.
const MAX_PASS_OUTPUT: usize = 256 * 1024;
/// How long a closing connection waits for its last replies to leave.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// The state of one connection.
pub struct Conn {
    pub parser: Parser,
    pub state: Rc<ShardState>,
    pub shard: usize,
    pub shards: usize,
    pub id: u64,
    pub name: Option<Vec<u8>>,
    pub addr: String,
    pub subs: Subscriptions,
    /// The selected database (SELECT).
    pub db: usize,
    /// The protocol version the client chose with HELLO (2 or 3).
    pub resp: u8,
    /// Between MULTI and EXEC: the queued commands.
    pub multi: Option<Multi>,
    /// QUIT, a protocol error or a drain: answer what was read, then close.
    pub closing: bool,
    /// Nothing has come from the client yet. A graceful stop closes a connection idle
    /// between commands at once, but waits for the first command of a fresh one (accepted
    /// just before or during the stop, as in a hot restart: its client is about to send);
    /// the drain deadline bounds that wait.
    pub fresh: bool,
    /// While an EXEC runs under its locks: its transaction (see `txn`).
    pub tx: Option<crate::txn::TxId>,
    /// The keys WATCH watches (see `watch`).
    pub watching: Option<crate::watch::Watching>,
    /// CLIENT KILL's switch (a transaction shields itself from it while it runs).
    pub kill: Rc<clients::KillSwitch>,
    /// CLIENT REPLY ON|OFF|SKIP.
    pub reply: ReplyMode,
    /// A one-shard EXEC's watch, checked in its batch on the shard.
    pub exec_watch: Option<crate::watch::WatchCheck>,
    /// That check failed: the EXEC answers nil.
    pub exec_aborted: bool,
    /// Shards the commands of the current pass wrote on (under `appendfsync always`, the
    /// replies wait for their fsync).
    pub wrote: Vec<usize>,
}

/// CLIENT REPLY's mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// The next command's reply is dropped.
    Skip,
}

/// How a command stands to CLIENT REPLY.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Normal,
    /// CLIENT REPLY itself: answered only when it turns replies on.
    Switch,
    /// (P)SUBSCRIBE and (P)UNSUBSCRIBE: their confirmations are pushes, always sent.
    Push,
}

impl ReplyKind {
    pub fn of(spec: Option<&Spec>, args: &[Vec<u8>]) -> ReplyKind {
        match spec {
            Some(s) if s.cmd == Cmd::Client && args[1].eq_ignore_ascii_case(b"REPLY") => {
                ReplyKind::Switch
            }
            Some(s) if s.route == Route::PubSub && s.cmd != Cmd::Publish => ReplyKind::Push,
            _ => ReplyKind::Normal,
        }
    }
}

impl Conn {
    /// After a command whose reply starts at `before` in `out` (replies were in
    /// `mode` when it came): drops the reply when CLIENT REPLY says so.
    pub fn reply_rule(
        &mut self,
        mode: ReplyMode,
        kind: ReplyKind,
        out: &mut Vec<u8>,
        before: usize,
    ) {
        match kind {
            ReplyKind::Switch if self.reply != ReplyMode::On => out.truncate(before),
            ReplyKind::Switch => {}
            _ if mode == ReplyMode::On => {}
            ReplyKind::Push => {
                if self.reply == ReplyMode::Skip {
                    self.reply = ReplyMode::On;
                }
            }
            ReplyKind::Normal => {
                out.truncate(before);
                if self.reply == ReplyMode::Skip {
                    self.reply = ReplyMode::On;
                }
            }
        }
    }

    /// Encodes the next replies in this connection's protocol (see `resp::set_protocol`);
    /// called before replies are written after an `await`.
    pub fn speak(&self) {
        resp::set_protocol(self.resp == 3);
    }

    /// Copies what CLIENT LIST shows of this connection into this shard's registry.
    pub fn publish_state(&self) {
        clients::update(self.id, |e| {
            e.db = self.db;
            e.name.clone_from(&self.name);
            e.resp = self.resp;
            e.subscriptions = (self.subs.channels.len(), self.subs.patterns.len());
        });
    }

    /// Whether a CLIENT command must reach every shard (LIST, KILL, UNBLOCK).
    pub fn client_fanout(spec: &Spec, args: &[Vec<u8>]) -> bool {
        spec.cmd == Cmd::Client
            && matches!(
                args[1].to_ascii_uppercase().as_slice(),
                b"LIST" | b"KILL" | b"UNBLOCK"
            )
    }

    /// Counts a command that does not run on a store (those count themselves).
    pub fn count_command(&self) {
        self.state.commands.set(self.state.commands.get() + 1);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(watching) = self.watching.take() {
            crate::watch::forget(self, watching);
        }
        clients::unregister(self.id);
        let mut registry = self.state.pubsub.borrow_mut();
        for channel in &self.subs.channels {
            registry.unsubscribe(channel, self.id);
        }
        for pattern in &self.subs.patterns {
            registry.punsubscribe(pattern, self.id);
        }
        self.state.clients.set(self.state.clients.get() - 1);
    }
}

/// Serves one connection until it closes.
pub async fn handle(mut stream: TcpStream, config: Config) {
    let state = shard::init(&config);
    let shard = percore::mesh::shard_id();
    let shards = percore::mesh::shard_count();
    let seq = state.next_client.get();
    state.next_client.set(seq + 1);
    state.clients.set(state.clients.get() + 1);
    state
        .total_connections
        .set(state.total_connections.get() + 1);
    let kill = Rc::new(clients::KillSwitch::default());
    let mut conn = Conn {
        parser: Parser::new(config.limits.clone()),
        state,
        shard,
        shards,
        id: seq * shards as u64 + shard as u64 + 1,
        name: None,
        // The real client behind a trusted proxy (PROXY protocol), else the peer.
        addr: stream
            .client_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string()),
        subs: Subscriptions::default(),
        db: 0,
        resp: 2,
        multi: None,
        closing: false,
        fresh: true,
        tx: None,
        watching: None,
        kill: kill.clone(),
        wrote: Vec::new(),
        reply: ReplyMode::On,
        exec_watch: None,
        exec_aborted: false,
    };
    clients::register(
        conn.id,
        clients::Entry {
            addr: conn.addr.clone(),
            laddr: stream
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string()),
            name: None,
            db: 0,
            since: Instant::now(),
            subscriptions: (0, 0),
            resp: 2,
            kill: kill.clone(),
            unblock: None,
        },
    );
    let ending = match select(serve(&mut stream, &mut conn), kill.killed()).await {
        Either::Left(ending) => ending,
        // CLIENT KILL.
        Either::Right(()) => Ending::Abort,
    };
    // Subscriptions end with the connection's service, not after its last bytes leave.
    drop(conn);
    match ending {
        Ending::Flush if matches!(timeout(CLOSE_FLUSH, stream.flush()).await, Ok(Ok(()))) => {}
        _ => stream.abort(),
    }
}

/// How a connection ends.
enum Ending {
    /// Send what is written, then close.
    Flush,
    /// Close at once (a subscriber past its output limit will not read what is pending).
    Abort,
}

async fn serve(stream: &mut TcpStream, conn: &mut Conn) -> Ending {
    let watermark = 64 * 1024;
    let mut stalled_since: Option<Instant> = None;
    loop {
        if shutdown_requested() && conn.parser.is_idle() && !conn.fresh || conn.closing {
            return Ending::Flush;
        }
        if conn.kill.is_killed() {
            return Ending::Abort;
        }
        // A subscriber: move waiting messages into the socket while it keeps up.
        if let Some(outbox) = conn.subs.outbox.clone() {
            if outbox.borrow().overflowed {
                tracing::warn!(client = conn.id, "pub/sub output limit passed: closing");
                return Ending::Abort;
            }
            if !outbox.borrow().buf.is_empty() && stream.pending_output() < watermark {
                let bytes = std::mem::take(&mut outbox.borrow_mut().buf);
                if stream.write_buffered(&bytes).is_err() {
                    return Ending::Abort;
                }
            }
        }
        if stream.pending_output() >= watermark {
            // A client that does not read: wait for progress (messages pile up in the
            // outbox meanwhile, up to its limit), and drop it when there is none (R17).
            let since = *stalled_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= conn.state.config.write_timeout {
                tracing::warn!(client = conn.id, "no write progress: closing");
                return Ending::Abort;
            }
            match timeout(Duration::from_millis(100), stream.writable()).await {
                Ok(Ok(())) => stalled_since = None,
                Ok(Err(_)) => return Ending::Abort,
                Err(_) => {}
            }
            continue;
        }
        stalled_since = None;
        let subscribed = conn.subs.outbox.clone().filter(|_| conn.subs.active());
        let await_first = conn.fresh && shutdown_requested();
        let read = stream.respond_with(|input, out| serve_input(conn, input, out));
        let outcome = match subscribed {
            Some(outbox) => {
                match select(read, select(pubsub::ready(&outbox), shutdown_signal())).await {
                    Either::Left(result) => result,
                    Either::Right(_) => continue,
                }
            }
            // A fresh connection during a drain: its first command is awaited.
            _ if await_first => read.await,
            _ => match select(read, shutdown_signal()).await {
                Either::Left(result) => result,
                Either::Right(()) => continue,
            },
        };
        match outcome {
            Ok(Some(deferred)) => {
                if !deferred.commands.is_empty() {
                    route::run(stream, conn, deferred).await;
                }
            }
            Ok(None) => return Ending::Flush,
            Err(_) => return Ending::Abort,
        }
    }
}

/// A transaction being queued.
#[derive(Default)]
pub struct Multi {
    pub commands: Vec<Vec<Vec<u8>>>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub failed: bool,
}

/// The commands of one read that must run elsewhere, in order, and the protocol error
/// that ended the read, if any (answered after them).
#[derive(Default)]
pub struct Deferred {
    pub commands: Vec<Vec<Vec<u8>>>,
    pub protocol_error: Option<String>,
}

/// Answers what it can of `input` into `out`; returns the bytes consumed and what was
/// deferred to other shards.
fn serve_input(conn: &mut Conn, input: &[u8], out: &mut Vec<u8>) -> (usize, Deferred) {
    let mut consumed = 0;
    let mut deferred = Deferred::default();
    conn.fresh = false;
    conn.speak();
    while consumed < input.len()
        && !conn.kill.is_killed()
        && deferred.commands.len() < MAX_DEFERRED
        && out.len() < MAX_PASS_OUTPUT
    {
        let (n, parsed) = conn.parser.feed(&input[consumed..]);
        consumed += n;
        match parsed {
            Parsed::NeedMore => break,
            Parsed::Error(e) => {
                conn.closing = true;
                if deferred.commands.is_empty() {
                    resp::error(out, &e.message());
                } else {
                    // Answered after the deferred commands, in order.
                    deferred.protocol_error = Some(e.message());
                }
                return (input.len(), deferred);
            }
            Parsed::Command(args) => {
                // One lookup per command: it counts the command and is checked below.
                let spec = lookup(&args[0]);
                crate::stats::received(spec);
                if !deferred.commands.is_empty() {
                    deferred.commands.push(args);
                } else {
                    let (mode, before) = (conn.reply, out.len());
                    let kind = if args.len() > 1 {
                        ReplyKind::of(spec, &args)
                    } else {
                        ReplyKind::Normal
                    };
                    match run_here(conn, args, spec, out) {
                        Some(args) => deferred.commands.push(args),
                        None => conn.reply_rule(mode, kind, out, before),
                    }
                }
                if conn.closing {
                    return (input.len(), deferred);
                }
            }
        }
    }
    (consumed, deferred)
}

/// What kind of command this is for the connection, after the checks every command gets.
pub enum Checked {
    /// Answered already (an error, or a reply needing nothing else).
    Answered,
    Run(&'static Spec),
}

/// Looks the command up and checks its arity and the subscribe-mode rule, writing the
/// error if any.
pub fn check(conn: &mut Conn, args: &[Vec<u8>], out: &mut Vec<u8>) -> Checked {
    check_spec(conn, lookup(&args[0]), args, out)
}

/// [`check`] for a command already looked up (`spec`: what `args[0]` named, if anything).
fn check_spec(
    conn: &mut Conn,
    spec: Option<&'static Spec>,
    args: &[Vec<u8>],
    out: &mut Vec<u8>,
) -> Checked {
    let Some(spec) = spec else {
        resp::error(out, &unknown_command(args));
        if let Some(multi) = &mut conn.multi {
            multi.failed = true;
        }
        return Checked::Answered;
    };
    if !spec.arity_ok(args.len()) {
        resp::error(out, &wrong_arity(spec.name));
        if let Some(multi) = &mut conn.multi {
            multi.failed = true;
        }
        return Checked::Answered;
    }
    if let Some(multi) = &mut conn.multi
        && !matches!(
            spec.cmd,
            Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Quit | Cmd::Reset | Cmd::Watch
        )
    {
        multi.commands.push(args.to_vec());
        resp::simple(out, "QUEUED");
        return Checked::Answered;
    }
    if conn.subs.active()
        && !matches!(
            spec.cmd,
            Cmd::Subscribe
                | Cmd::Unsubscribe
                | Cmd::PSubscribe
                | Cmd::PUnsubscribe
                | Cmd::Ping
                | Cmd::Quit
        )
    {
        resp::error(
            out,
            &format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ),
        );
        return Checked::Answered;
    }
    Checked::Run(spec)
}

/// Runs a command on this shard if it can be answered here; gives it back otherwise.
fn run_here(
    conn: &mut Conn,
    args: Vec<Vec<u8>>,
    spec: Option<&'static Spec>,
    out: &mut Vec<u8>,
) -> Option<Vec<Vec<u8>>> {
    let spec = match check_spec(conn, spec, &args, out) {
        Checked::Answered => return None,
        Checked::Run(spec) => spec,
    };
    let local = match spec.route {
        Route::Key => owner(&args[1], conn.shards) == conn.shard,
        Route::Keys { step } => args[1..]
            .iter()
            .step_by(step)
            .all(|key| owner(key, conn.shards) == conn.shard),
        Route::Multi => matches!(
            route::multi_owner(conn, spec, &args),
            route::MultiOwner::One(shard) if shard == conn.shard
        ),
        Route::Conn => {
            !matches!(spec.cmd, Cmd::Info | Cmd::Exec | Cmd::Watch | Cmd::Save)
                && !Conn::client_fanout(spec, &args)
        }
        Route::PubSub => spec.cmd != Cmd::Publish,
        Route::All | Route::Blocking => false,
    };
    // A key locked by a transaction (or wanted by an earlier waiter): the command goes
    // the batched way, which waits for its turn on this shard.
    // Under `appendfsync always` a write's reply waits for its fsync: the batched way.
    if !local
        || crate::persist::always() && spec.flags.contains(&"write")
        || crate::txn::active() && !crate::txn::free(0, &route::command_keys(spec, &args))
    {
        return Some(args);
    }
    match spec.route {
        Route::Key | Route::Keys { .. } | Route::Multi => {
            let mut dbs = conn.state.dbs.borrow_mut();
            let now = now_ms();
            commands::run_in(&mut dbs, conn.db, spec, &args, now, out);
            crate::blocking::serve_ready(&mut dbs, now);
        }
        Route::PubSub => subscription(conn, spec, &args, out),
        _ => admin::connection_command(conn, spec, &args, out),
    }
    None
}

/// SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE: this connection's subscriptions, in
/// this shard's registry.
pub fn subscription(conn: &mut Conn, spec: &Spec, args: &[Vec<u8>], out: &mut Vec<u8>) {
    conn.count_command();
    let outbox = conn
        .subs
        .outbox
        .get_or_insert_with(|| Outbox::new(conn.state.config.pubsub_output_limit))
        .clone();
    // Messages that arrived before this command go out before its replies.
    out.append(&mut outbox.borrow_mut().buf);
    let mut registry = conn.state.pubsub.borrow_mut();
    let subs = &mut conn.subs;
    let id = conn.id;
    match spec.cmd {
        Cmd::Subscribe => {
            for channel in &args[1..] {
                if !subs.channels.contains(channel) {
                    subs.channels.push(channel.clone());
                    registry.subscribe(channel, id, &outbox);
                }
                pubsub::write_ack(out, b"subscribe", Some(channel), subs.count());
            }
        }
        Cmd::PSubscribe => {
            for pattern in &args[1..] {
                if !subs.patterns.contains(pattern) {
                    subs.patterns.push(pattern.clone());
                    registry.psubscribe(pattern, id, &outbox);
                }
                pubsub::write_ack(out, b"psubscribe", Some(pattern), subs.count());
            }
        }
        Cmd::Unsubscribe | Cmd::PUnsubscribe => {
            let patterns = spec.cmd == Cmd::PUnsubscribe;
            let kind: &[u8] = if patterns {
                b"punsubscribe"
            } else {
                b"unsubscribe"
            };
            let names: Vec<Vec<u8>> = if args.len() > 1 {
                args[1..].to_vec()
            } else if patterns {
                subs.patterns.clone()
            } else {
                subs.channels.clone()
            };
            if names.is_empty() {
                pubsub::write_ack(out, kind, None, subs.count());
            }
            for name in &names {
                if patterns {
                    subs.patterns.retain(|p| p != name);
                    registry.punsubscribe(name, id);
                } else {
                    subs.channels.retain(|c| c != name);
                    registry.unsubscribe(name, id);
                }
                pubsub::write_ack(out, kind, Some(name), subs.count());
            }
        }
        _ => {}
    }
    conn.publish_state();
}

/// The reply of PING: `+PONG`, its argument, or in subscribe mode `[pong, arg]`.
pub fn ping(conn: &Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    if conn.subs.active() {
        resp::array(out, 2);
        resp::bulk(out, b"pong");
        resp::bulk(out, args.get(1).map_or(&b""[..], |a| a));
        return;
    }
    match args.get(1) {
        Some(arg) => resp::bulk(out, arg),
        None => resp::simple(out, "PONG"),
    }
}
