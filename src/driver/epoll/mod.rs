//! The readiness driver: the same boundary as io_uring's, built on `epoll`, for hosts where
//! io_uring is blocked (seccomp), disabled (`kernel.io_uring_disabled`) or missing.
//!
//! The layers above see completions, never readiness. Each op is queued by `submit` and
//! performed at the next [`Epoll::enter`], in submission order, so the loop's phases run
//! exactly as on io_uring; `enter` then makes one `epoll_wait` and turns what became ready
//! into the completions io_uring would have posted:
//!
//! - **accept**: the listener is watched for input while accepts wait on it; each submitted
//!   accept takes one connection (`accept4`) and completes with its socket, as io_uring's
//!   accept does. `EMFILE`/`ENFILE` and other failures end every accept waiting on the
//!   listener with the errno (they would all meet it), so the listener's back-off is the
//!   io_uring path's, unchanged.
//! - **receive**: the socket is watched for input; each `recv` fills one buffer taken from
//!   the shard's buffer ring (the same `BufRing`, consumed here instead of by the kernel) and
//!   becomes a completion naming it, as provided-buffer multishot receive does. No free
//!   buffer ends the receive with `ENOBUFS`, EOF with 0, an error with its errno.
//! - **send**: written at once; on `EAGAIN` the socket is watched for output and the write
//!   retried when it is writable. A short write completes with its count (the connection
//!   sends the rest), as a short io_uring send does.
//! - **connect**: non-blocking `connect`, then writability and `SO_ERROR`.
//! - **timeout**: a deadline heap; the nearest deadline bounds the `epoll_wait`.
//! - **cancel**: ends the target's wait with `-ECANCELED`; **close**: leaves the interest set
//!   first (a listener's fd has a duplicate, which would keep a stale registration alive).
//! - **wake**: the shard's eventfd is watched for input (there is no MSG_RING: other shards
//!   write the eventfd).
//!
//! # Level-triggered, and why
//!
//! Interest is level-triggered, registered when an fd first waits and changed only when the
//! set of waiters changes (applied once per iteration, before the wait, so a receive that
//! ends and is re-armed in the same iteration costs no `epoll_ctl`). Level triggering lets a
//! receive stop after a short read (the socket is drained as far as we know; if more came,
//! the next `epoll_wait` says so), which saves edge-triggering's extra `recv` that only
//! returns `EAGAIN` on every request. It also makes pausing safe: a paused or starved
//! receive leaves the interest set, so unread input wakes no one, and resuming re-registers
//! it and is told at once if input is waiting: nothing is lost between the two.

mod sys;
#[cfg(test)]
mod tests;

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    io,
    os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd},
    time::{Duration, Instant},
};

use super::{
    Completion, Token, Wait,
    uring::{
        RingConfig, RingFeatures, RingStats,
        buf_ring::BufRing,
        lifecycle::{Lifecycles, Route},
        op::{Accept, Cancel, CancelAll, Close, MsgRingWake, Owned, OwnedOp, RecvMulti},
    },
};
use crate::error::Error;

/// Sockets accepted per readiness of a listener before the loop turns to other work (the
/// level-triggered interest brings it back to the rest).
const ACCEPT_BATCH: usize = 128;
/// Buffers filled per readiness of a socket, for the same fairness.
const RECV_BATCH: usize = 16;
/// Events taken per `epoll_wait`; more stay ready for the next.
const EVENTS: usize = 1024;

/// A submission waiting for the next `enter`.
pub(crate) enum Queued {
    Accept {
        fd: RawFd,
        token: Token,
    },
    Recv {
        fd: RawFd,
        token: Token,
    },
    /// Ends one wait of the token, or (`all`) every one.
    Cancel {
        target: Token,
        all: bool,
    },
    Close(OwnedFd),
    Owned(Token),
    /// An op this driver cannot perform: it completes at once with the errno.
    Fail {
        token: Token,
        errno: i32,
    },
}

/// How an op that points at no memory is performed here.
pub(crate) trait Readiness {
    fn queued(self, token: Token) -> Queued;
}

