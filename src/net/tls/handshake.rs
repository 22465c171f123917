//! The server handshake of an accepted connection, on its shard, without blocking it.
//!
//! Policy (issue #18):
//! - **Deadline**: from accept to the end of the handshake, waiting for a slot included,
//!   `TlsConfig::handshake_timeout` (default 10 s); then the connection is closed and
//!   counted as `timeout`.
//! - **Cap**: a shard runs at most `TlsConfig::max_handshakes` handshakes at once (default
//!   256). Connections beyond it are already accepted; they wait for a slot in accept order,
//!   holding no more than their unread ClientHello bytes (bounded by the receive cap), and
//!   their deadline keeps running, so a flood of idle connections ends in closes (counted as
//!   `overload` when the slot never came, `timeout` otherwise) instead of CPU spent on them. Accepting itself stays bounded by `accept_queue_max`.
//! - **Bad input**: plaintext HTTP gets a plaintext `400` (a browser could not read an
//!   alert); anything else rustls refuses gets its alert, then a close. Every failure is
//!   counted by reason (`percore_tls_handshake_failures_total{reason=...}`).

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    future::poll_fn,
    rc::Rc,
    task::{Poll, Waker},
    time::Duration,
};

use rustls::ServerConnection;

use super::{
    Failure, TlsAcceptor,
    session::{PLAINTEXT_HTTP_ANSWER, Session, sniff},
    stream::pump,
};
use crate::net::{
    NetShard,
    conn::register,
    dispatch::{maybe_resume_recv, queue_flush},
    stream::{TcpStream, consume},
};

/// One shard's handshake slots, granted in request order.
#[derive(Default)]
pub(crate) struct Slots {
    active: Cell<usize>,
    waiting: RefCell<VecDeque<Rc<Waiter>>>,
}

#[derive(Default)]
struct Waiter {
    granted: Cell<bool>,
    gone: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// A handshake slot; given to the next waiter when dropped.
pub(crate) struct Permit<'a> {
    slots: &'a Slots,
}

impl Slots {
    /// Handshakes running now.
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        self.active.get()
    }

    /// Waits for a slot (at most `cap` are held at once).
    pub(crate) async fn acquire(&self, cap: usize) -> Permit<'_> {
        if self.active.get() < cap.max(1) && self.waiting.borrow().is_empty() {
            self.active.set(self.active.get() + 1);
            return Permit { slots: self };
        }
        let waiter = Rc::new(Waiter::default());
        self.waiting.borrow_mut().push_back(waiter.clone());
        let mut guard = WaitGuard {
            slots: self,
            waiter,
            done: false,
        };
        poll_fn(|cx| {
            if guard.waiter.granted.get() {
                return Poll::Ready(());
            }
            register(&mut guard.waiter.waker.borrow_mut(), cx.waker());
            Poll::Pending
        })
        .await;
        guard.done = true;
        Permit { slots: self }
    }

    /// Passes a slot on to the first waiter still there, or frees it.
    fn release(&self) {
        loop {
            let next = self.waiting.borrow_mut().pop_front();
            match next {
                Some(waiter) if waiter.gone.get() => continue,
                Some(waiter) => {
                    waiter.granted.set(true);
                    if let Some(waker) = waiter.waker.borrow_mut().take() {
                        waker.wake();
                    }
                    return;
                }
                None => {
                    self.active.set(self.active.get() - 1);
                    return;
                }
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.slots.release();
    }
}

/// A waiter that gave up (its deadline passed): a slot already granted to it goes on.
struct WaitGuard<'a> {
    slots: &'a Slots,
    waiter: Rc<Waiter>,
    done: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.waiter.granted.get() {
            self.slots.release();
        } else {
            self.waiter.gone.set(true);
        }
    }
}

/// Runs the server handshake on `stream` within the acceptor's deadline and slot cap.
/// On success the stream reads and writes plaintext from then on; on failure it has
/// queued its alert (or plaintext answer) and the caller drops it, which sends that and
/// closes.
pub(crate) async fn handshake(
    stream: &mut TcpStream,
    acceptor: &TlsAcceptor,
) -> Result<(), Failure> {
    let net = stream.net.clone();
    let settings = acceptor.settings();
    let got_slot = Cell::new(false);
    let run = async {
        let _permit = net.tls.slots.acquire(settings.max_handshakes).await;
        got_slot.set(true);
        let tls =
            ServerConnection::new(acceptor.server_config()).map_err(|_| Failure::BadRecord)?;
        let mut session = Session::new(tls, acceptor.ktls().is_available());
        drive(&net, stream, &mut session, true).await?;
        Ok(session)
    };
    let result = match deadline_first(settings.handshake_timeout, run).await {
        Some(result) => result,
        None if got_slot.get() => Err(Failure::Timeout),
        None => Err(Failure::Overload),
    };
    match result {
        Ok(session) => {
            let resumed = session.tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            net.count(|s| {
                s.tls.handshakes += 1;
                if resumed {
                    s.tls.resumed += 1;
                }
            });
            stream.tls = Some(Box::new(session));
            Ok(())
        }
        Err(failure) => {
            net.count(|s| s.tls.handshake_failures[failure.index()] += 1);
            Err(failure)
        }
    }
}

