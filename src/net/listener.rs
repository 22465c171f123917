//! Listeners: a few accepts in flight per listener, accepted sockets queued for `accept()`.
//!
//! The queue is bounded exactly (`NetConfig::accept_queue_max`, R11): a listener never has
//! more accepts in flight than its queue has room for, and each accept takes one connection,
//! so queued plus in flight never passes the max; beyond it clients wait in the kernel's
//! listen backlog. (A multishot accept cannot be bounded so: one wake-up accepts everything
//! the backlog holds.) Up to [`ACCEPT_DEPTH`] accepts are in flight, re-armed as each
//! completes, whatever its result: an accept that ends without a connection (cancelled, a
//! transient error) is re-armed at once (R6).
//!
//! `EMFILE`/`ENFILE` (no descriptor left): the listener waits `accept_backoff` before
//! accepting again, with one accept until one succeeds, instead of spinning on an error the
//! kernel will repeat, and logs at most once a second (R10).
//!
//! Steering (see `steer`): every listener is registered with the shared steering state (a
//! duplicate of its fd), so the stall detector can take connections queued on it while its
//! shard is stalled, and, in `balanced` mode, an accepted socket is placed on the
//! least-loaded shard listening on the same address, crossing as a mesh message.

use std::{
    collections::VecDeque,
    future::poll_fn,
    io,
    net::SocketAddr,
    os::fd::{AsRawFd, OwnedFd},
    rc::Rc,
    sync::{Arc, Mutex},
    task::{Poll, Waker},
    time::Instant,
};

use super::{
    NET, NetShard, caps,
    dispatch::{arm_recv, errno},
    stream::TcpStream,
};
use crate::{
    driver::{
        Completion, Kind, Token,
        uring::op::{Accept, CancelAll, Close},
    },
    slab::{Key, Slab},
    sys::{
        socket::{ListenOptions, local_addr, probe_unlistened, set_nodelay, tcp_listener},
        steer::{accept_now, poll_readable, set_accept_timeout},
    },
    task::coop,
};

/// Accepts a listener keeps in flight while its queue has room: connections taken per loop
/// iteration in a burst.
pub(crate) const ACCEPT_DEPTH: usize = 8;

pub(crate) struct ListenerState {
    fd: Option<OwnedFd>,
    addr: SocketAddr,
    /// Accepts submitted whose completion has not come back; queued + in flight never
    /// passes `accept_queue_max` (handed-over connections aside, see `deliver_here`).
    in_flight: usize,
    closing: bool,
    /// The `TcpListener` handle is gone; the slot is freed after the last accept CQE.
    dropped: bool,
    cancel_sent: bool,
    backing_off: bool,
    /// After `EMFILE`/`ENFILE`: one accept at a time until one succeeds.
    probing: bool,
    /// Accepting is paused at a connection cap (counted once per pause).
    at_cap: bool,
    queue: VecDeque<OwnedFd>,
    waker: Option<Waker>,
    last_fd_warning: Option<Instant>,
    /// Its entry in the shared steering registry.
    registration: Option<u64>,
}

/// The shard's listeners, keyed like their accept tokens.
#[derive(Default)]
pub(crate) struct ListenerTable {
    listeners: Slab<ListenerState>,
}

fn token_of(key: Key) -> Token {
    Token::new(Kind::Accept, key.index(), key.generation())
}

fn key_of(token: Token) -> Key {
    Key::from_parts(token.index(), token.generation())
}

