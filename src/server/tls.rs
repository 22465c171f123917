//! TLS listeners of [`ServerBuilder::serve`] (the `tls` feature): the serve address speaks
//! TLS when [`ServerBuilder::tls`] is set, with an optional second, plaintext listener
//! ([`ServerBuilder::listen_plain`]) served by the same handler.

use std::net::SocketAddr;

use super::builder::ServerBuilder;
use crate::net::tls::TlsAcceptor;

/// The TLS part of a builder.
#[derive(Clone, Debug)]
pub(crate) struct TlsListen {
    pub(crate) acceptor: TlsAcceptor,
}

impl ServerBuilder {
    /// Serves TLS on the address given to [`serve`](Self::serve) (every connection
    /// handshakes on its shard before the handler gets it; see `net::tls`). The acceptor
    /// is reloaded on SIGHUP when [`handle_signals`](Self::handle_signals) is on.
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        if !acceptor.ktls().is_available() {
            self.early_fallbacks.push(acceptor.ktls().to_string());
        }
        self.tls = Some(TlsListen { acceptor });
        self
    }

    /// A second listener, in plaintext, served by the same handler as the main one
    /// (`--listen-plain`). Only with [`tls`](Self::tls); without it the address is ignored.
    pub fn listen_plain(mut self, addr: SocketAddr) -> Self {
        self.plain_listen = Some(addr);
        self
    }
}
