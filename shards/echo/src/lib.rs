//! A TCP echo service on percore's public API: every byte a client sends comes back, in
//! order, on the same connection.
//!
//! Input is echoed straight from the shard's receive buffers into the connection's output
//! (no intermediate buffer), and reading stops while the output is above its high
//! watermark, so a client that sends without reading is pushed back by TCP instead of
//! growing server memory. On a graceful stop, input already received is echoed and flushed
//! before the connection closes.

#![forbid(unsafe_code)]

use std::{net::SocketAddr, time::Duration};

use percore::{
    Error, ServerBuilder, ServerHandle, TcpStream,
    future::{Either, select},
    shutdown_signal,
};

/// Serves echo on `addr` on every shard of `builder`.
pub fn serve(builder: ServerBuilder, addr: SocketAddr) -> Result<ServerHandle, Error> {
    builder.serve(addr, handle)
}

/// Echoes one connection until the peer closes, an error occurs, or the server drains.
pub async fn handle(mut stream: TcpStream) {
    loop {
        if let Either::Right(()) = select(stream.writable(), shutdown_signal()).await {
            break;
        }
        let echoed = select(
            stream.respond_with(|input, output| {
                output.extend_from_slice(input);
                (input.len(), ())
            }),
            shutdown_signal(),
        )
        .await;
        match echoed {
            Either::Left(Ok(Some(()))) => {}
            Either::Left(Ok(None) | Err(_)) | Either::Right(()) => break,
        }
    }
    // Bounded: a peer that never reads is cut off when the server's drain deadline passes.
    let _ = percore::time::timeout(Duration::from_secs(30), stream.flush()).await;
}
