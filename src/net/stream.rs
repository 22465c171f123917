//! `TcpStream`: the async API of one connection.
//!
//! Reading never loses data: every read looks at the connection's receive queue, which the
//! shard fills from completions, and removes only what the caller consumed, synchronously,
//! inside one poll. Dropping any read future therefore loses nothing.
//!
//! Writing appends to the connection's output buffer; the shard sends it after the run
//! phase, one send per connection per iteration. `write_all` waits while the unsent output
//! is above the high watermark, which bounds the memory a slow reader can make us hold.

use std::{
    future::poll_fn,
    io,
    net::{Shutdown, SocketAddr},
    rc::Rc,
    task::{Context, Poll},
};

use super::{
    NetShard,
    conn::{Conn, register},
    dispatch::{close, errno, maybe_resume_recv, queue_flush},
};
use crate::{sys::socket, task::coop};

/// A TCP connection owned by the current shard (`!Send`: it lives and dies on its shard).
///
/// On a TLS listener (the `tls` feature) the stream carries its TLS session: every method
/// below then reads and writes plaintext, with the same contract (see `net::tls`).
pub struct TcpStream {
    pub(crate) net: Rc<NetShard>,
    pub(crate) conn: Rc<Conn>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Box<super::tls::Session>>,
    /// The client's address from a PROXY protocol header, when one came.
    client: Option<SocketAddr>,
}

impl TcpStream {
    pub(crate) fn new(net: Rc<NetShard>, conn: Rc<Conn>) -> Self {
        TcpStream {
            net,
            conn,
            #[cfg(feature = "tls")]
            tls: None,
            client: None,
        }
    }

    /// The TLS session, on a TLS connection still served by rustls (`None` for plaintext
    /// and for sessions handed to the kernel).
    #[cfg(feature = "tls")]
    pub fn tls_session(&self) -> Option<&super::tls::Session> {
        self.tls.as_deref()
    }

    /// The client's address: the one a trusted proxy gave in a PROXY protocol header (see
    /// `ServerBuilder::proxy_protocol`), else the peer's.
    pub fn client_addr(&self) -> io::Result<SocketAddr> {
        match self.client {
            Some(addr) => Ok(addr),
            None => self.peer_addr(),
        }
    }

    /// Whether the client address came from a PROXY protocol header.
    pub fn is_proxied(&self) -> bool {
        self.client.is_some()
    }

    pub(crate) fn set_client_addr(&mut self, addr: SocketAddr) {
        self.client = Some(addr);
    }

