//! The TLS side of `TcpStream`: the same reading and writing contract as the plaintext
//! path (lend the input, append the output, nothing lost when a read future is dropped),
//! with ciphertext on the connection and plaintext in the service's hands.
//!
//! Input: every poll moves the ciphertext waiting in the connection's receive queue into
//! rustls (returning the ring's buffers at once), and the plaintext it decrypts into the
//! session, which lends it to the reader. Output: what the service appends lands in the
//! session's scratch buffer and is sealed into records in the connection's output before
//! the poll returns, so the shard's one-send-per-iteration batching is unchanged.

use std::{
    io,
    rc::Rc,
    task::{Context, Poll},
};

use super::{Failure, session::Session};
use crate::{
    net::{
        NetShard,
        conn::{Conn, register},
        dispatch::{errno, maybe_resume_recv, queue_flush},
        stream::consume,
    },
    task::coop,
};

/// Moves the connection's ciphertext into the session, decrypting it, and queues whatever
/// rustls answers (handshake messages, alerts). Stops taking input while the session holds
/// `recv_buffered_max` plaintext bytes unread.
pub(crate) fn pump(net: &NetShard, conn: &Rc<Conn>, session: &mut Session) -> Result<(), Failure> {
    let mut result = Ok(());
    if conn.rx.borrow().has_buffered() {
        let limit = net.config.recv_buffered_max;
        let (_, absorbed) = consume(net, conn, &mut |cipher: &[u8]| {
            session.absorb(cipher, limit)
        });
        result = absorbed;
        if conn.rx.borrow().paused {
            maybe_resume_recv(net, conn);
        }
    }
    if session.tls.wants_write() {
        session.write_output(&mut conn.tx.borrow_mut().out);
        queue_flush(net, conn);
    }
    if result.is_err() {
        // The alert is the last thing this session sends.
        session.close_sent = true;
    }
    result
}

/// Input refused after the handshake: counted, and the reader gets `InvalidData`.
fn record_error(net: &NetShard, failure: Failure) -> io::Error {
    net.count(|s| s.tls.record_errors += 1);
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("tls: {}", failure.label()),
    )
}

/// `TcpStream::poll_read_with` and `poll_respond_with` over TLS: `f` gets the plaintext
/// input and the plaintext output buffer.
pub(crate) fn poll_read<R>(
    net: &NetShard,
    conn: &Rc<Conn>,
    session: &mut Session,
    cx: &mut Context<'_>,
    f: &mut impl FnMut(&[u8], &mut Vec<u8>) -> (usize, R),
) -> Poll<io::Result<Option<R>>> {
    if let Err(failure) = pump(net, conn, session) {
        return Poll::Ready(Err(record_error(net, failure)));
    }
    if session.has_unseen() {
        if !coop::consume() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let Session {
            plain,
            pos,
            scratch,
            ..
        } = session;
        let (consumed, value) = f(&plain[*pos..], scratch);
        session.consume(consumed);
        seal(net, conn, session);
        if consumed > 0 {
            return Poll::Ready(Ok(Some(value)));
        }
        let buffered = session.plaintext().len();
        session.seen = buffered;
        if buffered >= net.config.recv_buffered_max {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "receive limit reached: the reader consumed nothing from a full receive queue",
            )));
        }
    }
    let mut rx = conn.rx.borrow_mut();
    if let Some(code) = rx.error {
        return Poll::Ready(Err(errno(code)));
    }
    // close_notify, or the peer closed without it (as most HTTP clients do): end of input.
    if session.peer_closed || (rx.eof && !rx.has_buffered()) {
        return Poll::Ready(Ok(None));
    }
    register(&mut rx.waker, cx.waker());
    let paused = rx.paused;
    drop(rx);
    if paused {
        maybe_resume_recv(net, conn);
    }
    Poll::Pending
}

/// Seals what the service wrote into the session's scratch buffer.
pub(crate) fn seal(net: &NetShard, conn: &Rc<Conn>, session: &mut Session) {
    if !session.scratch.is_empty() {
        session.seal_scratch(&mut conn.tx.borrow_mut().out);
        queue_flush(net, conn);
    }
}

/// `TcpStream::readable` over TLS: decrypted input not yet offered, or the end.
pub(crate) fn poll_readable(
    net: &NetShard,
    conn: &Rc<Conn>,
    session: &mut Session,
    cx: &mut Context<'_>,
) -> Poll<io::Result<bool>> {
    if let Err(failure) = pump(net, conn, session) {
        return Poll::Ready(Err(record_error(net, failure)));
    }
    if session.has_unseen() {
        return Poll::Ready(Ok(true));
    }
    let mut rx = conn.rx.borrow_mut();
    if let Some(code) = rx.error {
        return Poll::Ready(Err(errno(code)));
    }
    if session.peer_closed || rx.eof {
        return Poll::Ready(Ok(false));
    }
    register(&mut rx.waker, cx.waker());
    Poll::Pending
}

/// Queues close_notify before the write side closes (shutdown, or the stream's drop),
/// unless the connection already failed or is being aborted.
pub(crate) fn close_notify(net: &NetShard, conn: &Rc<Conn>, session: &mut Session) {
    if session.close_sent || conn.state().is_closing() {
        return;
    }
    let mut tx = conn.tx.borrow_mut();
    if tx.error.is_some() || tx.shutdown_after_flush {
        return;
    }
    session.close_notify(&mut tx.out);
    drop(tx);
    queue_flush(net, conn);
}