impl Readiness for Accept {
    fn queued(self, token: Token) -> Queued {
        Queued::Accept {
            fd: self.listener_fd,
            token,
        }
    }
}

impl Readiness for RecvMulti {
    fn queued(self, token: Token) -> Queued {
        Queued::Recv { fd: self.fd, token }
    }
}

impl Readiness for Cancel {
    fn queued(self, _token: Token) -> Queued {
        Queued::Cancel {
            target: self.target,
            all: false,
        }
    }
}

impl Readiness for CancelAll {
    fn queued(self, _token: Token) -> Queued {
        Queued::Cancel {
            target: self.target,
            all: true,
        }
    }
}

impl Readiness for Close {
    fn queued(self, token: Token) -> Queued {
        match self.into_fd() {
            Some(fd) => Queued::Close(fd),
            None => Queued::Fail {
                token,
                errno: libc::EBADF,
            },
        }
    }
}

impl Readiness for MsgRingWake {
    /// Never submitted here (the features say there is no MSG_RING); should it be, its
    /// failure completion sends the waker to the target's eventfd.
    fn queued(self, token: Token) -> Queued {
        Queued::Fail {
            token,
            errno: libc::EOPNOTSUPP,
        }
    }
}

/// Who waits for an fd to become readable.
#[derive(Clone, Copy)]
enum Reader {
    /// Accepts waiting on a listener: how many, all with the listener's token.
    Accept(Token, u32),
    Recv(Token),
    /// An owned op (the eventfd read): completes once, when readable.
    Owned(Token),
}

impl Reader {
    fn token(self) -> Token {
        match self {
            Reader::Accept(t, _) | Reader::Recv(t) | Reader::Owned(t) => t,
        }
    }

    /// The waits it stands for: each ends with a completion of its own.
    fn waits(self) -> u32 {
        match self {
            Reader::Accept(_, n) => n,
            Reader::Recv(_) | Reader::Owned(_) => 1,
        }
    }
}

/// One fd's waiters and what the kernel's interest set holds for it.
#[derive(Clone, Copy, Default)]
struct Interest {
    reader: Option<Reader>,
    /// A send or connect waiting for writability.
    writer: Option<Token>,
    /// The events registered (0: not in the set).
    registered: u32,
    dirty: bool,
}

impl Interest {
    fn wanted(&self) -> u32 {
        let mut events = 0;
        if self.reader.is_some() {
            events |= libc::EPOLLIN as u32;
        }
        if self.writer.is_some() {
            events |= libc::EPOLLOUT as u32;
        }
        events
    }
}

pub(crate) struct Epoll {
    epoll: OwnedFd,
    pub(crate) bufs: BufRing,
    pub(crate) ops: Lifecycles,
    pub(crate) features: RingFeatures,
    pub(crate) stats: RingStats,
    reaped: Vec<Completion>,
    queued: Vec<Queued>,
    /// Indexed by fd number.
    fds: Vec<Interest>,
    /// The fd each waiting token waits on, for cancellation.
    owners: HashMap<u64, RawFd>,
    dirty: Vec<RawFd>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    live_timers: HashSet<u64>,
    events: Vec<libc::epoll_event>,
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: super::fault::ShardFaults,
}

