//! `--tls-*` flags shared by `serve`, `kv` and `echo`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use percore::{
    Error, ServerBuilder,
    net::tls::{KtlsMode, TlsAcceptor, TlsConfig},
};

/// TLS on the listen address (rustls on the shard; kernel TLS after the handshake where
/// the kernel offers it).
#[derive(Args)]
pub(crate) struct TlsArgs {
    /// PEM certificate chain (leaf first): serve TLS on the listen address. Repeat it with
    /// --tls-key for more certificates, chosen by the name a client asks for (SNI); the
    /// first is the default.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Vec<PathBuf>,
    /// PEM private key (PKCS#8, RSA or EC) of the --tls-cert at the same position.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Vec<PathBuf>,
    /// PEM bundle of CAs: clients must present a certificate signed by one of them.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Seconds from accept to the end of the TLS handshake before the connection closes.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = crate::parse_secs)]
    tls_handshake_timeout: Duration,
    /// Handshakes one shard runs at once; more wait for a slot within their deadline.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    tls_max_handshakes: u64,
    /// Kernel TLS after the handshake: `auto` (where the kernel and cipher allow) or `off`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "off"])]
    tls_ktls: String,
    /// A second listener, in plaintext, beside the TLS one (same service).
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    listen_plain: Option<SocketAddr>,
    /// What the acceptor found about kernel TLS (set by `apply`), for the startup lines.
    #[arg(skip)]
    ktls: std::cell::RefCell<Option<String>>,
}

impl TlsArgs {
    pub(crate) fn enabled(&self) -> bool {
        !self.tls_cert.is_empty()
    }

    /// Loads the certificates into `builder`; a file problem is one line naming the file
    /// (exit status 2).
    pub(crate) fn apply(&self, builder: ServerBuilder, http: bool) -> Result<ServerBuilder, Error> {
        let (Some(cert), Some(key)) = (self.tls_cert.first(), self.tls_key.first()) else {
            return Ok(builder);
        };
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(Error::Config(format!(
                "{} --tls-cert but {} --tls-key: give one key per certificate, in the same order",
                self.tls_cert.len(),
                self.tls_key.len()
            )));
        }
        let mut config = TlsConfig::new(cert, key);
        for (cert, key) in self.tls_cert.iter().zip(&self.tls_key).skip(1) {
            config = config.with_cert(cert, key);
        }
        if http {
            config = config.with_http_alpn();
        }
        config.client_ca = self.tls_client_ca.clone();
        config.handshake_timeout = self.tls_handshake_timeout;
        config.max_handshakes = self.tls_max_handshakes as usize;
        config.ktls = if self.tls_ktls == "off" {
            KtlsMode::Off
        } else {
            KtlsMode::Auto
        };
        let acceptor = TlsAcceptor::new(config).map_err(|e| Error::Config(e.to_string()))?;
        // When kTLS is not available the startup report says why (a fallback line).
        if acceptor.ktls().is_available() {
            *self.ktls.borrow_mut() = Some(acceptor.ktls().to_string());
        }
        let builder = builder.tls(acceptor);
        Ok(match self.listen_plain {
            Some(addr) => builder.listen_plain(addr),
            None => builder,
        })
    }

    /// The line printed once the server listens.
    pub(crate) fn describe(&self, what: &str, scheme: &str, listen: SocketAddr) -> String {
        if !self.enabled() {
            return format!("{what} listening on {scheme}{listen}");
        }
        let tls_scheme = if scheme == "http://" {
            "https://"
        } else {
            "tls://"
        };
        let mut line = match self.ktls.borrow().as_deref() {
            Some(ktls) => format!("tls: {ktls}\n"),
            None => String::new(),
        };
        line.push_str(&format!("{what} listening on {tls_scheme}{listen}"));
        if let Some(plain) = self.listen_plain {
            line.push_str(&format!(" and {scheme}{plain}"));
        }
        line
    }
}