    /// Waits for input and shows every buffered byte to `f` without consuming any: `f`
    /// returns `Some` to finish, `None` to wait for more. `Ok(None)` at end of stream. (The
    /// PROXY protocol check of an untrusted peer's first bytes.)
    pub(crate) async fn peek_with<R>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Option<R>,
    ) -> io::Result<Option<R>> {
        poll_fn(|cx| poll_peek(&self.net, &self.conn, cx, &mut f)).await
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket::peer_addr(self.conn.fd)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.conn.fd)
    }

    /// Sets TCP_NODELAY (on by default; see `NetConfig::nodelay`).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        socket::set_nodelay(self.conn.fd, on)
    }

    /// Bytes received and not yet consumed (over TLS: decrypted, plus ciphertext not yet
    /// decrypted).
    pub fn buffered_len(&self) -> usize {
        let raw = self.conn.rx.borrow().buffered();
        #[cfg(feature = "tls")]
        if let Some(session) = &self.tls {
            return raw + session.plaintext().len();
        }
        raw
    }

    /// Output written and not yet sent.
    pub fn pending_output(&self) -> usize {
        self.conn.tx.borrow().pending()
    }

    /// Reads into `buf`; `Ok(0)` means the peer closed its side (or `buf` is empty).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let read = self
            .read_with(|data| {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                (n, n)
            })
            .await?;
        Ok(read.unwrap_or(0))
    }

    /// Reads until `delim` (included) or the end of the stream, appending to `buf`; returns
    /// how many bytes were appended (0 at the end of the stream). A line of more than `limit`
    /// bytes (delimiter included) fails with `InvalidData` after `limit` bytes were appended
    /// and consumed: the rest of the line stays unread, so close the connection (or skip to
    /// the next delimiter) after telling the peer. The bound keeps a peer that never sends
    /// `delim` from growing `buf` without end.
    pub async fn read_until(
        &mut self,
        delim: u8,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> io::Result<usize> {
        enum Step {
            Done,
            More,
            TooLong,
        }
        if limit == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read_until needs a limit of at least 1 byte",
            ));
        }
        let mut appended = 0usize;
        loop {
            let step = self
                .read_with(|data| {
                    let room = limit - appended;
                    let found = data.iter().position(|b| *b == delim);
                    match found {
                        Some(i) if i < room => {
                            buf.extend_from_slice(&data[..=i]);
                            appended += i + 1;
                            (i + 1, Step::Done)
                        }
                        _ if data.len() >= room => {
                            buf.extend_from_slice(&data[..room]);
                            appended += room;
                            (room, Step::TooLong)
                        }
                        _ => {
                            buf.extend_from_slice(data);
                            appended += data.len();
                            (data.len(), Step::More)
                        }
                    }
                })
                .await?;
            match step {
                Some(Step::Done) => return Ok(appended),
                Some(Step::More) => continue,
                Some(Step::TooLong) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("line longer than {limit} bytes"),
                    ));
                }
                // The end of the stream: what was appended is the last, unterminated line
                // (any unconsumed bytes were appended by the steps before).
                None => return Ok(appended),
            }
        }
    }

    /// Reads one line (up to `\n`, included) into `line`, appending; returns how many bytes
    /// were read (0 at the end of the stream). At most `limit` bytes: a longer line fails
    /// with `InvalidData`, as does a line that is not UTF-8 (see
    /// [`read_until`](Self::read_until)).
    pub async fn read_line(&mut self, line: &mut String, limit: usize) -> io::Result<usize> {
        let mut bytes = Vec::new();
        let n = self.read_until(b'\n', &mut bytes, limit).await?;
        match String::from_utf8(bytes) {
            Ok(text) => {
                line.push_str(&text);
                Ok(n)
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "line is not valid UTF-8",
            )),
        }
    }

    /// Waits for input and lends all buffered bytes, as one contiguous slice, to `f`, which
    /// returns how many it consumed and a value. Consuming 0 means "not enough yet": the call
    /// then waits for more bytes and calls `f` again. Returns `Ok(None)` at end of stream,
    /// when the unconsumed bytes (if any) are final.
    ///
    /// `f` must not call other percore functions (it runs while the receive queue is borrowed).
    pub async fn read_with<R>(
        &mut self,
        f: impl FnMut(&[u8]) -> (usize, R),
    ) -> io::Result<Option<R>> {
        let mut f = f;
        poll_fn(|cx| self.poll_read_with(cx, &mut f)).await
    }

    /// The poll form of [`read_with`](Self::read_with), for hand-written futures.
    pub fn poll_read_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: &mut impl FnMut(&[u8]) -> (usize, R),
    ) -> Poll<io::Result<Option<R>>> {
        #[cfg(feature = "tls")]
        if let Some(session) = &mut self.tls {
            let mut lend = |input: &[u8], _: &mut Vec<u8>| f(input);
            return super::tls::stream::poll_read(&self.net, &self.conn, session, cx, &mut lend);
        }
        poll_read(&self.net, &self.conn, cx, f)
    }

    /// Waits until there is input not yet seen by a reader (`Ok(true)`) or the peer closed
    /// (`Ok(false)`), without consuming anything: for a task that waits on something else
    /// and must notice a disconnect (a blocked kv pop).
    pub async fn readable(&mut self) -> io::Result<bool> {
        poll_fn(|cx| {
            #[cfg(feature = "tls")]
            if let Some(session) = &mut self.tls {
                return super::tls::stream::poll_readable(&self.net, &self.conn, session, cx);
            }
            let mut rx = self.conn.rx.borrow_mut();
            if rx.buffered() > rx.seen_len {
                return Poll::Ready(Ok(true));
            }
            if let Some(code) = rx.error {
                return Poll::Ready(Err(errno(code)));
            }
            if rx.eof {
                return Poll::Ready(Ok(false));
            }
            register(&mut rx.waker, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Waits for input, then lends all buffered input and the output buffer to `f` at once:
    /// the shape of a protocol server (parse requests, append responses, no copies). `f`
    /// returns how many input bytes it consumed; 0 means "need more" (it is called again when
    /// more arrives). Returns `Ok(None)` at end of stream. Whatever `f` appended is sent after
    /// this iteration's run phase.
    pub async fn respond_with<R>(
        &mut self,
        mut f: impl FnMut(&[u8], &mut Vec<u8>) -> (usize, R),
    ) -> io::Result<Option<R>> {
        poll_fn(|cx| self.poll_respond_with(cx, &mut f)).await
    }

    /// The poll form of [`respond_with`](Self::respond_with), for a connection task that
    /// waits on its input, its deadlines and the server's drain in one hand-written poll.
    pub fn poll_respond_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: &mut impl FnMut(&[u8], &mut Vec<u8>) -> (usize, R),
    ) -> Poll<io::Result<Option<R>>> {
        if let Some(code) = self.conn.tx.borrow().error {
            return Poll::Ready(Err(errno(code)));
        }
        #[cfg(feature = "tls")]
        if let Some(session) = &mut self.tls {
            return super::tls::stream::poll_read(&self.net, &self.conn, session, cx, f);
        }
        let (net, conn) = (&self.net, &self.conn);
        let mut lend = |input: &[u8]| {
            let mut tx = conn.tx.borrow_mut();
            let before = tx.out.len();
            let outcome = f(input, &mut tx.out);
            let wrote = tx.out.len() != before;
            drop(tx);
            // Queued at once, even when `f` consumed nothing yet: an interim response such as
            // `100 Continue` must leave before the peer sends what we wait for.
            if wrote {
                queue_flush(net, conn);
            }
            outcome
        };
        poll_read(net, conn, cx, &mut lend)
    }

    /// Whether a read polled now with `cx` would return `Pending` and change nothing: no
    /// input the reader has not seen, no end of stream or error, receiving not paused, and
    /// `cx`'s waker already the registered one. A task that has just consumed its input
    /// (a keep-alive server after its answers) can skip that poll.
    #[inline]
    pub fn read_would_wait(&self, cx: &Context<'_>) -> bool {
        if self.conn.tx.borrow().error.is_some() {
            return false;
        }
        let rx = self.conn.rx.borrow();
        let unseen = if rx.seen_len == 0 {
            rx.has_buffered()
        } else {
            rx.buffered() > rx.seen_len
        };
        !unseen
            && rx.error.is_none()
            && !rx.eof
            && !rx.paused
            && rx
                .waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
    }

    /// Appends to the output buffer without waiting (sent after this iteration's run phase).
    /// Callers that write a lot should `await` [`writable`](Self::writable) between writes, or
    /// use [`write_all`](Self::write_all), so the buffer stays bounded.
    pub fn write_buffered(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_with(|out| out.extend_from_slice(data))
    }

    /// Lets `f` append to the output buffer in place (zero-copy response building).
    pub fn write_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> io::Result<R> {
        let value = {
            let mut tx = self.conn.tx.borrow_mut();
            if let Some(code) = tx.error {
                return Err(errno(code));
            }
            if tx.shutdown_after_flush {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "write after shutdown",
                ));
            }
            #[cfg(feature = "tls")]
            if let Some(session) = &mut self.tls {
                drop(tx);
                let value = f(&mut session.scratch);
                super::tls::stream::seal(&self.net, &self.conn, session);
                return Ok(value);
            }
            let before = tx.out.len();
            let value = f(&mut tx.out);
            if tx.out.len() == before {
                return Ok(value);
            }
            value
        };
        queue_flush(&self.net, &self.conn);
        Ok(value)
    }

    /// Writes all of `data`, first waiting while unsent output is above the high watermark.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.writable().await?;
        self.write_buffered(data)
    }

    /// Waits until unsent output is below the high watermark.
    pub async fn writable(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// The poll form of [`writable`](Self::writable) (for `AsyncWrite`-style adapters).
    pub fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let watermark = self.net.config.send_high_watermark;
        self.poll_output(cx, |pending| pending < watermark)
    }

    /// Waits until everything written has been handed to the kernel.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// The poll form of [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_output(cx, |pending| pending == 0)
    }

    fn poll_output(
        &mut self,
        cx: &mut Context<'_>,
        done: impl Fn(usize) -> bool,
    ) -> Poll<io::Result<()>> {
        let mut tx = self.conn.tx.borrow_mut();
        if let Some(code) = tx.error {
            return Poll::Ready(Err(errno(code)));
        }
        if done(tx.pending()) {
            return Poll::Ready(Ok(()));
        }
        register(&mut tx.waker, cx.waker());
        Poll::Pending
    }

    /// Flushes, then shuts down the write side (the peer reads EOF); reading goes on.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_shutdown(cx)).await
    }

    /// The poll form of [`shutdown`](Self::shutdown); shutting down twice is harmless.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.conn.tx.borrow().shutdown_after_flush {
            return Poll::Ready(Ok(()));
        }
        #[cfg(feature = "tls")]
        if let Some(session) = &mut self.tls {
            super::tls::stream::close_notify(&self.net, &self.conn, session);
        }
        std::task::ready!(self.poll_flush(cx))?;
        self.conn.tx.borrow_mut().shutdown_after_flush = true;
        Poll::Ready(socket::shutdown(self.conn.fd, Shutdown::Write))
    }

    /// Closes at once, abandoning output not yet sent (for a peer that stopped reading). A
    /// plain drop instead keeps sending what was written before it closes.
    pub fn abort(self) {
        close(&self.net, &self.conn, true);
    }

    /// Flushes and closes. Dropping the stream also closes it, after sending what was written.
    pub async fn close(mut self) -> io::Result<()> {
        self.flush().await
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(session) = &mut self.tls {
            super::tls::stream::close_notify(&self.net, &self.conn, session);
        }
        close(&self.net, &self.conn, false);
    }
}

