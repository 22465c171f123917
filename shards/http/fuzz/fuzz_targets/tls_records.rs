//! The TLS record-to-request path: ciphertext cut anywhere goes through percore's TLS
//! session (the code the stream layer runs) into the HTTP connection, and responses go back
//! sealed. Three modes, chosen by the first byte:
//! - 0: the input is the client's first flight (ClientHello parsing, bad records): no
//!   panic, and any refusal leaves an alert to send;
//! - 1: after a real in-memory handshake, the input is a client's HTTP bytes, sealed in
//!   records of fuzzed sizes and delivered in fuzzed cuts: the server must decrypt exactly
//!   what was sent, whatever the cuts, and the client must open every response;
//! - 2: after the handshake, the input arrives as raw ciphertext (forged records): no
//!   panic, and a refusal is final.

#![no_main]

use std::{
    io::{Read, Write},
    sync::{Arc, OnceLock},
};

use libfuzzer_sys::fuzz_target;
use percore::net::tls::{Session, TlsAcceptor, TlsConfig};
use percore_http::{Connection, Limits, Response};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConnection,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};

const DATE: &[u8; 29] = b"Sun, 06 Nov 1994 08:49:37 GMT";
const LIMIT: usize = 64 * 1024;

struct Setup {
    acceptor: TlsAcceptor,
    client: Arc<ClientConfig>,
}

/// A certificate made once per process (rcgen), loaded through the server's own loader.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("percore-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let acceptor =
            TlsAcceptor::new(TlsConfig::new(&cert_path, &key_path).with_http_alpn()).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap())
            .unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Setup {
            acceptor,
            client: Arc::new(client),
        }
    })
}

fn server_session() -> Session {
    let tls = ServerConnection::new(setup().acceptor.server_config()).unwrap();
    Session::new(tls, false)
}

/// Delivers `bytes` to the server in cuts whose sizes come from `cuts`; returns false when
/// the server refused them.
fn deliver(server: &mut Session, bytes: &[u8], cuts: &mut impl Iterator<Item = u8>) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = (usize::from(cuts.next().unwrap_or(255)) * 7 + 1).min(rest.len());
        let mut piece = &rest[..len];
        while !piece.is_empty() {
            let (taken, result) = server.absorb(piece, LIMIT);
            if result.is_err() {
                let mut alert = Vec::new();
                server.write_output(&mut alert);
                return false;
            }
            if taken == 0 {
                // Backpressure: the reader must consume first (the caller does).
                return true;
            }
            piece = &piece[taken..];
        }
        rest = &rest[len..];
    }
    true
}

/// A complete handshake between a rustls client and the server session, in memory.
fn handshake() -> (ClientConnection, Session) {
    let mut client = ClientConnection::new(
        setup().client.clone(),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut server = server_session();
    for _ in 0..10 {
        let mut flight = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut flight).unwrap();
        }
        assert!(deliver(&mut server, &flight, &mut std::iter::empty()));
        let mut back = Vec::new();
        server.write_output(&mut back);
        let mut back = back.as_slice();
        while !back.is_empty() {
            client.read_tls(&mut back).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && !server.connection().is_handshaking() {
            return (client, server);
        }
    }
    panic!("the in-memory handshake did not finish");
}

fn first_flight(data: &[u8]) {
    let mut server = server_session();
    let (cuts, bytes) = data.split_at(data.len().min(8));
    let mut cuts = cuts.iter().copied().cycle();
    if !deliver(&mut server, bytes, &mut cuts) {
        return;
    }
    let mut out = Vec::new();
    server.write_output(&mut out);
}

fn requests(data: &[u8]) {
    let (client_tls, mut server) = handshake();
    let mut client = client_tls;
    let (cuts, stream) = data.split_at(data.len().min(8));
    let mut cuts = cuts.iter().copied().cycle();
    let mut http = Connection::new(Limits::default());
    let mut plaintext = Vec::new();
    let mut responses = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let len = (usize::from(cuts.next().unwrap_or(255)) * 13 + 1).min(rest.len());
        client.writer().write_all(&rest[..len]).unwrap();
        rest = &rest[len..];
        let mut records = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut records).unwrap();
        }
        assert!(deliver(&mut server, &records, &mut cuts), "the server refused good records");
        // The HTTP connection consumes what it can; the rest waits, as in the stream layer.
        let mut sealed = Vec::new();
        loop {
            let mut out = Vec::new();
            let input = server.plaintext().to_vec();
            let consumed =
                http.serve(&input, &mut out, DATE, |req| Response::new(200, req.body()));
            assert!(consumed <= input.len());
            plaintext.extend_from_slice(&input[..consumed]);
            server.consume(consumed);
            if !out.is_empty() {
                server.seal(&out, &mut sealed);
                responses.extend_from_slice(&out);
            }
            if consumed == 0 || http.should_close() {
                break;
            }
        }
        // The client opens every response record.
        let mut sealed = sealed.as_slice();
        while !sealed.is_empty() {
            client.read_tls(&mut sealed).unwrap();
            client.process_new_packets().expect("the client refused a sealed response");
        }
        if http.should_close() {
            return;
        }
    }
    // Everything the HTTP side consumed is exactly a prefix of what was sent.
    assert!(stream.starts_with(&plaintext), "decrypted bytes differ from those sent");
    let mut opened = Vec::new();
    let _ = client.reader().read_to_end(&mut opened);
    assert!(responses.starts_with(&opened), "the client read other bytes than were sealed");
}

fn forged(data: &[u8]) {
    let (_client, mut server) = handshake();
    let mut cuts = std::iter::repeat(37u8);
    if !deliver(&mut server, data, &mut cuts) {
        // A refused session stays refused.
        let (_, again) = server.absorb(&[23, 3, 3, 0, 1, 0], LIMIT);
        assert!(again.is_err(), "a refused session accepted more input");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => first_flight(data),
        1 => requests(data),
        _ => forged(data),
    }
});