impl Epoll {
    pub(crate) fn new(config: &RingConfig) -> Result<Self, Error> {
        let epoll = sys::epoll_create().map_err(|e| Error::io("epoll_create1", e))?;
        let bufs = BufRing::unregistered(config.recv_buffers, config.recv_buffer_size)
            .map_err(|e| Error::Config(format!("receive buffers: {e}")))?;
        Ok(Epoll {
            epoll,
            bufs,
            ops: Lifecycles::default(),
            // No io_uring feature applies; shards wake this one through its eventfd.
            features: RingFeatures::default(),
            stats: RingStats::default(),
            reaped: Vec::with_capacity(config.cq_entries as usize),
            queued: Vec::with_capacity(256),
            fds: Vec::new(),
            owners: HashMap::new(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            live_timers: HashSet::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
            #[cfg(feature = "fault-injection")]
            faults: super::fault::ShardFaults::new(),
        })
    }

    #[inline]
    pub(crate) fn submit<T: Readiness>(&mut self, op: T, token: Token) {
        #[cfg(feature = "fault-injection")]
        self.make_room();
        self.queued.push(op.queued(token));
    }

    #[inline]
    pub(crate) fn submit_owned<T: OwnedOp>(&mut self, op: T, route: Route) -> Token {
        #[cfg(feature = "fault-injection")]
        self.make_room();
        let token = self.ops.insert_op(op, route);
        self.queued.push(Queued::Owned(token));
        token
    }

    /// A small SQ (fault injection): once it holds its size, what is queued is performed
    /// at once, as io_uring submits a full SQ early.
    #[cfg(feature = "fault-injection")]
    fn make_room(&mut self) {
        if self.faults.sq_full(self.queued.len()) {
            self.stats.sq_full += 1;
            self.perform_queued();
        }
    }

    /// Performs what was queued, then makes the iteration's one `epoll_wait` (not blocking
    /// when completions are already waiting) and turns readiness into completions.
    pub(crate) fn enter(&mut self, wait: Wait) -> io::Result<()> {
        self.perform_queued();
        self.sync_interests();
        let now = Instant::now();
        self.fire_timers(now);
        let timeout_ms = if self.reaped.is_empty() {
            match wait {
                Wait::No => 0,
                Wait::Forever => self.timeout_ms(now, None),
                Wait::Timeout(limit) => self.timeout_ms(now, Some(limit)),
            }
        } else {
            0
        };
        self.stats.enters += 1;
        let waited = {
            // A failed `epoll_wait` (fault injection): nothing waited.
            #[cfg(feature = "fault-injection")]
            match self.faults.fail_enter() {
                Some(errno) => Err(errno),
                None => sys::wait(&self.epoll, &mut self.events, timeout_ms),
            }
            #[cfg(not(feature = "fault-injection"))]
            sys::wait(&self.epoll, &mut self.events, timeout_ms)
        };
        let ready = match waited {
            Ok(n) => n,
            Err(libc::EINTR) => 0,
            Err(e) => return Err(io::Error::from_raw_os_error(e)),
        };
        for i in 0..ready {
            let event = self.events[i];
            let (fd, events) = (event.u64 as RawFd, event.events);
            self.on_ready(fd, events);
        }
        if !self.live_timers.is_empty() {
            self.fire_timers(Instant::now());
        }
        Ok(())
    }

    /// The `epoll_wait` timeout: the nearer of the loop's limit and the next timeout op,
    /// rounded up to whole milliseconds (rounding down would wake early and spin).
    fn timeout_ms(&mut self, now: Instant, limit: Option<Duration>) -> i32 {
        let mut until = limit;
        while let Some(Reverse((at, token))) = self.timers.peek().copied() {
            if self.live_timers.contains(&token) {
                let left = at.saturating_duration_since(now);
                until = Some(until.map_or(left, |u| u.min(left)));
                break;
            }
            self.timers.pop();
        }
        match until {
            None => -1,
            Some(d) => {
                let ms = d.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as i32
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, token))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.live_timers.remove(&token) {
                self.complete(Token::from_user_data(token), -libc::ETIME, false, None);
            }
        }
    }

    fn perform_queued(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let mut queued = std::mem::take(&mut self.queued);
        self.stats.sqes_submitted += queued.len() as u64;
        for op in queued.drain(..) {
            match op {
                Queued::Accept { fd, token } => {
                    if self.interest(fd).registered == 0
                        && let Err(e) = sys::set_nonblocking(fd)
                    {
                        self.complete(token, -e, false, None);
                        continue;
                    }
                    match self.interest(fd).reader {
                        Some(Reader::Accept(waiting, n)) if waiting == token => {
                            self.interest(fd).reader = Some(Reader::Accept(token, n + 1));
                        }
                        _ => self.set_reader(fd, Reader::Accept(token, 1)),
                    }
                }
                Queued::Recv { fd, token } => self.set_reader(fd, Reader::Recv(token)),
                Queued::Cancel { target, all } => self.cancel(target, all),
                Queued::Close(fd) => {
                    self.forget(fd.as_raw_fd());
                    drop(fd);
                }
                Queued::Owned(token) => self.start_owned(token),
                Queued::Fail { token, errno } => self.complete(token, -errno, false, None),
            }
        }
        self.queued = queued;
    }

