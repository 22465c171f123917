//! A TCP echo service on percore's public API: every byte a client sends comes back, in
//! order, on the same connection.
//!
//! Input is echoed straight from the shard's receive buffers into the connection's output
//! (no intermediate buffer), and reading stops while the output is above its high
//! watermark, so a client that sends without reading is pushed back by TCP instead of
//! growing server memory.
//!
//! On a graceful stop the listeners close at once, while open connections go on being served
//! until their clients close them or the server's drain deadline passes; a byte stream has
//! no request boundary at which the server could end it sooner without losing data.

#![forbid(unsafe_code)]

use std::net::SocketAddr;

use percore::{Error, ServerBuilder, ServerHandle, TcpStream};

/// Serves echo on `addr` on every shard of `builder`.
pub fn serve(builder: ServerBuilder, addr: SocketAddr) -> Result<ServerHandle, Error> {
    builder.serve(addr, handle)
}

/// Echoes one connection until the peer closes its side or an error occurs.
pub async fn handle(mut stream: TcpStream) {
    loop {
        if stream.writable().await.is_err() {
            return;
        }
        let echoed = stream
            .respond_with(|input, output| {
                output.extend_from_slice(input);
                (input.len(), ())
            })
            .await;
        if !matches!(echoed, Ok(Some(()))) {
            break;
        }
    }
    // Dropping the stream sends what is still buffered, then closes.
    let _ = stream.flush().await;
}
