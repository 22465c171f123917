//! How every load mode's client connection connects: within a timeout, with a pause after a
//! failure so a dead server costs a few attempts per second per connection instead of a
//! busy loop.

use std::{io, net::SocketAddr, time::Duration};

use percore::{
    TcpStream,
    time::{sleep, timeout},
};

/// Pause after a failed connection before the next attempt.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// Why a connect failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    /// No answer within the timeout.
    Timeout,
    Other,
}

impl ConnectFailure {
    pub fn of(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            io::ErrorKind::TimedOut => ConnectFailure::Timeout,
            _ => ConnectFailure::Other,
        }
    }
}

/// Connects to `target` within `limit`, then, with `tls`, runs the TLS handshake within
/// `limit` too (a refused handshake counts as `Other`).
pub async fn connect_maybe_tls(
    target: SocketAddr,
    limit: Duration,
    tls: Option<&crate::tls::TlsClient>,
) -> Result<TcpStream, ConnectFailure> {
    let stream = connect(target, limit).await?;
    let Some(tls) = tls else {
        return Ok(stream);
    };
    let handshake = percore::net::tls::connect(stream, tls.config.clone(), tls.name.clone());
    match timeout(limit, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(_)) => {
            sleep(RECONNECT_BACKOFF).await;
            Err(ConnectFailure::Other)
        }
        Err(_) => Err(ConnectFailure::Timeout),
    }
}

/// Connects to `target` within `limit`. A connect that fails (not one that times out, which
/// has waited already) pauses [`RECONNECT_BACKOFF`] before it returns.
pub async fn connect(target: SocketAddr, limit: Duration) -> Result<TcpStream, ConnectFailure> {
    match timeout(limit, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => {
            sleep(RECONNECT_BACKOFF).await;
            Err(ConnectFailure::of(&e))
        }
        Err(_) => Err(ConnectFailure::Timeout),
    }
}
