//! `percore-bench http --target https://...` against a percore TLS server: keep-alive load
//! over few connections, and `--new-conn` (one handshake per request) with session
//! resumption on and off, checked against the server's own handshake counters.

mod common;

use std::{path::PathBuf, time::Duration};

use common::{assert_reconciled, config, run};
use percore::{
    Server, ServerHandle, TcpStream,
    net::tls::{TlsAcceptor, TlsConfig},
};
use percore_bench::{
    http::{Http, HttpRequest},
    tls::TlsClient,
};

const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

/// Answers every request head with HELLO (no bodies).
async fn hello(mut stream: TcpStream) {
    loop {
        let served = stream
            .respond_with(|input, out| {
                let mut consumed = 0;
                while let Some(end) = input[consumed..].windows(4).position(|w| w == b"\r\n\r\n") {
                    consumed += end + 4;
                    out.extend_from_slice(HELLO);
                }
                (consumed, ())
            })
            .await;
        if !matches!(served, Ok(Some(()))) {
            return;
        }
    }
}

/// A one-shard TLS server with a fresh certificate; returns it and the CA file to trust.
fn server(name: &str) -> (ServerHandle, PathBuf) {
    let dir = std::env::temp_dir().join(format!("percore-bench-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let acceptor =
        TlsAcceptor::new(TlsConfig::new(&cert_path, &key_path).with_http_alpn()).unwrap();
    let server = Server::builder()
        .shards(1)
        .tls(acceptor)
        .serve("127.0.0.1:0".parse().unwrap(), hello)
        .unwrap();
    (server, cert_path)
}

fn tls_stats(server: &ServerHandle) -> percore::net::TlsStats {
    server.shard_stats(Duration::from_secs(5))[0].net.tls
}

#[test]
fn keep_alive_https_load_reuses_its_connections() {
    let (server, ca) = server("keepalive");
    let target = server.listen_addr().unwrap();
    let mut cfg = config(target);
    cfg.tls = Some(TlsClient::new("localhost", &ca, &[b"http/1.1"], true).unwrap());
    let http = Http::new(target, &HttpRequest::default()).unwrap();
    let report = run(cfg.clone(), http);
    assert_reconciled(&report);
    let whole = report.whole_run();
    assert!(whole.ok > 100, "{}", report.to_text());
    assert_eq!(whole.request_errors(), 0, "{}", report.to_text());
    assert_eq!(
        whole.connects,
        cfg.connections as u64,
        "{}",
        report.to_text()
    );
    assert_eq!(tls_stats(&server).handshakes, cfg.connections as u64);
}

#[test]
fn a_connection_per_request_is_a_handshake_per_request_with_or_without_resumption() {
    for resume in [false, true] {
        let (server, ca) = server(if resume { "resume" } else { "full" });
        let target = server.listen_addr().unwrap();
        let mut cfg = config(target);
        cfg.new_conn = true;
        cfg.tls = Some(TlsClient::new("localhost", &ca, &[b"http/1.1"], resume).unwrap());
        let http = Http::new(target, &HttpRequest::default()).unwrap();
        let report = run(cfg, http);
        assert_reconciled(&report);
        let whole = report.whole_run();
        assert!(whole.ok > 10, "{}", report.to_text());
        // Every answered request had its own connection.
        assert!(whole.connects >= whole.ok, "{}", report.to_text());
        let stats = tls_stats(&server);
        assert!(stats.handshakes >= whole.ok, "{stats:?}");
        if resume {
            assert!(
                stats.resumed * 2 > stats.handshakes,
                "few resumed: {stats:?}"
            );
        } else {
            assert_eq!(stats.resumed, 0, "{stats:?}");
        }
    }
}
