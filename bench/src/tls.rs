//! `--target https://HOST:PORT`: the client side of TLS for the request-response modes.
//! Connections handshake on the client shards through percore's own TLS stream layer
//! (`percore::net::tls::connect`); session resumption can be switched off so that every
//! connection is a full handshake, and `--new-conn` opens one per request to measure
//! handshakes per second.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::Path,
    sync::Arc,
};

use rustls::{
    ClientConfig, RootCertStore,
    client::Resumption,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};

/// Where the load goes: an address, and the TLS server name for an `https://` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Some(host)` for `https://HOST:PORT`.
    pub tls_name: Option<String>,
}

/// `IP:PORT`, `http://HOST:PORT` or `https://HOST:PORT` (HOST resolved once, first address).
pub fn parse_target(s: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(rest) = s.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix("http://") {
        (false, rest)
    } else {
        (false, s)
    };
    let rest = rest.trim_end_matches('/');
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        let name = addr.ip().to_string();
        return Ok(Target {
            addr,
            tls_name: tls.then_some(name),
        });
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!(
            "`{s}`: expected HOST:PORT (https://HOST:PORT for TLS)"
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{s}`: bad port `{port}`"))?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("`{s}`: cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}`: {host} has no address"))?;
    Ok(Target {
        addr,
        tls_name: tls.then(|| host.to_string()),
    })
}

/// What a TLS client connection needs.
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    pub resume: bool,
}

impl TlsClient {
    /// Trusts the certificates in `ca` (PEM); offers `alpn`; resumes sessions (tickets) or
    /// not.
    pub fn new(name: &str, ca: &Path, alpn: &[&[u8]], resume: bool) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no PEM certificate", ca.display()));
        }
        // The same provider as the server (ring; see percore's net::tls docs).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        if !resume {
            config.resumption = Resumption::disabled();
        }
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("`{name}` is not a TLS server name: {e}"))?;
        Ok(TlsClient {
            config: Arc::new(config),
            name,
            resume,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_and_without_a_scheme() {
        let plain = parse_target("127.0.0.1:8080").unwrap();
        assert_eq!(plain.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(plain.tls_name, None);
        let tls = parse_target("https://localhost:8443/").unwrap();
        assert_eq!(tls.addr.port(), 8443);
        assert_eq!(tls.tls_name.as_deref(), Some("localhost"));
        let ip = parse_target("https://127.0.0.1:8443").unwrap();
        assert_eq!(ip.tls_name.as_deref(), Some("127.0.0.1"));
        assert!(parse_target("https://localhost").is_err());
        assert!(parse_target("localhost:x").is_err());
    }
}