    fn start_owned(&mut self, token: Token) {
        let Some(op) = self.ops.op_mut(token) else {
            return;
        };
        match op {
            Owned::Send(send) => {
                let fd = send.fd;
                self.try_send(fd, token);
            }
            Owned::Connect(connect) => {
                let fd = connect.socket.as_raw_fd();
                match sys::connect(fd, connect.addr()) {
                    Ok(true) => self.complete(token, 0, false, None),
                    Ok(false) => self.set_writer(fd, token),
                    Err(e) => self.complete(token, -e, false, None),
                }
            }
            Owned::EventFdRead(read) => {
                let fd = read.fd();
                self.set_reader(fd, Reader::Owned(token));
            }
            Owned::Timeout(timeout) => {
                let at = Instant::now() + timeout.after();
                self.timers.push(Reverse((at, token.user_data())));
                self.live_timers.insert(token.user_data());
            }
            // Regular files are never "not ready" to epoll: the write and the sync run here,
            // synchronously, one system call per op (bounded by the op's size; a log
            // writer keeps its ops small). The loop stalls for a slow disk's fsync as long
            // as it takes; io_uring does it in the kernel's workers instead.
            Owned::FileWrite(write) => {
                let remaining = &write.buf[write.start.min(write.buf.len())..];
                let result = loop {
                    match sys::pwrite(write.fd.as_raw_fd(), remaining, write.offset) {
                        Err(libc::EINTR) => continue,
                        result => break result,
                    }
                };
                let result = result.map_or_else(|e| -e, |n| n.min(i32::MAX as usize) as i32);
                self.complete(token, result, false, None);
            }
            Owned::FileSync(sync) => {
                let result =
                    sys::fsync(sync.fd.as_raw_fd(), sync.data_only).map_or_else(|e| -e, |()| 0);
                self.complete(token, result, false, None);
            }
        }
    }

    /// Writes a send's remaining bytes: completes with the count written, or waits for
    /// writability on `EAGAIN`.
    fn try_send(&mut self, fd: RawFd, token: Token) {
        let result = loop {
            let Some(Owned::Send(send)) = self.ops.op_mut(token) else {
                return;
            };
            let remaining = &send.buf[send.offset.min(send.buf.len())..];
            match sys::send(fd, remaining) {
                Err(libc::EINTR) => continue,
                result => break result,
            }
        };
        let waiting = self.interest(fd).writer == Some(token);
        match result {
            Err(libc::EAGAIN) => {
                if !waiting {
                    self.set_writer(fd, token);
                }
            }
            result => {
                if waiting {
                    self.clear_writer(fd);
                }
                let result = result.map_or_else(|e| -e, |n| n.min(i32::MAX as usize) as i32);
                self.complete(token, result, false, None);
            }
        }
    }

