//! A hyper HTTP/1 client over percore's [`TcpStream::connect`]: a service calling an
//! upstream from a shard.

use std::{error::Error as StdError, io, net::SocketAddr};

use hyper::client::conn::http1::{self, SendRequest};

use crate::net::TcpStream;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Connects to `addr` from the current shard and performs hyper's HTTP/1 handshake; the
/// connection runs as a task of this shard until the returned sender and every request on
/// it are gone.
///
/// ```no_run
/// # #[cfg(feature = "hyper")]
/// # async fn call() -> Result<(), Box<dyn std::error::Error>> {
/// use http_body_util::{BodyExt, Empty};
///
/// let mut upstream = percore::compat::client::connect("127.0.0.1:8080".parse()?).await?;
/// let request = http::Request::get("/").header("host", "127.0.0.1").body(Empty::<bytes::Bytes>::new())?;
/// let response = upstream.send_request(request).await?;
/// let body = response.into_body().collect().await?.to_bytes();
/// # Ok(()) }
/// ```
pub async fn connect<B>(addr: SocketAddr) -> io::Result<SendRequest<B>>
where
    B: http_body::Body + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let stream = TcpStream::connect(addr).await?;
    handshake(stream).await.map_err(io::Error::other)
}

/// hyper's HTTP/1 client handshake over a connected stream; the connection is spawned on
/// the current shard.
pub async fn handshake<B>(stream: TcpStream) -> hyper::Result<SendRequest<B>>
where
    B: http_body::Body + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (sender, conn) = http1::Builder::new().handshake(stream).await?;
    drop(crate::task::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("http client connection ended: {e}");
        }
    }));
    Ok(sender)
}