impl ListenerTable {
    fn get_mut(&mut self, token: Token) -> Option<&mut ListenerState> {
        self.listeners.get_mut(key_of(token))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    fn tokens(&self) -> Vec<Token> {
        self.listeners.keys().into_iter().map(token_of).collect()
    }
}

/// A TCP listener owned by the current shard. Bind the same address on every shard (the
/// socket is SO_REUSEPORT) and the kernel spreads new connections across them.
pub struct TcpListener {
    net: Rc<NetShard>,
    token: Token,
    addr: SocketAddr,
}

impl TcpListener {
    /// Binds `addr` (SO_REUSEPORT, backlog from the shard's `NetConfig`) and starts accepting.
    ///
    /// The shards of one server share the address (each calls `bind`, the kernel spreads
    /// connections over their sockets). The first shard's bind fails with `AddrInUse`,
    /// naming the address, when a socket outside this server already listens on it,
    /// unless [`NetConfig::reuse_port_shared`](super::NetConfig::reuse_port_shared) is on.
    /// Called while the shard starts (`start`'s setup, the init hook), it first waits up to
    /// 2 s for a listener of a process that just ended to go away (see `bind_listeners`);
    /// called from a running task, it does not wait. That includes a listener of this server
    /// just dropped on another shard: its socket is closed through the driver once its
    /// accepts in flight have ended (an iteration or two), and a running task's bind of
    /// the same address before that fails with `AddrInUse`; keep a listener until the
    /// others are bound.
    ///
    /// # Panics
    /// Off a shard.
    #[track_caller]
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let net = NET.current();
        let _serial = net
            .steer
            .bind_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let fd = if net.steer.listens_on(addr) {
            tcp_listener(addr, &listen_options(&net.config))?
        } else {
            // A shard that serves already does not wait for a listener to go away (that
            // would stall it); one still starting (its setup, the init hook) does.
            let patience = match crate::task::iteration_now() {
                None => RESTART_PATIENCE,
                Some(_) => std::time::Duration::ZERO,
            };
            let (mut fds, _) = bind_listeners(addr, 1, &net.config, patience)?;
            fds.pop()
                .ok_or_else(|| io::Error::other("no listener was bound"))?
        };
        Self::from_listening(fd)
    }

    /// Adopts a socket already bound and listening (the server binds every shard's listener
    /// in shard order, so a reuseport group's socket `i` belongs to shard `i`).
    pub(crate) fn from_listening(fd: OwnedFd) -> io::Result<TcpListener> {
        let net = NET.current();
        let addr = local_addr(fd.as_raw_fd())?;
        let registration = net.steer.register(net.core.id, addr, fd.as_raw_fd());
        let token = {
            let mut table = net.listeners.borrow_mut();
            let key = table.listeners.insert(ListenerState {
                fd: Some(fd),
                addr,
                in_flight: 0,
                closing: net.draining.get(),
                dropped: false,
                cancel_sent: false,
                backing_off: false,
                probing: false,
                at_cap: false,
                queue: VecDeque::new(),
                waker: None,
                last_fd_warning: None,
                registration,
            });
            token_of(key)
        };
        if !net.draining.get() {
            arm(&net, token);
        }
        Ok(TcpListener { net, token, addr })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the next connection. Fails with `ErrorKind::NotConnected` once the listener
    /// has stopped (graceful stop) and every connection it accepted has been taken.
    pub async fn accept(&self) -> io::Result<TcpStream> {
        let fd = poll_fn(|cx| {
            let mut table = self.net.listeners.borrow_mut();
            let Some(state) = table.get_mut(self.token) else {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "listener closed",
                )));
            };
            if let Some(fd) = state.queue.pop_front() {
                if !coop::consume() {
                    state.queue.push_front(fd);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                return Poll::Ready(Ok(fd));
            }
            // Stopped, and the last accept completion has come (a connection the kernel
            // accepted before the cancel took effect is served, not dropped).
            if state.closing && (state.in_flight == 0 || state.dropped) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "listener stopped accepting",
                )));
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let fd = fd?;
        // The queue has room again: top the accepts in flight back up.
        arm(&self.net, self.token);
        Ok(adopt(&self.net, fd, true))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        close_listener(&self.net, self.token);
    }
}

