//! Listeners: one multishot accept per listener, accepted sockets queued for `accept()`.
//!
//! `EMFILE`/`ENFILE` (no descriptor left) end the multishot; the listener then waits
//! `accept_backoff` before re-arming, instead of spinning on an error the kernel will repeat,
//! and logs at most once a second. Too many accepted-but-untaken sockets pause accepting too,
//! so the queue is bounded and the kernel's backlog pushes back on clients.
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
    NET, NetShard,
    dispatch::{arm_recv, errno},
    stream::TcpStream,
};
use crate::{
    driver::{
        Completion, Kind, Token,
        uring::op::{AcceptMulti, Cancel, Close},
    },
    slab::{Key, Slab},
    sys::{
        socket::{ListenOptions, local_addr, set_nodelay, tcp_listener},
        steer::{accept_now, poll_readable, set_accept_timeout},
    },
    task::coop,
};

pub(crate) struct ListenerState {
    fd: Option<OwnedFd>,
    addr: SocketAddr,
    armed: bool,
    closing: bool,
    /// The `TcpListener` handle is gone; the slot is freed after the last accept CQE.
    dropped: bool,
    cancel_sent: bool,
    backing_off: bool,
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
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let net = NET.current();
        let fd = tcp_listener(addr, &listen_options(&net.config))?;
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
                armed: false,
                closing: net.draining.get(),
                dropped: false,
                cancel_sent: false,
                backing_off: false,
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
                return Poll::Ready(Ok((
                    fd,
                    state.queue.len() + 1 == self.net.config.accept_queue_max,
                )));
            }
            // Stopped, and the last accept completion has come (a connection the kernel
            // accepted before the cancel took effect is served, not dropped).
            if state.closing && (!state.armed || state.dropped) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "listener stopped accepting",
                )));
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let (fd, was_full) = fd?;
        if was_full {
            // Accepting paused at the queue cap; there is room again.
            arm(&self.net, self.token);
        }
        Ok(adopt(&self.net, fd, true))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        close_listener(&self.net, self.token);
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

fn arm(net: &NetShard, token: Token) {
    let mut table = net.listeners.borrow_mut();
    let Some(state) = table.get_mut(token) else {
        return;
    };
    if state.armed || state.closing || state.backing_off {
        return;
    }
    let Some(fd) = state.fd.as_ref() else { return };
    state.armed = true;
    let accept = AcceptMulti {
        listener_fd: fd.as_raw_fd(),
    };
    drop(table);
    net.core.driver.borrow_mut().submit(accept, token);
}

pub(crate) fn on_accept(net: &NetShard, completion: Completion) {
    let token = completion.token;
    let mut table = net.listeners.borrow_mut();
    let Some(state) = table.get_mut(token) else {
        // A late accept for a listener that is gone: close the socket.
        drop(completion.accepted_fd());
        return;
    };
    let more = completion.more();
    if !more {
        state.armed = false;
    }
    let mut rearm = !more;
    if let Some(fd) = completion.accepted_fd() {
        if state.dropped {
            drop(fd);
        } else if state.closing {
            // Accepted before the stop's cancel took effect: the client is connected and
            // may have sent its request; it is served here (hot restart, drain).
            net.count_placed(1);
            state.queue.push_back(fd);
        } else if let Some(fd) = place_elsewhere(net, state.addr, fd) {
            net.count_placed(1);
            state.queue.push_back(fd);
            if state.queue.len() >= net.config.accept_queue_max {
                rearm = false;
                if state.armed && !state.cancel_sent {
                    state.cancel_sent = true;
                    net.core
                        .driver
                        .borrow_mut()
                        .submit(Cancel { target: token }, Token::IGNORE);
                }
            }
        }
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    } else {
        match -completion.result {
            libc::EMFILE | libc::ENFILE => {
                rearm = false;
                net.count(|s| s.accept_fd_exhausted += 1);
                if state
                    .last_fd_warning
                    .is_none_or(|t| t.elapsed().as_secs() >= 1)
                {
                    state.last_fd_warning = Some(Instant::now());
                    tracing::warn!(shard = net.core.id, addr = %state.addr, "accept: {} (out of file descriptors); pausing accept for {:?}; raise `ulimit -n` or lower the connection cap",
                        errno(-completion.result), net.config.accept_backoff);
                }
                if !state.backing_off {
                    state.backing_off = true;
                    let shard_rc = NET.current();
                    let backoff = net.config.accept_backoff;
                    drop(table);
                    net.core.spawn(async move {
                        crate::time::sleep(backoff).await;
                        resume_after_backoff(&shard_rc, token);
                    });
                    return;
                }
            }
            libc::ECANCELED => {
                state.cancel_sent = false;
                rearm = !state.closing && state.queue.len() < net.config.accept_queue_max;
            }
            errno_code => {
                tracing::debug!(shard = net.core.id, "accept failed: {}", errno(errno_code));
            }
        }
    }
    if state.closing && !state.armed && !state.dropped {
        // The last completion of a stopped listener.
        take_backlog(net, state);
        if let Some(waker) = state.waker.take() {
            // `accept()` may now answer that it ended.
            waker.wake();
        }
    }
    let finished = state.dropped && !state.armed;
    drop(table);
    if finished {
        release(net, token);
    } else if rearm {
        arm(net, token);
        net.count(|s| s.rearms += 1);
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
            deliver_here(addr, fd);
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
pub(crate) fn deliver_here(addr: SocketAddr, fd: OwnedFd) {
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
        tracing::debug!(shard = net.core.id, %addr, "a connection handed over found no listener; closed");
        return;
    };
    state.queue.push_back(fd);
    if let Some(waker) = state.waker.take() {
        waker.wake();
    }
    drop(table);
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
        let cancel = state.armed && !std::mem::replace(&mut state.cancel_sent, true);
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
                .submit(Cancel { target: token }, Token::IGNORE);
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
    let armed = state.armed;
    let cancel = armed && !std::mem::replace(&mut state.cancel_sent, true);
    drop(table);
    net.count_unplaced(dropped);
    if let Some(id) = registration {
        net.steer.unregister(id);
    }
    if cancel {
        net.core
            .driver
            .borrow_mut()
            .submit(Cancel { target: token }, Token::IGNORE);
    }
    if !armed {
        release(net, token);
    }
}

/// Frees the slot once no accept is in flight; the fd is closed through the ring.
fn release(net: &NetShard, token: Token) {
    let removed = net.listeners.borrow_mut().listeners.remove(key_of(token));
    let Some(mut state) = removed else { return };
    net.count_unplaced(state.queue.len() as u64);
    state.queue.clear();
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
