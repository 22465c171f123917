//! TLS in the stream layer, through the echo service: TLS 1.3 and 1.2, SNI, client
//! certificates, reload, bad input counted by reason, the handshake deadline and cap, and
//! the kernel TLS hand-over (or its reported fallback). Certificates are made at test time.

#[path = "support/common.rs"]
mod common;
#[path = "support/tls.rs"]
mod tls;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::Pattern;
use percore::{
    Server, ServerHandle, ShardStats,
    net::{
        TLS_FAILURE_REASONS,
        tls::{KtlsMode, TlsAcceptor, TlsConfig},
    },
};

fn serve(acceptor: TlsAcceptor) -> (ServerHandle, SocketAddr) {
    let server = Server::builder()
        .shards(1)
        .tls(acceptor)
        .serve("127.0.0.1:0".parse().unwrap(), percore_echo::handle)
        .expect("echo server starts");
    let addr = server.listen_addr().unwrap();
    (server, addr)
}

fn stats(server: &ServerHandle) -> ShardStats {
    server.shard_stats(Duration::from_secs(5)).remove(0)
}

/// Where `reason` is counted in `TlsStats::handshake_failures`.
fn reason(name: &str) -> usize {
    TLS_FAILURE_REASONS.iter().position(|r| *r == name).unwrap()
}

