//! The I/O traits of the ecosystem on [`TcpStream`], each a thin skin over the stream's own
//! poll functions, so all of them share one behaviour:
//!
//! - **read** copies straight from the connection's receive queue (the ring's provided
//!   buffers, or the spill of a slow reader) into the caller's buffer: the one copy the
//!   traits' signatures leave room for. It removes only what it copied, inside one poll, so
//!   dropping a read future loses nothing (cancellation-safe).
//! - **write** appends to the connection's output buffer once unsent output is below the
//!   high watermark (`NetConfig::send_high_watermark`); everything written in one loop
//!   iteration leaves in one send.
//! - **flush** hands nothing further to anybody: written bytes are already queued for this
//!   iteration's send, so it only waits while the output is above the high watermark
//!   (backpressure) and reports a failed send. Waiting for the kernel on every flush would
//!   cost one loop iteration per response and undo the batching of pipelined responses;
//!   [`TcpStream::flush`] waits for that when a caller needs it.
//! - **shutdown / close** waits until all output has been sent, then shuts down the write
//!   side.

use std::{
    io::{self, IoSlice},
    task::{Context, Poll, ready},
};

use crate::net::TcpStream;

/// Reads into a buffer with `room` bytes free: `put` receives the bytes to copy (at most
/// `room`). Returns 0 at end of stream.
pub(crate) fn poll_read_into(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    room: usize,
    mut put: impl FnMut(&[u8]),
) -> Poll<io::Result<usize>> {
    if room == 0 {
        return Poll::Ready(Ok(0));
    }
    let read = ready!(stream.poll_read_with(cx, &mut |data: &[u8]| {
        let n = data.len().min(room);
        put(&data[..n]);
        (n, n)
    }))?;
    Poll::Ready(Ok(read.unwrap_or(0)))
}

pub(crate) fn poll_write(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    if data.is_empty() {
        return Poll::Ready(Ok(0));
    }
    ready!(stream.poll_writable(cx))?;
    stream.write_buffered(data)?;
    Poll::Ready(Ok(data.len()))
}

pub(crate) fn poll_write_vectored(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    if bufs.iter().all(|b| b.is_empty()) {
        return Poll::Ready(Ok(0));
    }
    ready!(stream.poll_writable(cx))?;
    let n = stream.write_with(|out| {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        out.reserve(total);
        for buf in bufs {
            out.extend_from_slice(buf);
        }
        total
    })?;
    Poll::Ready(Ok(n))
}

/// See the module docs: waits only for the high watermark, not for the kernel.
pub(crate) fn poll_flush(stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    stream.poll_writable(cx)
}

pub(crate) fn poll_shutdown(stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match ready!(stream.poll_shutdown(cx)) {
        // The peer is gone already: there is nothing left to shut down.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
        other => Poll::Ready(other),
    }
}

/// The write methods the three write traits share, name for name and signature for
/// signature: each forwards to this module's function of the same name. Expanded inside each
/// trait's `impl` (the names in it resolve there: `Pin`, `Context`, `Poll`, `IoSlice`).
macro_rules! forward_write_methods {
    () => {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            super::poll_write(self.get_mut(), cx, buf)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            super::poll_write_vectored(self.get_mut(), cx, bufs)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            super::poll_flush(self.get_mut(), cx)
        }
    };
}

#[cfg(feature = "tokio-io")]
mod tokio_io {
    use std::{
        io::{self, IoSlice},
        pin::Pin,
        task::{Context, Poll},
    };

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    use crate::net::TcpStream;

    impl AsyncRead for TcpStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let room = buf.remaining();
            super::poll_read_into(self.get_mut(), cx, room, |data| buf.put_slice(data))
                .map_ok(|_| ())
        }
    }

    impl AsyncWrite for TcpStream {
        forward_write_methods!();

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            super::poll_shutdown(self.get_mut(), cx)
        }
    }
}

#[cfg(feature = "futures-io")]
mod futures_io {
    use std::{
        io::{self, IoSlice},
        pin::Pin,
        task::{Context, Poll},
    };

    use futures_io::{AsyncRead, AsyncWrite};

    use crate::net::TcpStream;

    impl AsyncRead for TcpStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let room = buf.len();
            super::poll_read_into(self.get_mut(), cx, room, |data| {
                buf[..data.len()].copy_from_slice(data);
            })
        }
    }

    impl AsyncWrite for TcpStream {
        forward_write_methods!();

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            super::poll_shutdown(self.get_mut(), cx)
        }
    }
}

#[cfg(feature = "hyper")]
mod hyper_io {
    use std::{
        io::{self, IoSlice},
        pin::Pin,
        task::{Context, Poll},
    };

    use hyper::rt::{Read, ReadBufCursor, Write};

    use crate::net::TcpStream;

    impl Read for TcpStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            let room = buf.remaining();
            super::poll_read_into(self.get_mut(), cx, room, |data| buf.put_slice(data))
                .map_ok(|_| ())
        }
    }

    impl Write for TcpStream {
        forward_write_methods!();

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            super::poll_shutdown(self.get_mut(), cx)
        }
    }
}