    fn on_ready(&mut self, fd: RawFd, events: u32) {
        const READABLE: u32 = (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32;
        const WRITABLE: u32 = (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32;
        if events & READABLE != 0
            && let Some(reader) = self.interest(fd).reader
        {
            match reader {
                Reader::Accept(token, waits) => self.accept_ready(fd, token, waits),
                Reader::Recv(token) => self.recv_ready(fd, token),
                Reader::Owned(token) => {
                    // The eventfd is readable; its owner drains it and waits again.
                    self.clear_reader(fd);
                    self.complete(token, 8, false, None);
                }
            }
        }
        if events & WRITABLE != 0
            && let Some(token) = self.interest(fd).writer
        {
            match self.ops.op_mut(token) {
                Some(Owned::Send(_)) => self.try_send(fd, token),
                Some(Owned::Connect(_)) => {
                    self.clear_writer(fd);
                    let errno = sys::socket_error(fd);
                    self.complete(token, -errno, false, None);
                }
                _ => self.clear_writer(fd),
            }
        }
    }

    /// Takes up to `waits` connections, one per accept waiting on the listener.
    fn accept_ready(&mut self, fd: RawFd, token: Token, waits: u32) {
        let mut left = waits;
        for _ in 0..ACCEPT_BATCH {
            if left == 0 {
                break;
            }
            match sys::accept(fd) {
                Ok(socket) => {
                    let raw = socket.into_raw_fd();
                    left -= 1;
                    self.complete(token, raw, false, None);
                }
                Err(libc::EAGAIN) => break,
                // The peer gave up before we took it: as io_uring, skip it.
                Err(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => {}
                Err(e) => {
                    self.clear_reader(fd);
                    for _ in 0..left {
                        self.complete(token, -e, false, None);
                    }
                    return;
                }
            }
        }
        if left == 0 {
            self.clear_reader(fd);
        } else if left != waits {
            self.interest(fd).reader = Some(Reader::Accept(token, left));
        }
    }

    fn recv_ready(&mut self, fd: RawFd, token: Token) {
        let size = self.bufs.buf_size() as usize;
        for _ in 0..RECV_BATCH {
            let Some(bid) = self.bufs.take() else {
                self.clear_reader(fd);
                self.complete(token, -libc::ENOBUFS, false, None);
                return;
            };
            let result = loop {
                match sys::recv(fd, self.bufs.fill(bid)) {
                    Err(libc::EINTR) => continue,
                    result => break result,
                }
            };
            match result {
                Ok(n) if n > 0 => {
                    self.complete(token, n as i32, true, Some(bid));
                    if n < size {
                        // Drained as far as we know; the level-triggered interest says if not.
                        return;
                    }
                }
                Err(libc::EAGAIN) => {
                    self.bufs.untake(bid);
                    return;
                }
                Ok(_) => {
                    self.bufs.untake(bid);
                    self.clear_reader(fd);
                    self.complete(token, 0, false, None);
                    return;
                }
                Err(e) => {
                    self.bufs.untake(bid);
                    self.clear_reader(fd);
                    self.complete(token, -e, false, None);
                    return;
                }
            }
        }
    }

    /// Ends a wait of `target` (`all`: every one, a listener's accepts) with `-ECANCELED`;
    /// nothing when it already completed.
    fn cancel(&mut self, target: Token, all: bool) {
        if self.live_timers.remove(&target.user_data()) {
            self.complete(target, -libc::ECANCELED, false, None);
            return;
        }
        let Some(fd) = self.owners.get(&target.user_data()).copied() else {
            return;
        };
        let interest = self.interest(fd);
        let mut waits = 1;
        if let Some(reader) = interest.reader.filter(|r| r.token() == target) {
            match reader {
                // One of several accepts: the others go on waiting.
                Reader::Accept(token, n) if n > 1 && !all => {
                    interest.reader = Some(Reader::Accept(token, n - 1));
                }
                _ => {
                    waits = reader.waits();
                    self.clear_reader(fd);
                }
            }
        } else if interest.writer == Some(target) {
            self.clear_writer(fd);
        } else {
            return;
        }
        for _ in 0..waits {
            self.complete(target, -libc::ECANCELED, false, None);
        }
    }

    /// An fd is about to close: take it out of the interest set now (a duplicate would keep
    /// its registration alive) and end whatever still waited on it.
    fn forget(&mut self, fd: RawFd) {
        let Some(interest) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let interest = std::mem::take(interest);
        if interest.registered != 0 {
            let _ = sys::ctl(&self.epoll, libc::EPOLL_CTL_DEL, fd, 0);
        }
        if let Some(reader) = interest.reader {
            self.owners.remove(&reader.token().user_data());
            for _ in 0..reader.waits() {
                self.complete(reader.token(), -libc::ECANCELED, false, None);
            }
        }
        if let Some(writer) = interest.writer {
            self.owners.remove(&writer.user_data());
            self.complete(writer, -libc::ECANCELED, false, None);
        }
    }

    fn interest(&mut self, fd: RawFd) -> &mut Interest {
        let index = fd as usize;
        if index >= self.fds.len() {
            self.fds.resize(index + 1, Interest::default());
        }
        &mut self.fds[index]
    }

    fn mark_dirty(&mut self, fd: RawFd) {
        let interest = self.interest(fd);
        if !std::mem::replace(&mut interest.dirty, true) {
            self.dirty.push(fd);
        }
    }

    fn set_reader(&mut self, fd: RawFd, reader: Reader) {
        if let Some(old) = self.interest(fd).reader.replace(reader) {
            self.owners.remove(&old.token().user_data());
        }
        self.owners.insert(reader.token().user_data(), fd);
        self.mark_dirty(fd);
    }

    fn clear_reader(&mut self, fd: RawFd) {
        if let Some(old) = self.interest(fd).reader.take() {
            self.owners.remove(&old.token().user_data());
        }
        self.mark_dirty(fd);
    }

    fn set_writer(&mut self, fd: RawFd, token: Token) {
        self.owners.insert(token.user_data(), fd);
        self.interest(fd).writer = Some(token);
        self.mark_dirty(fd);
    }

    fn clear_writer(&mut self, fd: RawFd) {
        if let Some(old) = self.interest(fd).writer.take() {
            self.owners.remove(&old.user_data());
        }
        self.mark_dirty(fd);
    }

    /// Brings the kernel's interest set in line with the waiters, once per iteration. An fd
    /// closed behind the set's back (a socket dropped with its failed connect) left it
    /// already, so "not there" and "already there" are recovered from, not errors.
    fn sync_interests(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for fd in dirty.drain(..) {
            let interest = self.interest(fd);
            interest.dirty = false;
            let (wanted, registered) = (interest.wanted(), interest.registered);
            if wanted == registered {
                continue;
            }
            let result = if wanted == 0 {
                match sys::ctl(&self.epoll, libc::EPOLL_CTL_DEL, fd, 0) {
                    Err(libc::ENOENT | libc::EBADF) => Ok(()),
                    other => other,
                }
            } else {
                let first = if registered == 0 {
                    libc::EPOLL_CTL_ADD
                } else {
                    libc::EPOLL_CTL_MOD
                };
                match sys::ctl(&self.epoll, first, fd, wanted) {
                    Err(libc::EEXIST) => sys::ctl(&self.epoll, libc::EPOLL_CTL_MOD, fd, wanted),
                    Err(libc::ENOENT) => sys::ctl(&self.epoll, libc::EPOLL_CTL_ADD, fd, wanted),
                    other => other,
                }
            };
            match result {
                Ok(()) => self.interest(fd).registered = wanted,
                Err(errno) => {
                    // The fd cannot be watched: its waiters fail rather than wait forever.
                    self.interest(fd).registered = 0;
                    let interest = self.interest(fd);
                    let (reader, writer) = (interest.reader.take(), interest.writer.take());
                    let waits = reader.map(|r| (r.token(), r.waits()));
                    for (token, n) in waits.into_iter().chain(writer.map(|w| (w, 1))) {
                        self.owners.remove(&token.user_data());
                        for _ in 0..n {
                            self.complete(token, -errno, false, None);
                        }
                    }
                }
            }
        }
        self.dirty = dirty;
    }

    #[inline]
    fn complete(&mut self, token: Token, result: i32, more: bool, buffer_id: Option<u16>) {
        self.reaped
            .push(Completion::new(token, result, more, buffer_id));
    }

    pub(crate) fn take_completions(&mut self, into: &mut Vec<Completion>) {
        debug_assert!(into.is_empty());
        // A small CQ (fault injection): the rest wait for the next iteration, as completions
        // beyond io_uring's CQ wait in the kernel's overflow list.
        #[cfg(feature = "fault-injection")]
        if let Some(cap) = self.faults.cq_cap()
            && self.reaped.len() > cap
        {
            self.faults.count_cq_held();
            self.stats.cq_overflows += 1;
            self.stats.cqes += cap as u64;
            into.extend(self.reaped.drain(..cap));
            return;
        }
        self.stats.cqes += self.reaped.len() as u64;
        std::mem::swap(&mut self.reaped, into);
    }

    pub(crate) fn has_reaped(&self) -> bool {
        !self.reaped.is_empty()
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // No kernel reads or writes an op's memory here: every op is performed by this
        // thread, so the op table may free what it holds.
        self.ops.ring_closed();
    }
}