/// Runs `future` until `limit` passes, looking at the clock first: a slot handed to a
/// waiter whose deadline has just passed is given on, not used for a doomed handshake.
async fn deadline_first<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut sleep = crate::time::sleep(limit);
    poll_fn(|cx| {
        if std::pin::Pin::new(&mut sleep).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        future.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Runs the client handshake of an outbound connection (`TcpStream::connect`, then this):
/// from then on the stream reads and writes plaintext, as on the server side. No deadline
/// of its own: wrap it in `time::timeout`.
pub async fn connect(
    mut stream: TcpStream,
    config: std::sync::Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
) -> std::io::Result<TcpStream> {
    let tls = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut session = Session::new(tls, false);
    let net = stream.net.clone();
    if let Err(failure) = drive(&net, &stream, &mut session, false).await {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("tls handshake: {}", failure.label()),
        ));
    }
    stream.tls = Some(Box::new(session));
    Ok(stream)
}

/// Feeds the connection's input to rustls until the handshake is over (`sniff_first`: a
/// server classifies a first flight that is not TLS).
async fn drive(
    net: &Rc<NetShard>,
    stream: &TcpStream,
    session: &mut Session,
    sniff_first: bool,
) -> Result<(), Failure> {
    let conn = stream.conn.clone();
    let mut sniffed = !sniff_first;
    poll_fn(|cx| {
        if !sniffed && conn.rx.borrow().has_buffered() {
            sniffed = true;
            let (_, verdict) = consume(net, &conn, &mut |first: &[u8]| (0, sniff(first)));
            match verdict {
                Some(Failure::PlaintextHttp) => {
                    conn.tx
                        .borrow_mut()
                        .out
                        .extend_from_slice(PLAINTEXT_HTTP_ANSWER);
                    queue_flush(net, &conn);
                    return Poll::Ready(Err(Failure::PlaintextHttp));
                }
                Some(failure) => {
                    // rustls answers with its alert; the reason stays ours.
                    let _ = pump(net, &conn, session);
                    return Poll::Ready(Err(failure));
                }
                None => {}
            }
        }
        pump(net, &conn, session)?;
        if !session.tls.is_handshaking() {
            return Poll::Ready(Ok(()));
        }
        let mut rx = conn.rx.borrow_mut();
        if rx.has_buffered() {
            // The plaintext cap stopped the pump; a handshake never gets there.
            return Poll::Ready(Err(Failure::BadRecord));
        }
        if rx.error.is_some() || rx.eof || session.peer_closed {
            return Poll::Ready(Err(Failure::Eof));
        }
        register(&mut rx.waker, cx.waker());
        let paused = rx.paused;
        drop(rx);
        if paused {
            maybe_resume_recv(net, &conn);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        pin::pin,
        task::{Context, Poll, Waker},
    };

    use super::Slots;

    #[test]
    fn slots_are_granted_in_order_and_skipped_when_their_waiter_left() {
        let slots = Slots::default();
        let mut cx = Context::from_waker(Waker::noop());
        let first = pin!(slots.acquire(1));
        let Poll::Ready(first) = first.poll(&mut cx) else {
            panic!("a free slot is granted at once");
        };
        let mut second = Box::pin(slots.acquire(1));
        let mut third = pin!(slots.acquire(1));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert!(third.as_mut().poll(&mut cx).is_pending());
        // The second waiter gives up (its deadline passed): the slot goes to the third.
        drop(second);
        drop(first);
        let Poll::Ready(third) = third.as_mut().poll(&mut cx) else {
            panic!("the slot passes to the next waiter still there");
        };
        assert_eq!(slots.active(), 1);
        drop(third);
        assert_eq!(slots.active(), 0);
    }

    #[test]
    fn a_slot_granted_to_a_waiter_that_left_is_passed_on() {
        let slots = Slots::default();
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(first) = pin!(slots.acquire(1)).poll(&mut cx) else {
            panic!("free slot");
        };
        let mut second = Box::pin(slots.acquire(1));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(first); // granted to `second`, which never polls again
        drop(second);
        assert_eq!(slots.active(), 0, "the slot leaked");
    }
}
