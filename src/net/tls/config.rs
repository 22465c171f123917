//! Building a rustls server configuration from PEM files: certificate chains and keys
//! (PKCS#8, PKCS#1 RSA, SEC1 ECDSA), several certificates chosen by SNI, and optional
//! client-certificate verification. Every failure names the file and the problem in one
//! line, so that a server refuses to start with a clear message instead of panicking.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use rustls_pemfile::Item;

/// What went wrong loading the TLS files: the file, and the problem, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The file at fault (empty when the problem is not one file's).
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl TlsError {
    fn new(path: &Path, problem: impl Into<String>) -> Self {
        TlsError {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.as_os_str().is_empty() {
            write!(f, "tls: {}", self.problem)
        } else {
            write!(f, "{}: {}", self.path.display(), self.problem)
        }
    }
}

impl std::error::Error for TlsError {}

/// One certificate chain and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertKeyFiles {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

/// Which TLS listeners hand their sessions to the kernel after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KtlsMode {
    /// Kernel TLS where the kernel and the cipher suite allow, rustls otherwise (default).
    #[default]
    Auto,
    /// Always rustls on the shard.
    Off,
}

/// How a listener speaks TLS: the files it loads (again on reload) and its limits.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificates; the first is the default, the others are chosen by the SNI name a
    /// client asks for (matched against each certificate's DNS names, `*.` wildcards too).
    pub certs: Vec<CertKeyFiles>,
    /// PEM bundle of CAs whose client certificates are required (mutual TLS); none: no
    /// client certificate is asked for.
    pub client_ca: Option<PathBuf>,
    /// ALPN protocols offered, most preferred first (`http/1.1`; room for `h2`). Empty:
    /// no ALPN, as RESP and echo clients expect.
    pub alpn: Vec<Vec<u8>>,
    /// From accept to the end of the handshake, waiting for a slot included. Default 10 s.
    pub handshake_timeout: Duration,
    /// Handshakes one shard runs at once; more wait, in accept order, for a slot (their
    /// deadline still runs). Default 256.
    pub max_handshakes: usize,
    /// Kernel TLS after the handshake. Default `Auto`.
    pub ktls: KtlsMode,
}

impl TlsConfig {
    /// One certificate chain and key, defaults for the rest.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsConfig {
            certs: vec![CertKeyFiles {
                cert: cert.into(),
                key: key.into(),
            }],
            client_ca: None,
            alpn: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
            ktls: KtlsMode::Auto,
        }
    }

    /// Adds a certificate chosen by SNI.
    pub fn with_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.certs.push(CertKeyFiles {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Offers `http/1.1` over ALPN.
    pub fn with_http_alpn(mut self) -> Self {
        self.alpn = vec![b"http/1.1".to_vec()];
        self
    }

    /// Loads every file and builds the rustls configuration.
    pub(crate) fn load(
        &self,
        tickets: &Arc<dyn rustls::server::ProducesTickets>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        // rustls deprecates ring's provider for lacking post-quantum key exchange; the choice
        // is deliberate (see the module docs).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        if self.certs.is_empty() {
            return Err(TlsError::new(Path::new(""), "no certificate given"));
        }
        let mut entries = Vec::with_capacity(self.certs.len());
        for files in &self.certs {
            entries.push(load_pair(files, &provider)?);
        }
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::new(Path::new(""), e.to_string()))?;
        let builder = match &self.client_ca {
            Some(path) => {
                let roots = load_roots(path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::new(path, format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver { entries }));
        config.alpn_protocols = self.alpn.clone();
        config.ticketer = tickets.clone();
        // Kernel TLS needs the traffic secrets after the handshake.
        config.enable_secret_extraction = self.ktls == KtlsMode::Auto;
        Ok(Arc::new(config))
    }
}

/// A certificate with the DNS names it is valid for.
#[derive(Debug)]
struct Entry {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// Picks the certificate whose names match the client's SNI; the first one otherwise (no
/// SNI, an IP address, or an unknown name), as nginx's default server does.
#[derive(Debug)]
struct SniResolver {
    entries: Vec<Entry>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            for entry in &self.entries {
                if entry.names.iter().any(|n| name_matches(n, name)) {
                    return Some(entry.key.clone());
                }
            }
        }
        self.entries.first().map(|e| e.key.clone())
    }
}

/// DNS name matching, ASCII case-insensitive, with a `*.` wildcard standing for exactly one
/// leftmost label.
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if let Some(suffix) = pattern.strip_prefix("*.") {
        match name.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        }
    } else {
        pattern.eq_ignore_ascii_case(name)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|e| TlsError::new(path, format!("cannot read: {e}")))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let mut certs = Vec::new();
    let mut rest = pem.as_slice();
    loop {
        match rustls_pemfile::read_one_from_slice(rest) {
            Ok(Some((Item::X509Certificate(cert), tail))) => {
                certs.push(cert);
                rest = tail;
            }
            Ok(Some((_, tail))) => rest = tail,
            Ok(None) => break,
            Err(e) => return Err(TlsError::new(path, format!("bad PEM: {e:?}"))),
        }
    }
    if certs.is_empty() {
        return Err(TlsError::new(
            path,
            "no PEM certificate (BEGIN CERTIFICATE) found",
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    let mut rest = pem.as_slice();
    let mut saw_cert = false;
    loop {
        match rustls_pemfile::read_one_from_slice(rest) {
            Ok(Some((item, tail))) => {
                rest = tail;
                match item {
                    Item::Pkcs8Key(key) => return Ok(key.into()),
                    Item::Pkcs1Key(key) => return Ok(key.into()),
                    Item::Sec1Key(key) => return Ok(key.into()),
                    Item::X509Certificate(_) => saw_cert = true,
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return Err(TlsError::new(path, format!("bad PEM: {e:?}"))),
        }
    }
    let problem = if saw_cert {
        "holds a certificate, not a private key (PKCS#8, RSA or EC PRIVATE KEY)"
    } else {
        "no PEM private key (PKCS#8, RSA or EC PRIVATE KEY) found"
    };
    Err(TlsError::new(path, problem))
}

fn load_pair(files: &CertKeyFiles, provider: &CryptoProvider) -> Result<Entry, TlsError> {
    let chain = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::new(&files.key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::new(
                &files.key,
                format!("does not match the certificate in {}", files.cert.display()),
            ));
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(TlsError::new(&files.cert, format!("bad certificate: {e}"))),
    }
    let names =
        dns_names(&certified.cert[0]).map_err(|problem| TlsError::new(&files.cert, problem))?;
    Ok(Entry {
        names,
        key: Arc::new(certified),
    })
}

fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let parsed =
        webpki::EndEntityCert::try_from(cert).map_err(|e| format!("bad certificate: {e:?}"))?;
    Ok(parsed.valid_dns_names().map(str::to_owned).collect())
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::new(path, format!("bad CA certificate: {e}")))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn sni_names_match_exactly_or_by_one_wildcard_label() {
        assert!(name_matches("a.example", "A.Example"));
        assert!(name_matches("a.example", "a.example."));
        assert!(name_matches("*.example", "x.example"));
        assert!(!name_matches("*.example", "example"));
        assert!(!name_matches("*.example", "x.y.example"));
        assert!(!name_matches("*.example", ".example"));
        assert!(!name_matches("a.example", "b.example"));
    }
}