/// [`TcpStream::poll_read_with`] over the stream's parts, so a caller can lend `f` other
/// borrows of them.
fn poll_read<R>(
    net: &NetShard,
    conn: &Conn,
    cx: &mut Context<'_>,
    f: &mut impl FnMut(&[u8]) -> (usize, R),
) -> Poll<io::Result<Option<R>>> {
    let mut rx = conn.rx.borrow_mut();
    // Input the reader has not seen yet; usually it has seen none (nothing to sum).
    let unseen = if rx.seen_len == 0 {
        rx.has_buffered()
    } else {
        rx.buffered() > rx.seen_len
    };
    if unseen {
        if !coop::consume() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        drop(rx);
        let (consumed, value) = consume(net, conn, f);
        if consumed > 0 {
            if conn.rx.borrow().paused {
                maybe_resume_recv(net, conn);
            }
            return Poll::Ready(Ok(Some(value)));
        }
        rx = conn.rx.borrow_mut();
        // What was offered: a pass that consumed nothing left the buffered bytes as they were.
        let buffered = rx.buffered();
        rx.seen_len = buffered;
        if buffered >= net.config.recv_buffered_max {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "receive limit reached: the reader consumed nothing from a full receive queue",
            )));
        }
    }
    if let Some(code) = rx.error {
        return Poll::Ready(Err(errno(code)));
    }
    if rx.eof {
        return Poll::Ready(Ok(None));
    }
    register(&mut rx.waker, cx.waker());
    // Only a paused receive can need resuming (the common case skips the call).
    let paused = rx.paused;
    drop(rx);
    if paused {
        maybe_resume_recv(net, conn);
    }
    Poll::Pending
}