/// Polls the server's counters until `check` holds (at most 10 s).
fn wait_for(server: &ServerHandle, what: &str, check: impl Fn(&ShardStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(server);
        if check(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {:?}", s.net.tls);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn echo_round_trips(client: &mut tls::Client, seed: u64, total: usize) {
    let mut pattern = Pattern::new(seed);
    let mut sent = 0;
    while sent < total {
        let len = (1 + pattern.below(40_000) as usize).min(total - sent);
        let data = pattern.bytes(len);
        client.write_all(&data).unwrap();
        client.flush().unwrap();
        let mut got = vec![0; len];
        client.read_exact(&mut got).unwrap();
        assert!(got == data, "echoed bytes differ after {sent} bytes");
        sent += len;
    }
}

#[test]
fn echo_over_tls13_and_tls12_returns_every_byte() {
    let dir = tls::temp_dir("versions");
    let cert = tls::self_signed(&dir, "server", &["localhost"]);
    let (server, addr) = serve(TlsAcceptor::new(TlsConfig::new(&cert.cert, &cert.key)).unwrap());
    for (seed, version) in [(1, &rustls::version::TLS13), (2, &rustls::version::TLS12)] {
        let config = tls::client_config(&[&cert.cert_pem], Some(version), None);
        let mut client = tls::connect(addr, "localhost", config).unwrap();
        assert_eq!(client.conn.protocol_version(), Some(version.version));
        echo_round_trips(&mut client, seed, 1 << 20);
        client.conn.send_close_notify();
        client.flush().unwrap();
        let mut rest = Vec::new();
        // The server answers our close_notify with its own and closes: a clean end.
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    wait_for(&server, "two handshakes", |s| s.net.tls.handshakes == 2);
    assert_eq!(
        stats(&server)
            .net
            .tls
            .handshake_failures
            .iter()
            .sum::<u64>(),
        0
    );
}

#[test]
fn sni_picks_the_certificate_the_client_names_and_the_first_by_default() {
    let dir = tls::temp_dir("sni");
    let a = tls::self_signed(&dir, "a", &["a.test"]);
    let b = tls::self_signed(&dir, "b", &["b.test", "*.wild.test"]);
    let config = TlsConfig::new(&a.cert, &a.key).with_cert(&b.cert, &b.key);
    let (_server, addr) = serve(TlsAcceptor::new(config).unwrap());
    let both = tls::client_config(&[&a.cert_pem, &b.cert_pem], None, None);
    let der = |pem: &str| {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    };
    for (name, want) in [("a.test", &a), ("b.test", &b), ("x.wild.test", &b)] {
        let client = tls::connect(addr, name, both.clone()).unwrap();
        assert!(tls::presented(&client) == der(&want.cert_pem), "{name}");
    }
    // An unknown name gets the default (first) certificate, which it then refuses.
    let only_b = tls::client_config(&[&b.cert_pem], None, None);
    assert!(tls::connect(addr, "unknown.test", only_b).is_err());
}

#[test]
fn client_certificates_are_required_when_a_client_ca_is_given() {
    let dir = tls::temp_dir("mtls");
    let cert = tls::self_signed(&dir, "server", &["localhost"]);
    let (ca, client_cert) = tls::ca_and_client(&dir);
    let mut config = TlsConfig::new(&cert.cert, &cert.key);
    config.client_ca = Some(ca.cert.clone());
    let (server, addr) = serve(TlsAcceptor::new(config).unwrap());
    let with = tls::client_config(&[&cert.cert_pem], None, Some(&client_cert));
    let mut client = tls::connect(addr, "localhost", with).unwrap();
    echo_round_trips(&mut client, 3, 1000);
    // TLS 1.3: the client finishes before the server checks; the refusal arrives as an alert.
    let without = tls::client_config(&[&cert.cert_pem], None, None);
    let refused = tls::connect(addr, "localhost", without).and_then(|mut c| {
        c.write_all(b"x")?;
        c.flush()?;
        let mut buf = [0; 1];
        c.read_exact(&mut buf)
    });
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    wait_for(&server, "bad_certificate counted", |s| {
        s.net.tls.handshake_failures[reason("bad_certificate")] == 1
    });
}

#[test]
fn bad_input_gets_an_answer_or_alert_and_is_counted_by_reason() {
    let dir = tls::temp_dir("bad");
    let cert = tls::self_signed(&dir, "server", &["localhost"]);
    let (server, addr) = serve(TlsAcceptor::new(TlsConfig::new(&cert.cert, &cert.key)).unwrap());
    // Plain HTTP to the TLS port: a plaintext 400 it can read.
    let answer = tls::send_raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("HTTPS"));
    // Garbage: a TLS alert record (content type 21), then the close.
    let alert = tls::send_raw(addr, b"\x00\x01\x02garbage that is not TLS\r\n", false);
    assert_eq!(alert.first(), Some(&21), "{alert:?}");
    // A truncated ClientHello, then the client closes its side.
    let hello = tls::client_hello(tls::client_config(&[&cert.cert_pem], None, None));
    let closed = tls::send_raw(addr, &hello[..hello.len() / 2], true);
    assert!(closed.is_empty(), "{closed:?}");
    // A handshake record carrying a message of no known type.
    let mut bad = hello.clone();
    bad[5] = 0xfe;
    let alert = tls::send_raw(addr, &bad, false);
    assert_eq!(alert.first(), Some(&21), "{alert:?}");
    wait_for(&server, "every reason counted", |s| {
        let f = &s.net.tls.handshake_failures;
        f[reason("plaintext_http")] == 1
            && f[reason("not_tls")] == 1
            && f[reason("eof")] == 1
            && f[reason("bad_record")] == 1
    });
    // The shard still serves.
    let config = tls::client_config(&[&cert.cert_pem], None, None);
    let mut client = tls::connect(addr, "localhost", config).unwrap();
    echo_round_trips(&mut client, 4, 100);
    // After the handshake, a corrupted record ends the connection with an alert.
    let mut tcp = client.sock.try_clone().unwrap();
    tcp.write_all(&[23, 3, 3, 0, 20]).unwrap();
    tcp.write_all(&[0u8; 20]).unwrap();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    // TLS 1.3 encrypts the alert: one record of 2 alert bytes, the inner type and the tag.
    assert_eq!(
        &got[..5],
        &[23, 3, 3, 0, 19],
        "no alert after a bad record: {got:?}"
    );
    assert_eq!(got.len(), 5 + 19, "more than the alert: {got:?}");
    wait_for(&server, "record error counted", |s| {
        s.net.tls.record_errors == 1
    });
}

#[test]
fn a_silent_client_meets_the_deadline_and_the_cap_makes_the_next_one_wait() {
    let dir = tls::temp_dir("deadline");
    let cert = tls::self_signed(&dir, "server", &["localhost"]);
    let mut config = TlsConfig::new(&cert.cert, &cert.key);
    config.handshake_timeout = Duration::from_millis(1500);
    config.max_handshakes = 1;
    let (server, addr) = serve(TlsAcceptor::new(config).unwrap());
    // A takes the only slot and says nothing.
    let started = Instant::now();
    let mut a = TcpStream::connect(addr).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let closer = std::thread::spawn(move || {
        let mut buf = [0; 16];
        let n = a.read(&mut buf).unwrap_or(0);
        (n, started.elapsed())
    });
    // B, a real client, comes later and waits for A's slot, then completes in time.
    std::thread::sleep(Duration::from_millis(500));
    let config = tls::client_config(&[&cert.cert_pem], None, None);
    let mut b = tls::connect(addr, "localhost", config).unwrap();
    let b_done = started.elapsed();
    let (n, a_closed) = closer.join().unwrap();
    assert_eq!(n, 0, "the silent client got bytes");
    assert!(
        a_closed >= Duration::from_millis(1400),
        "A closed after {a_closed:?}"
    );
    assert!(
        a_closed < Duration::from_secs(6),
        "A closed after {a_closed:?}"
    );
    assert!(
        b_done >= Duration::from_millis(1400),
        "B did not wait for the slot: {b_done:?}"
    );
    echo_round_trips(&mut b, 5, 100);
    wait_for(&server, "A's timeout counted", |s| {
        s.net.tls.handshake_failures[reason("timeout")] == 1 && s.net.tls.handshakes == 1
    });
}

#[test]
fn clients_still_waiting_for_a_slot_at_their_deadline_are_counted_as_overload() {
    let dir = tls::temp_dir("overload");
    let cert = tls::self_signed(&dir, "server", &["localhost"]);
    let mut config = TlsConfig::new(&cert.cert, &cert.key);
    config.handshake_timeout = Duration::from_millis(400);
    config.max_handshakes = 1;
    let (server, addr) = serve(TlsAcceptor::new(config).unwrap());
    // Four silent clients at once: the first holds the slot to its deadline; the others'
    // deadlines pass while they wait (a slot handed over at a deadline is not used).
    let clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0; 16];
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    }
    wait_for(&server, "all four counted", |s| {
        let f = &s.net.tls.handshake_failures;
        f[reason("timeout")] + f[reason("overload")] == 4
            && f[reason("timeout")] >= 1
            && f[reason("overload")] >= 1
    });
}

