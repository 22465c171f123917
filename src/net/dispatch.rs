//! What the shard loop does for networking: dispatch receive, send and accept completions,
//! settle buffers and queue sends after the run phase, and close connections whose last
//! operation has ended.

use std::{io, rc::Rc};

use super::{
    NetShard,
    conn::{Conn, Lent},
    listener,
    state::{Event, Life, Recv},
};
use crate::driver::{
    Completion, Token,
    uring::{
        lifecycle::Route,
        op::{Cancel, Close, RecvMulti, Send},
    },
};

/// A receive completion: data, EOF, error, or the end of the multishot.
///
/// At most one receive per connection is in flight: its state stays `Armed` (or `Cancelling`) until the
/// terminal CQE (no `IORING_CQE_F_MORE`), and only then is a new one armed, if the
/// connection still wants input (not closing, paused, starved, at EOF or failed).
#[inline]
pub(crate) fn on_recv(net: &NetShard, completion: Completion) {
    // Borrowed, not cloned: nothing below borrows the table mutably (closing and releasing
    // happen in other phases).
    let conns = net.conns.borrow();
    let Some(conn) = conns.get(completion.token) else {
        // A stale completion for a closed connection: only its buffer needs to go back.
        if let Some(bid) = completion.buffer_id() {
            let mut ring = net.core.driver.borrow_mut();
            ring.bufs_mut().mark_lent(bid);
            ring.bufs_mut().recycle(bid);
        }
        return;
    };
    let result = completion.result;
    if result > 0 {
        receive_data(net, conn, &completion);
    } else {
        match -result {
            0 => {
                conn.rx.borrow_mut().eof = true;
                conn.wake_reader();
            }
            libc::ENOBUFS => {
                net.count(|s| s.enobufs += 1);
                if !completion.more() && !conn.state().is_closing() {
                    conn.rx.borrow_mut().starved = true;
                    net.starved.borrow_mut().push_back(conn.clone());
                }
            }
            libc::ECANCELED => {}
            errno => {
                conn.rx.borrow_mut().error = Some(errno);
                conn.wake_reader();
                conn.wake_writer();
            }
        }
    }
    if !completion.more() {
        conn.apply(Event::RecvEnded);
        if wants_input(conn) {
            arm_recv(net, conn);
            net.count(|s| s.rearms += 1);
        } else if conn.rx.borrow().paused {
            // Someone may wait for the receive to end (kernel TLS hand-over).
            conn.wake_reader();
        }
    }
}

#[inline]
fn receive_data(net: &NetShard, conn: &Rc<Conn>, completion: &Completion) {
    let Some(bid) = completion.buffer_id() else {
        tracing::error!(
            shard = net.core.id,
            "receive completion without a buffer id"
        );
        return;
    };
    net.core.driver.borrow_mut().bufs_mut().mark_lent(bid);
    if conn.state().is_closing() {
        net.core.driver.borrow_mut().bufs_mut().recycle(bid);
        return;
    }
    let buffered = {
        let mut rx = conn.rx.borrow_mut();
        rx.lent.push_back(Lent {
            bid,
            start: 0,
            end: completion.result as u32,
        });
        if rx.lent.len() == 1 {
            // The usual case, the only piece: no need to look at the queue again.
            rx.spill.len() - rx.spill_pos + completion.result as usize
        } else {
            rx.buffered()
        }
    };
    net.count(|s| s.bytes_in += completion.result as u64);
    touch(net, conn);
    if buffered >= net.config.recv_buffered_max {
        pause_recv(net, conn);
    }
    conn.wake_reader();
}

/// A send failed (reset, broken pipe): the connection is dead in both directions. The
/// reader gets the error after the bytes already received, and the receive is cancelled
/// rather than trusted to end by itself: under load a multishot receive on a socket whose
/// send took the reset was seen to stay armed with no further completion (the socket
/// reports a pending error only once), leaving its reader waiting forever (R8).
fn fail_input(net: &NetShard, conn: &Rc<Conn>, errno: i32) {
    conn.rx.borrow_mut().error.get_or_insert(errno);
    cancel_recv(net, conn);
    conn.wake_reader();
}

/// Whether a connection whose receive ended should get a new one.
fn wants_input(conn: &Conn) -> bool {
    let rx = conn.rx.borrow();
    !conn.state().is_closing() && !rx.paused && !rx.starved && !rx.eof && rx.error.is_none()
}

/// A send completion, with the send's buffer back: continue a short send, or keep the
/// buffer as the spare and send what was written meanwhile.
#[inline]
pub(crate) fn on_send(net: &NetShard, route: Token, result: i32, mut send: Send) {
    // Borrowed, not cloned, as in `on_recv`.
    let conns = net.conns.borrow();
    // A connection already released: its buffer goes with the op.
    let Some(conn) = conns.get(route) else { return };
    conn.apply(Event::SendEnded);
    let mut tx = conn.tx.borrow_mut();
    if result < 0 {
        tx.error = Some(-result);
        tx.out = Vec::new();
        tx.sending = 0;
        drop(tx);
        fail_input(net, conn, -result);
        conn.wake_writer();
        return;
    }
    net.count(|s| s.bytes_out += result as u64);
    send.offset += result as usize;
    if send.offset < send.buf.len() {
        tx.sending = send.buf.len() - send.offset;
        drop(tx);
        submit_send(net, conn, send);
        return;
    }
    tx.sending = 0;
    send.buf.clear();
    tx.spare = send.buf;
    let more_output = !tx.out.is_empty();
    let below_watermark = tx.pending() < net.config.send_high_watermark;
    drop(tx);
    if more_output {
        queue_flush(net, conn);
    }
    if below_watermark {
        conn.wake_writer();
    }
}