/// `poll_read` for a reader that consumes nothing: ready once `f` says `Some`.
fn poll_peek<R>(
    net: &NetShard,
    conn: &Conn,
    cx: &mut Context<'_>,
    f: &mut impl FnMut(&[u8]) -> Option<R>,
) -> Poll<io::Result<Option<R>>> {
    let mut rx = conn.rx.borrow_mut();
    if rx.buffered() > rx.seen_len {
        drop(rx);
        let (_, value) = consume(net, conn, &mut |data| (0, f(data)));
        rx = conn.rx.borrow_mut();
        if let Some(value) = value {
            // The next reader sees every byte as new.
            rx.seen_len = 0;
            return Poll::Ready(Ok(Some(value)));
        }
        let buffered = rx.buffered();
        rx.seen_len = buffered;
        if buffered >= net.config.recv_buffered_max {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "receive limit reached while peeking",
            )));
        }
    }
    if let Some(code) = rx.error {
        return Poll::Ready(Err(errno(code)));
    }
    if rx.eof {
        rx.seen_len = 0;
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

/// Calls `f` with every buffered byte as one slice (copying lent buffers together only
/// when there is more than one piece) and removes what it consumed.
pub(crate) fn consume<R>(
    net: &NetShard,
    conn: &Conn,
    f: &mut impl FnMut(&[u8]) -> (usize, R),
) -> (usize, R) {
    let mut rx = conn.rx.borrow_mut();
    let rx = &mut *rx;
    let spilled = rx.spill.len() - rx.spill_pos;
    if spilled > 0 || rx.lent.len() > 1 {
        let mut ring = net.core.driver.borrow_mut();
        while let Some(lent) = rx.lent.pop_front() {
            rx.spill
                .extend_from_slice(ring.bufs().bytes(lent.bid, lent.start, lent.end));
            ring.bufs_mut().recycle(lent.bid);
        }
        drop(ring);
        let (consumed, value) = f(&rx.spill[rx.spill_pos..]);
        let consumed = consumed.min(rx.spill.len() - rx.spill_pos);
        rx.spill_pos += consumed;
        if rx.spill_pos == rx.spill.len() {
            rx.spill.clear();
            rx.spill_pos = 0;
            if rx.spill.capacity() > 16 * 1024 {
                rx.spill = Vec::new();
            }
        }
        if consumed > 0 {
            rx.seen_len = 0;
        }
        return (consumed, value);
    }
    let Some(lent) = rx.lent.front_mut() else {
        return f(&[]);
    };
    let ring = net.core.driver.borrow();
    let bytes = ring.bufs().bytes(lent.bid, lent.start, lent.end);
    let (consumed, value) = f(bytes);
    let consumed = consumed.min(bytes.len()) as u32;
    drop(ring);
    lent.start += consumed;
    if lent.start == lent.end {
        let bid = lent.bid;
        rx.lent.pop_front();
        net.core.driver.borrow_mut().bufs_mut().recycle(bid);
    }
    if consumed > 0 {
        rx.seen_len = 0;
    }
    (consumed as usize, value)
}
