//! TLS on the shard (the `tls` feature): rustls in the stream layer, so that every service
//! (HTTP, kv, echo, hyper/axum apps) gets HTTPS/TLS the same way, by a listener setting,
//! without a line of its own.
//!
//! # How a connection goes
//! 1. The listener accepts as usual. Its accept loop spawns, per connection, a task that
//!    first runs the handshake ([`handshake`]) on the shard, without blocking it: the
//!    connection's receive completions bring ClientHello bytes, rustls answers, the answer
//!    leaves in the shard's batched send. A deadline and a per-shard cap bound the work.
//! 2. The service's handler then gets an ordinary [`TcpStream`](super::TcpStream) whose
//!    reads lend decrypted bytes and whose writes are sealed into records in the
//!    connection's output buffer ([`stream`]).
//! 3. Where the kernel has the TLS ULP, the session keys go to the kernel after the
//!    handshake (see `ktls`), and the stream goes back to plain reads and writes.
//!
//! A plaintext stream carries `tls: None` and takes exactly the paths it took before
//! (one `Option` test per call).
//!
//! # Why ring
//! rustls offers aws-lc-rs (its default) and ring. percore uses **ring**: it builds with
//! only a C compiler (aws-lc-sys wants cmake, and on some targets Go and NASM; the build
//! machines here have no cmake), builds in a fraction of the time, and covers every
//! suite a server needs with assembly AES-GCM, ChaCha20-Poly1305 and P-256/Ed25519/RSA.
//! What ring lacks is aws-lc-rs's hybrid post-quantum key exchange (X25519MLKEM768; rustls
//! marks ring's provider deprecated for that) and FIPS: a deployment that needs either
//! switches the provider, one line in `config.rs` (plus the ticketer in `TlsAcceptor::new`),
//! at the price of a cmake build and a costlier handshake.
//!
//! # Versions and parameters
//! TLS 1.3 and 1.2 (rustls's safe default suites, no CBC, no RSA key exchange); ALPN as
//! configured (`http/1.1`, `h2` can be added when the HTTP service speaks it); SNI picks
//! among several certificates; PEM chains with PKCS#8, PKCS#1 (RSA) or SEC1 (ECDSA) keys;
//! client certificates verified against a CA bundle when one is given. Session resumption:
//! stateless tickets (TLS 1.3 and 1.2) from one ticketer kept across reloads, and rustls's
//! in-memory session cache.
//!
//! # Reload
//! [`TlsAcceptor::reload`] loads every file again and swaps the configuration atomically;
//! handshakes started later use it, open connections keep their sessions. A file that does
//! not load leaves the old configuration in place. The server calls it on SIGHUP.

mod config;
mod handshake;
pub(crate) mod ktls;
mod session;
pub(crate) mod stream;

use std::{
    future::Future,
    sync::{Arc, RwLock},
};

use rustls::ServerConfig;

pub use self::{
    config::{CertKeyFiles, KtlsMode, TlsConfig, TlsError},
    handshake::connect,
    ktls::KtlsSupport,
    session::{Failure, Session},
};
pub(crate) use self::{handshake::Slots, stream::pump};
use super::TcpStream;

/// One shard's TLS state: its handshake slots.
#[derive(Default)]
pub(crate) struct ShardTls {
    pub(crate) slots: Slots,
}

/// A TLS server configuration shared by every shard, reloadable.
#[derive(Clone)]
pub struct TlsAcceptor {
    shared: Arc<Shared>,
}

struct Shared {
    settings: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    tickets: Arc<dyn rustls::server::ProducesTickets>,
    ktls: KtlsSupport,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the certificates and keys of `settings`; any problem is one line naming the
    /// file ([`TlsError`]).
    pub fn new(settings: TlsConfig) -> Result<TlsAcceptor, TlsError> {
        let tickets = rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError {
            path: Default::default(),
            problem: format!("session ticket keys: {e}"),
        })?;
        let current = settings.load(&tickets)?;
        let ktls = match settings.ktls {
            KtlsMode::Auto => KtlsSupport::probe(),
            KtlsMode::Off => KtlsSupport::disabled(),
        };
        Ok(TlsAcceptor {
            shared: Arc::new(Shared {
                settings,
                current: RwLock::new(current),
                tickets,
                ktls,
            }),
        })
    }

    /// Loads every file again; on success, new handshakes use the new configuration while
    /// open connections keep theirs. On failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = self.shared.settings.load(&self.shared.tickets)?;
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The settings it was made from.
    pub fn settings(&self) -> &TlsConfig {
        &self.shared.settings
    }

    /// Whether sessions go to the kernel after the handshake, and if not why.
    pub fn ktls(&self) -> &KtlsSupport {
        &self.shared.ktls
    }

    /// The configuration new handshakes use.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The task of one accepted TLS connection: the handshake, then `handler` with the
/// established stream. A failed handshake sends its alert and closes.
pub(crate) async fn serve_connection<H, Fut>(
    mut stream: TcpStream,
    acceptor: TlsAcceptor,
    handler: H,
) where
    H: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()>,
{
    if handshake::handshake(&mut stream, &acceptor).await.is_err() {
        return;
    }
    if acceptor.ktls().is_available() {
        ktls::offload(&mut stream, acceptor.ktls()).await;
    }
    handler(stream).await;
}