pub(crate) fn on_accept(net: &NetShard, completion: Completion) {
    listener::on_accept(net, completion);
}

/// Marks a connection as having output to send this iteration.
#[inline]
pub(crate) fn queue_flush(net: &NetShard, conn: &Rc<Conn>) {
    touch(net, conn);
}

/// Puts `conn` on the list the after-run pass goes through once: it holds lent receive
/// buffers, or has output to send, or both (one entry however many reasons).
#[inline]
fn touch(net: &NetShard, conn: &Rc<Conn>) {
    if !conn.in_touched_list.replace(true) {
        net.touched.borrow_mut().push(conn.clone());
    }
}

pub(crate) fn arm_recv(net: &NetShard, conn: &Conn) {
    if conn.state().recv() != Recv::Off || !conn.apply(Event::Arm) {
        return;
    }
    net.core
        .driver
        .borrow_mut()
        .submit(RecvMulti { fd: conn.fd }, conn.recv_token());
}

fn pause_recv(net: &NetShard, conn: &Conn) {
    let mut rx = conn.rx.borrow_mut();
    if rx.paused {
        return;
    }
    rx.paused = true;
    drop(rx);
    net.count(|s| s.recv_paused += 1);
    cancel_recv(net, conn);
}

pub(crate) fn cancel_recv(net: &NetShard, conn: &Conn) {
    if conn.apply(Event::CancelRecv) {
        net.core.driver.borrow_mut().submit(
            Cancel {
                target: conn.recv_token(),
            },
            Token::IGNORE,
        );
    }
}

/// Called by a reader after it consumed input: resumes a paused receive.
pub(crate) fn maybe_resume_recv(net: &NetShard, conn: &Conn) {
    let resume = {
        let mut rx = conn.rx.borrow_mut();
        let resume = rx.paused && rx.buffered() < net.config.recv_buffered_max / 2;
        if resume {
            rx.paused = false;
        }
        resume
    };
    // While the cancelled receive is still in flight, its terminal CQE re-arms instead.
    if resume && !conn.state().recv_in_flight() && wants_input(conn) {
        arm_recv(net, conn);
    }
}

/// Hands `send` to the driver, which keeps its buffer until the completion comes back to
/// this connection (`on_send`).
#[inline(always)]
fn submit_send(net: &NetShard, conn: &Conn, send: Send) {
    let op = net
        .core
        .driver
        .borrow_mut()
        .submit_owned(send, Route::To(conn.send_token()));
    conn.apply(Event::SendSubmitted(op));
}

/// After the run phase, one pass over the connections touched this iteration: copy
/// unconsumed input out of lent buffers (returning them to the ring) and queue one send per
/// connection; then re-arm receives starved by ENOBUFS (with the buffers just returned).
pub(crate) fn after_run(net: &NetShard) {
    // Checked before taking the list, so an empty list keeps its capacity (no allocation at
    // the next touch).
    if !net.touched.borrow().is_empty() {
        let mut touched = std::mem::take(&mut *net.touched.borrow_mut());
        for conn in touched.drain(..) {
            conn.in_touched_list.set(false);
            settle_lent_buffers(net, &conn);
            flush(net, &conn);
        }
        // Give the (now empty) vector back so its capacity is reused.
        let mut list = net.touched.borrow_mut();
        if list.is_empty() {
            *list = touched;
        }
    }
    rearm_starved(net);
}

/// Copies what the task left unread in lent buffers into the connection's own spill
/// buffer, so the buffers go back to the ring before the next receive needs them.
#[inline]
fn settle_lent_buffers(net: &NetShard, conn: &Conn) {
    let mut rx = conn.rx.borrow_mut();
    let rx = &mut *rx;
    if rx.lent.is_empty() {
        return;
    }
    if rx.spill_pos > 0 {
        rx.spill.drain(..rx.spill_pos);
        rx.spill_pos = 0;
    }
    let mut ring = net.core.driver.borrow_mut();
    while let Some(lent) = rx.lent.pop_front() {
        rx.spill
            .extend_from_slice(ring.bufs().bytes(lent.bid, lent.start, lent.end));
        ring.bufs_mut().recycle(lent.bid);
    }
}