#[test]
fn reload_serves_the_new_certificate_and_keeps_open_connections() {
    let dir = tls::temp_dir("reload");
    let old = tls::self_signed(&dir, "server", &["localhost"]);
    let acceptor = TlsAcceptor::new(TlsConfig::new(&old.cert, &old.key)).unwrap();
    let (_server, addr) = serve(acceptor.clone());
    // Each check uses a fresh client config: a cached session would resume without
    // looking at the certificate (tickets outlive a reload, as nginx's do).
    let old_roots = || tls::client_config(&[&old.cert_pem], None, None);
    let mut open = tls::connect(addr, "localhost", old_roots()).unwrap();
    echo_round_trips(&mut open, 6, 100);
    // New files at the same paths; a broken one first, which changes nothing.
    std::fs::write(&old.key, "not a key").unwrap();
    let err = acceptor.reload().unwrap_err();
    assert_eq!(err.path, old.key);
    assert!(tls::connect(addr, "localhost", old_roots()).is_ok());
    let new = tls::self_signed(&dir, "server", &["localhost"]);
    acceptor.reload().unwrap();
    let new_roots = tls::client_config(&[&new.cert_pem], None, None);
    assert!(tls::connect(addr, "localhost", new_roots).is_ok());
    assert!(tls::connect(addr, "localhost", old_roots()).is_err());
    echo_round_trips(&mut open, 7, 100_000);
}

#[test]
fn bad_files_are_refused_with_the_file_and_the_problem() {
    let dir = tls::temp_dir("files");
    let good = tls::self_signed(&dir, "good", &["localhost"]);
    let other = tls::self_signed(&dir, "other", &["localhost"]);
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.join("missing.pem");
    let cases = [
        (TlsConfig::new(&missing, &good.key), &missing, "cannot read"),
        (
            TlsConfig::new(&empty, &good.key),
            &empty,
            "no PEM certificate",
        ),
        (
            TlsConfig::new(&good.cert, &empty),
            &empty,
            "no PEM private key",
        ),
        (
            TlsConfig::new(&good.cert, &good.cert),
            &good.cert,
            "holds a certificate",
        ),
        (
            TlsConfig::new(&good.cert, &other.key),
            &other.key,
            "does not match",
        ),
    ];
    for (config, path, problem) in cases {
        let err = TlsAcceptor::new(config).unwrap_err();
        assert_eq!(&err.path, path, "{err}");
        assert!(err.problem.contains(problem), "{err}");
        let line = err.to_string();
        assert!(
            !line.contains('\n') && line.starts_with(&*path.to_string_lossy()),
            "{line}"
        );
    }
}

#[test]
fn kernel_tls_takes_the_session_where_offered_and_the_fallback_is_reported() {
    let dir = tls::temp_dir("ktls");
    let cert = tls::self_signed(&dir, "server", &["localhost"]);
    let acceptor = TlsAcceptor::new(TlsConfig::new(&cert.cert, &cert.key)).unwrap();
    let support = acceptor.ktls().clone();
    let (server, addr) = serve(acceptor);
    let fallbacks = &server.report().fallbacks;
    for (seed, version) in [(8, &rustls::version::TLS13), (9, &rustls::version::TLS12)] {
        let config = tls::client_config(&[&cert.cert_pem], Some(version), None);
        let mut client = tls::connect(addr, "localhost", config).unwrap();
        echo_round_trips(&mut client, seed, 300_000);
    }
    if support.is_available() {
        println!("kTLS available: {support}");
        wait_for(&server, "both sessions in the kernel", |s| {
            s.net.tls.ktls == 2
        });
        assert!(!fallbacks.iter().any(|f| f.contains("kernel TLS")));
    } else {
        println!("kTLS not available here: {support}");
        assert!(support.why_not().is_some_and(|w| !w.is_empty()));
        assert!(
            fallbacks
                .iter()
                .any(|f| f.contains("kernel TLS not in use")),
            "{fallbacks:?}"
        );
        assert_eq!(stats(&server).net.tls.ktls, 0);
    }
    // Switched off, it is never tried and says so.
    let mut off = TlsConfig::new(&cert.cert, &cert.key);
    off.ktls = KtlsMode::Off;
    let off = TlsAcceptor::new(off).unwrap();
    assert!(!off.ktls().is_available());
    assert!(off.ktls().to_string().contains("switched off"));
}