/// Binds `count` listening sockets of one `SO_REUSEPORT` group on `addr`, in order (a
/// group numbers its sockets in the order they join; `cpu` steering needs socket `i` to be
/// shard `i`'s). With port 0 the first picks the port and the rest join it. The one place
/// percore binds a server's listening sockets: sockets handed over ready-made (socket
/// activation, a hot restart) bypass it and go to `TcpListener::from_listening`.
///
/// **Exclusive by default.** Unless `config.reuse_port_shared` is on, a socket that
/// already listens on `addr` (another process, an old instance left running, another
/// server in this process) makes this fail with `AddrInUse` naming the address, instead of
/// silently joining its group and taking part of its traffic. The check is a probe socket
/// bound with `SO_REUSEADDR` and without `SO_REUSEPORT`
/// ([`probe_unlistened`](crate::sys::socket::probe_unlistened)): Linux refuses that bind
/// while anything listens on the port, and allows it past `TIME_WAIT` sockets. The probe
/// stays bound until the group listens. The window that remains is two servers starting in
/// the same microseconds (both probe before either listens); a server started while
/// another listens always fails.
///
/// A process killed a moment ago (`kill -9`, then an immediate restart) leaves its
/// listeners listening until the kernel has torn down its io_uring instance, which it does
/// after the process is gone, in the background. So a refused probe is retried every 5 ms
/// for up to `patience` (the server's start: [`RESTART_PATIENCE`]) before the bind fails;
/// a live server's listener is still there then, a dead one's is gone.
pub(crate) fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    config: &super::NetConfig,
    patience: std::time::Duration,
) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let probe = if config.reuse_port_shared || addr.port() == 0 {
        None
    } else {
        Some(probe_with_patience(addr, patience)?)
    };
    let opts = listen_options(config);
    let mut bound = addr;
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        let fd = tcp_listener(bound, &opts)?;
        if bound.port() == 0 {
            bound = local_addr(fd.as_raw_fd())?;
        }
        fds.push(fd);
    }
    drop(probe);
    Ok((fds, bound))
}

/// How long a server's start waits for a listener on its address to go away (see
/// [`bind_listeners`]).
pub(crate) const RESTART_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

fn probe_with_patience(addr: SocketAddr, patience: std::time::Duration) -> io::Result<OwnedFd> {
    let started = Instant::now();
    loop {
        match probe_unlistened(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && started.elapsed() < patience => {
                // Polled: the kernel gives no event for "a dead process's ring was freed".
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e),
            Ok(probe) => {
                if started.elapsed() > std::time::Duration::from_millis(5) {
                    tracing::info!(
                        %addr,
                        waited = ?started.elapsed(),
                        "a listener on the address went away (a process that just ended)"
                    );
                }
                return Ok(probe);
            }
        }
    }
}

/// Listen options from the shard's network settings.
pub(crate) fn listen_options(config: &super::NetConfig) -> ListenOptions {
    ListenOptions {
        reuse_port: true,
        backlog: config.listen_backlog,
        nodelay: config.nodelay,
    }
}

/// Registers an accepted or connected socket as a connection and starts receiving.
/// Accepted sockets were counted in the shard's load when they were queued.
pub(crate) fn adopt(net: &Rc<NetShard>, fd: OwnedFd, accepted: bool) -> TcpStream {
    if !accepted {
        net.count_placed(1);
    }
    if net.config.nodelay {
        let _ = set_nodelay(fd.as_raw_fd(), true);
    }
    let conn = net.conns.borrow_mut().insert(fd);
    if accepted && net.caps.is_some() {
        // Counted since it was accepted; released with the connection.
        conn.capped.set(true);
    }
    net.count(|s| {
        if accepted {
            s.accepted += 1
        } else {
            s.connected += 1
        }
    });
    arm_recv(net, &conn);
    TcpStream::new(net.clone(), conn)
}

