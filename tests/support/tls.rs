//! TLS test support: certificates made at test time (rcgen; no key is ever committed), a
//! blocking rustls client, and raw handshake bytes for the bad-input cases.

#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};

/// A certificate and its key, as PEM, and the file paths they were written to.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A fresh temporary directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("percore-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, stem: &str, cert_pem: String, key_pem: String) -> Issued {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    Issued {
        cert_pem,
        key_pem,
        cert,
        key,
    }
}

/// A self-signed ECDSA P-256 server certificate for `names` (DNS names or IP addresses).
pub fn self_signed(dir: &Path, stem: &str, names: &[&str]) -> Issued {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    write(dir, stem, cert.pem(), key.serialize_pem())
}

/// A CA, and a client certificate it signed.
pub fn ca_and_client(dir: &Path) -> (Issued, Issued) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    (
        write(dir, "ca", ca.pem(), ca_key.serialize_pem()),
        write(dir, "client", client.pem(), client_key.serialize_pem()),
    )
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting `roots` (PEM), TLS 1.3 and 1.2 or only `version`, with an optional
/// client certificate.
pub fn client_config(
    roots: &[&str],
    version: Option<&'static rustls::SupportedProtocolVersion>,
    client_cert: Option<&Issued>,
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for pem in roots {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(cert.unwrap()).unwrap();
        }
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(store);
    let config = match client_cert {
        Some(issued) => {
            let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

pub type Client = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake (an error if the server refuses it).
pub fn connect(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> std::io::Result<Client> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let conn = ClientConnection::new(config, server_name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The DER of the certificate the server presented.
pub fn presented(client: &Client) -> Vec<u8> {
    client.conn.peer_certificates().unwrap()[0].to_vec()
}

/// The first flight of a real client (its ClientHello records), for truncation tests.
pub fn client_hello(config: Arc<ClientConfig>) -> Vec<u8> {
    let mut conn =
        ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Sends `data`, and reads what comes back until the server closes (or 10 s pass).
pub fn send_raw(addr: SocketAddr, data: &[u8], shutdown_write: bool) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(data).unwrap();
    if shutdown_write {
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    got
}