/// Queues one send of the connection's output, unless one is in flight (its completion
/// sends the rest) or the connection is aborting.
#[inline]
fn flush(net: &NetShard, conn: &Conn) {
    let state = conn.state();
    if state.send_in_flight().is_some() || state.is_aborting() {
        return;
    }
    let send = {
        let mut tx = conn.tx.borrow_mut();
        if tx.out.is_empty() || tx.error.is_some() {
            return;
        }
        let tx = &mut *tx;
        let buf = std::mem::replace(&mut tx.out, std::mem::take(&mut tx.spare));
        tx.sending = buf.len();
        Send {
            fd: conn.fd,
            buf,
            offset: 0,
        }
    };
    submit_send(net, conn, send);
}

/// Re-arms receives that ended with ENOBUFS, no more of them than there are free buffers,
/// so a dry ring never turns into a storm of receives that fail again at once.
fn rearm_starved(net: &NetShard) {
    let free = {
        let ring = net.core.driver.borrow();
        u32::from(ring.bufs().count()) - ring.bufs().lent()
    };
    let mut starved = net.starved.borrow_mut();
    // Only receives actually re-armed count against the free buffers: closed or paused
    // connections leave the list without using one.
    let mut armed = 0;
    while armed < free {
        let Some(conn) = starved.pop_front() else {
            break;
        };
        let was_starved = std::mem::replace(&mut conn.rx.borrow_mut().starved, false);
        if was_starved && !conn.state().recv_in_flight() && wants_input(&conn) {
            arm_recv(net, &conn);
            net.count(|s| s.rearms += 1);
            armed += 1;
        }
    }
}

/// Connections still waiting for buffers: the loop must not sleep while there are any, or
/// nothing would ever re-arm them (their peers may be waiting for us).
pub(crate) fn has_starved(net: &NetShard) -> bool {
    !net.starved.borrow().is_empty()
}

/// Starts closing a connection: its handle was dropped (`abort: false`: pending output is
/// still sent), or it is closed at once (`abort: true`: output abandoned, send cancelled).
/// It is released by the close phase once its last operation has ended.
pub(crate) fn close(net: &NetShard, conn: &Rc<Conn>, abort: bool) {
    let was_open = conn.state().life() == Life::Open;
    if !conn.apply(Event::Close { abort }) {
        return;
    }
    if was_open {
        net.closing.borrow_mut().push(conn.clone());
    }
    cancel_recv(net, conn);
    if abort && let Some(send) = conn.state().send_in_flight() {
        net.core
            .driver
            .borrow_mut()
            .submit(Cancel { target: send }, Token::IGNORE);
    }
}

/// Releases connections whose last operation has completed.
pub(crate) fn close_phase(net: &NetShard) {
    let mut closing = net.closing.borrow_mut();
    if closing.is_empty() {
        return;
    }
    let mut ring = net.core.driver.borrow_mut();
    let mut conns = net.conns.borrow_mut();
    let mut closed = CloseCounts::default();
    let mut uncapped = 0;
    closing.retain(|conn| {
        if conn.apply(Event::CancelRecv) {
            ring.submit(
                Cancel {
                    target: conn.recv_token(),
                },
                Token::IGNORE,
            );
        }
        if !conn.can_release() {
            return true;
        }
        let mut rx = conn.rx.borrow_mut();
        closed.count(conn, &rx, &conn.tx.borrow());
        for lent in rx.lent.drain(..) {
            ring.bufs_mut().recycle(lent.bid);
        }
        *rx = Default::default();
        *conn.tx.borrow_mut() = Default::default();
        conn.apply(Event::Release);
        if let Some(fd) = conn.owned_fd.borrow_mut().take() {
            ring.submit(Close::new(fd), Token::IGNORE);
        }
        conns.remove(conn);
        uncapped += usize::from(conn.capped.get());
        false
    });
    drop((ring, conns, closing));
    if uncapped > 0 {
        listener::room_freed_by(net, uncapped);
    }
    net.count(|s| {
        s.closed += closed.peer + closed.error + closed.forced + closed.local;
        s.closed_by_peer += closed.peer;
        s.closed_on_error += closed.error;
        s.closed_forced += closed.forced;
        s.closed_locally += closed.local;
    });
}

/// Why connections closed, counted while they are released.
#[derive(Default)]
struct CloseCounts {
    peer: u64,
    error: u64,
    forced: u64,
    local: u64,
}

impl CloseCounts {
    fn count(&mut self, conn: &Conn, rx: &super::conn::Rx, tx: &super::conn::Tx) {
        if conn.state().is_aborting() {
            self.forced += 1;
        } else if rx.error.is_some() || tx.error.is_some() {
            self.error += 1;
        } else if rx.eof {
            self.peer += 1;
        } else {
            self.local += 1;
        }
    }
}

/// Forced stop: abandon pending output and cancel every operation.
pub(crate) fn force_close_all(net: &NetShard) {
    let all = net.conns.borrow().all();
    for conn in all {
        close(net, &conn, true);
    }
    listener::close_all(net);
}

/// Stop accepting: every listener of the shard cancels its accept.
pub(crate) fn stop_listening(net: &NetShard) {
    net.draining.set(true);
    listener::stop_all(net);
}

/// No connection or listener remains.
pub(crate) fn is_quiet(net: &NetShard) -> bool {
    net.conns.borrow().open() == 0 && net.listeners.borrow().is_empty()
}

pub(crate) fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}