/// Submits accepts until the listener has as many in flight as its depth allows and its
/// queue has room for; returns how many it submitted.
fn arm(net: &NetShard, token: Token) -> usize {
    let mut table = net.listeners.borrow_mut();
    let Some(state) = table.get_mut(token) else {
        return 0;
    };
    if state.closing || state.backing_off {
        return 0;
    }
    let Some(fd) = state.fd.as_ref() else {
        return 0;
    };
    let depth = if state.probing { 1 } else { ACCEPT_DEPTH };
    let room = net
        .config
        .accept_queue_max
        .max(1)
        .saturating_sub(state.queue.len());
    let mut more = depth.min(room).saturating_sub(state.in_flight);
    if let Some(caps) = &net.caps
        && more > 0
    {
        let idle = state.in_flight == 0;
        more = caps::reserve(net, caps, more, state.in_flight);
        if more == 0 && idle && !state.at_cap {
            state.at_cap = true;
            net.count(|s| s.accept_paused_at_cap += 1);
        }
    }
    if more == 0 {
        return 0;
    }
    state.at_cap = false;
    state.in_flight += more;
    let listener_fd = fd.as_raw_fd();
    drop(table);
    let mut driver = net.core.driver.borrow_mut();
    for _ in 0..more {
        driver.submit(Accept { listener_fd }, token);
    }
    more
}

pub(crate) fn on_accept(net: &NetShard, completion: Completion) {
    let token = completion.token;
    let mut table = net.listeners.borrow_mut();
    let Some(state) = table.get_mut(token) else {
        // A late accept for a listener that is gone: close the socket.
        drop(completion.accepted_fd());
        return;
    };
    state.in_flight = state.in_flight.saturating_sub(1);
    if state.in_flight == 0 {
        state.cancel_sent = false;
    }
    // An accept that ended without a connection and is replaced: a re-arm (R6).
    let mut ended_early = false;
    // Slots of this shard's caps given back by this completion.
    let mut unreserved = 0;
    if let Some(fd) = completion.accepted_fd() {
        state.probing = false;
        if state.dropped {
            drop(fd);
            unreserved = 1;
        } else if state.closing {
            // Accepted before the stop's cancel took effect: the client is connected and
            // may have sent its request; it is served here (hot restart, drain).
            net.count_placed(1);
            state.queue.push_back(fd);
            if let Some(caps) = &net.caps {
                caps::accepted(caps);
            }
        } else if let Some(fd) = place_elsewhere(net, state.addr, fd) {
            net.count_placed(1);
            state.queue.push_back(fd);
            if let Some(caps) = &net.caps {
                caps::accepted(caps);
            }
        } else if let Some(caps) = &net.caps {
            caps::handed_out(caps);
        }
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    } else {
        unreserved = 1;
        match -completion.result {
            libc::EMFILE | libc::ENFILE => {
                net.count(|s| s.accept_fd_exhausted += 1);
                if state
                    .last_fd_warning
                    .is_none_or(|t| t.elapsed().as_secs() >= 1)
                {
                    state.last_fd_warning = Some(Instant::now());
                    tracing::warn!(shard = net.core.id, addr = %state.addr, "accept: {} (out of file descriptors); pausing accept for {:?}; raise `ulimit -n` or lower the connection cap",
                        errno(-completion.result), net.config.accept_backoff);
                }
                state.probing = true;
                if !state.backing_off {
                    state.backing_off = true;
                    let shard_rc = NET.current();
                    let backoff = net.config.accept_backoff;
                    net.core.spawn(async move {
                        crate::time::sleep(backoff).await;
                        resume_after_backoff(&shard_rc, token);
                    });
                }
            }
            libc::ECANCELED => ended_early = true,
            errno_code => {
                tracing::debug!(shard = net.core.id, "accept failed: {}", errno(errno_code));
                ended_early = true;
            }
        }
    }
    if state.closing && state.in_flight == 0 && !state.dropped {
        // The last completion of a stopped listener.
        take_backlog(net, state);
        if let Some(waker) = state.waker.take() {
            // `accept()` may now answer that it ended.
            waker.wake();
        }
    }
    let finished = state.dropped && state.in_flight == 0;
    drop(table);
    if let Some(caps) = &net.caps
        && unreserved > 0
    {
        caps::unreserve(net, caps, unreserved);
    }
    if finished {
        release(net, token);
    } else if arm(net, token) > 0 && ended_early {
        net.count(|s| s.rearms += 1);
    }
    if unreserved > 0 && net.caps.is_some() {
        // The slot may be what another listener of this shard waits for.
        room_freed(net);
    }
}

/// Connection caps: `n` counted connections of this shard were released; their slots go
/// back and the shard's listeners accept again if they were paused at a cap.
pub(crate) fn room_freed_by(net: &NetShard, n: usize) {
    if let Some(caps) = &net.caps {
        caps::released(net, caps, n);
        room_freed(net);
    }
}

/// Re-arms every listener of the shard (room under the connection caps came back; run on
/// this shard, or sent here by the shard that freed a slot of the global cap).
pub(crate) fn room_freed(net: &NetShard) {
    let tokens = net.listeners.borrow().tokens();
    for token in tokens {
        arm(net, token);
    }
}

/// Most connections a stopped listener takes from its socket's backlog.
const BACKLOG_TAKEN_MAX: usize = 4096;

/// A listener that stopped accepting takes the connections still in its socket's backlog
/// and serves them. The socket may be shared (a hot restart's successor, shards sharing an
/// inherited socket): io_uring's accept waits as an *exclusive* waiter, so the kernel wakes
/// one waiter per connection, and a connection whose wake-up went to this listener just
/// before its accept was cancelled would otherwise wait, unseen by the other waiters, until
/// the next connection wakes one of them. Each `accept` is non-blocking on the connection
/// and bounded on the socket (1 ms, `SO_RCVTIMEO`), since another process may take the
/// connection first.
fn take_backlog(net: &NetShard, state: &mut ListenerState) {
    let Some(fd) = state.fd.as_ref() else { return };
    let raw = fd.as_raw_fd();
    if set_accept_timeout(raw, std::time::Duration::from_millis(1)).is_err() {
        return;
    }
    let mut ready = Vec::with_capacity(1);
    for _ in 0..BACKLOG_TAKEN_MAX {
        if poll_readable(&[raw], 0, &mut ready).is_err() || ready.first() != Some(&true) {
            return;
        }
        match accept_now(raw) {
            Ok(Some(conn)) => {
                net.count_placed(1);
                state.queue.push_back(conn);
                if let Some(caps) = &net.caps {
                    caps::handed_in(net, caps, false);
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// `balanced` steering: hands `fd` to the least-loaded shard when that is not this one.
/// Returns the fd when it stays here.
fn place_elsewhere(net: &NetShard, addr: SocketAddr, fd: OwnedFd) -> Option<OwnedFd> {
    let steer = &net.steer;
    if steer.mode != super::Steering::Balanced {
        return Some(fd);
    }
    let Some(target) = steer.place(net.core.id, addr) else {
        return Some(fd);
    };
    if let Some(load) = steer.load(target) {
        load.add(1);
    }
    // The fd travels in a slot the message shares, so that when the target's inbox is full
    // (the message is dropped unrun) the connection stays here instead of being closed.
    let slot = Arc::new(Mutex::new(Some(fd)));
    let theirs = slot.clone();
    let sent = crate::mesh::try_send_to(target, move || {
        if let Some(fd) = lock_slot(&theirs).take() {
            deliver_here(addr, fd, true);
        }
    });
    if sent.is_ok() {
        net.count(|s| s.handed_out += 1);
        return None;
    }
    if let Some(load) = steer.load(target) {
        load.sub(1);
    }
    lock_slot(&slot).take()
}

fn lock_slot(slot: &Mutex<Option<OwnedFd>>) -> std::sync::MutexGuard<'_, Option<OwnedFd>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs on the shard a connection was placed on (by another shard or by the stall
/// detector): queues `fd` on this shard's listener for `addr`, already counted in this
/// shard's load. With no such listener (it closed meanwhile) the connection is closed.
/// A connection handed over is queued even at `accept_queue_max` and the connection caps:
/// it was accepted already, and closing it would drop a client; this shard's own accepting
/// stays paused until the queue is back under the max. `counted`: the placing shard counted
/// it under the global connection cap already (the stall detector does not).
pub(crate) fn deliver_here(addr: SocketAddr, fd: OwnedFd, counted: bool) {
    let net = NET.current();
    let mut table = net.listeners.borrow_mut();
    let state = table
        .listeners
        .iter_mut()
        .map(|(_, state)| state)
        .find(|s| s.addr == addr && !s.dropped);
    let Some(state) = state else {
        drop(table);
        net.count_unplaced(1);
        if counted {
            caps::give_back_global(&net, 1);
        }
        tracing::debug!(shard = net.core.id, %addr, "a connection handed over found no listener; closed");
        return;
    };
    state.queue.push_back(fd);
    if let Some(waker) = state.waker.take() {
        waker.wake();
    }
    drop(table);
    if let Some(caps) = &net.caps {
        caps::handed_in(&net, caps, counted);
    }
    net.count(|s| s.handed_in += 1);
}

fn resume_after_backoff(net: &NetShard, token: Token) {
    if let Some(state) = net.listeners.borrow_mut().get_mut(token) {
        state.backing_off = false;
    }
    arm(net, token);
}

/// Graceful stop: cancel accepting; connections already accepted, and those the kernel
/// accepted before the cancel took effect, stay available to accept().
pub(crate) fn stop_all(net: &NetShard) {
    let tokens = net.listeners.borrow().tokens();
    for token in tokens {
        let mut table = net.listeners.borrow_mut();
        let Some(state) = table.get_mut(token) else {
            continue;
        };
        state.closing = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        let cancel = state.in_flight > 0 && !std::mem::replace(&mut state.cancel_sent, true);
        let registration = state.registration.take();
        drop(table);
        // A draining listener takes no more connections, from the stall detector either.
        if let Some(id) = registration {
            net.steer.unregister(id);
        }
        if cancel {
            net.core
                .driver
                .borrow_mut()
                .submit(CancelAll { target: token }, Token::IGNORE);
        }
    }
}

/// Forced stop: drop every listener, queued sockets included.
pub(crate) fn close_all(net: &NetShard) {
    // Collected first: closing borrows the table mutably.
    let tokens = net.listeners.borrow().tokens();
    for token in tokens {
        close_listener(net, token);
    }
}

fn close_listener(net: &NetShard, token: Token) {
    let mut table = net.listeners.borrow_mut();
    let Some(state) = table.get_mut(token) else {
        return;
    };
    state.closing = true;
    state.dropped = true;
    let dropped = state.queue.len() as u64;
    state.queue.clear();
    let registration = state.registration.take();
    let in_flight = state.in_flight > 0;
    let cancel = in_flight && !std::mem::replace(&mut state.cancel_sent, true);
    drop(table);
    net.count_unplaced(dropped);
    if dropped > 0 {
        room_freed_by(net, dropped as usize);
    }
    if let Some(id) = registration {
        net.steer.unregister(id);
    }
    if cancel {
        net.core
            .driver
            .borrow_mut()
            .submit(CancelAll { target: token }, Token::IGNORE);
    }
    if !in_flight {
        release(net, token);
    }
}

/// Frees the slot once no accept is in flight; the fd is closed through the ring.
fn release(net: &NetShard, token: Token) {
    let removed = net.listeners.borrow_mut().listeners.remove(key_of(token));
    let Some(mut state) = removed else { return };
    net.count_unplaced(state.queue.len() as u64);
    let dropped = state.queue.len();
    state.queue.clear();
    if dropped > 0 {
        room_freed_by(net, dropped);
    }
    if let Some(id) = state.registration.take() {
        net.steer.unregister(id);
    }
    if let Some(fd) = state.fd.take() {
        net.core
            .driver
            .borrow_mut()
            .submit(Close::new(fd), Token::IGNORE);
    }
}
