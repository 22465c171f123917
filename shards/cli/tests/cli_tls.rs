//! `percore serve|kv|echo --tls-cert --tls-key` with real clients: curl (HTTPS, ALPN, the
//! plaintext listener beside), redis-cli --tls, openssl s_client (echo, and the bad-input
//! cases), SIGHUP reload, and bad files refused at startup in one line with exit status 2.
//! Certificates are made at test time. Under `CI=true` a missing client fails the test;
//! locally it is skipped with the reason printed (tests/run.sh installs them).

#[path = "../../../tests/support/clients.rs"]
mod clients;
#[path = "support/process.rs"]
mod process;
#[path = "../../../tests/support/tls.rs"]
mod tls;

use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use clients::{client, run_bounded};
use process::{free_addr, sigterm, wait_exit, wait_until_listening};

struct Server {
    child: Child,
    report: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        sigterm(&self.child);
        wait_exit(&mut self.child, Duration::from_secs(10));
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(args)
        .args(["--shards", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("percore runs");
    let report = wait_until_listening(&mut child);
    Server { child, report }
}

fn curl(curl: &str, args: &[&str]) -> Output {
    run_bounded(
        Command::new(curl)
            .args(["-sS", "--max-time", "10"])
            .args(args),
        b"",
        Duration::from_secs(15),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The admin listener's metrics.
fn metrics(curl_path: &str, admin: &str) -> String {
    text(&curl(curl_path, &[&format!("http://{admin}/metrics")]).stdout)
}

fn failures(metrics: &str, reason: &str) -> u64 {
    let prefix =
        format!("percore_tls_handshake_failures_total{{shard=\"0\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {reason} line in {metrics}"))
}

#[test]
fn serve_answers_curl_over_https_and_on_the_plain_listener() {
    let Some(curl_path) = client("curl", "curl") else {
        return;
    };
    let dir = tls::temp_dir("cli-serve");
    let cert = tls::self_signed(&dir, "server", &["localhost", "127.0.0.1"]);
    let (addr, plain, admin) = (free_addr(), free_addr(), free_addr());
    let port = addr.rsplit(':').next().unwrap().to_string();
    let server = start(&[
        "serve",
        "--listen",
        &addr,
        "--listen-plain",
        &plain,
        "--admin",
        &admin,
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
    ]);
    assert!(
        server.report.contains(&format!("https://{addr}")),
        "{}",
        server.report
    );
    let cacert = cert.cert.to_str().unwrap();
    let url = format!("https://localhost:{port}/");
    // TLS 1.3 with ALPN http/1.1 (curl -v says what was negotiated).
    let out = curl(&curl_path, &["-v", "--cacert", cacert, &url]);
    assert_eq!(text(&out.stdout), "Hello, World!", "{}", text(&out.stderr));
    let verbose = text(&out.stderr);
    assert!(verbose.contains("TLSv1.3"), "{verbose}");
    assert!(verbose.contains("http/1.1"), "{verbose}");
    // TLS 1.2, and a body larger than one record each way.
    let body = "x".repeat(100_000);
    let body_file = dir.join("body");
    std::fs::write(&body_file, &body).unwrap();
    let body_arg = format!("@{}", body_file.display());
    let out = curl(
        &curl_path,
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--cacert",
            cacert,
            "--data-binary",
            &body_arg,
            &format!("{url}echo"),
        ],
    );
    assert_eq!(out.stdout.len(), body.len(), "{}", text(&out.stderr));
    // Keep-alive: several requests on one connection.
    let out = curl(
        &curl_path,
        &["--cacert", cacert, &url, &format!("{url}json"), &url],
    );
    assert!(
        text(&out.stdout).matches("Hello, World!").count() == 3,
        "{}",
        text(&out.stdout)
    );
    // The plaintext listener beside, and plain HTTP sent to the TLS port.
    let out = curl(&curl_path, &[&format!("http://{plain}/")]);
    assert_eq!(text(&out.stdout), "Hello, World!");
    let out = curl(&curl_path, &["-i", &format!("http://{addr}/")]);
    assert!(
        text(&out.stdout).starts_with("HTTP/1.1 400"),
        "{}",
        text(&out.stdout)
    );
    let m = metrics(&curl_path, &admin);
    assert_eq!(failures(&m, "plaintext_http"), 1, "{m}");
    assert!(
        m.contains("percore_tls_handshakes_total{shard=\"0\"} 3"),
        "{m}"
    );
}

#[test]
fn openssl_s_client_bad_input_gets_alerts_and_is_counted() {
    let Some(openssl) = client("openssl", "openssl") else {
        return;
    };
    let Some(curl_path) = client("curl", "curl") else {
        return;
    };
    let dir = tls::temp_dir("cli-bad");
    let cert = tls::self_signed(&dir, "server", &["localhost"]);
    let (addr, admin) = (free_addr(), free_addr());
    let _server = start(&[
        "echo",
        "--listen",
        &addr,
        "--admin",
        &admin,
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
    ]);
    let s_client = |args: &[&str]| {
        run_bounded(
            Command::new(&openssl)
                .args(["s_client", "-connect", &addr, "-servername", "localhost"])
                .args(["-CAfile", cert.cert.to_str().unwrap()])
                .args(args),
            b"",
            Duration::from_secs(15),
        )
    };
    // `percore echo` over TLS works (the good case, for contrast).
    let sock_addr: SocketAddr = addr.parse().unwrap();
    let config = tls::client_config(&[&cert.cert_pem], None, None);
    let mut echo = tls::connect(sock_addr, "localhost", config).unwrap();
    echo.write_all(b"hello over tls").unwrap();
    echo.flush().unwrap();
    let mut got = [0; 14];
    echo.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello over tls");
    // TLS 1.1 and 1.0 are refused with an alert.
    let out = s_client(&["-tls1_1"]);
    assert!(!out.status.success());
    // TLS 1.2 offering only CBC suites: nothing in common.
    let out = s_client(&["-tls1_2", "-cipher", "AES128-SHA:ECDHE-ECDSA-AES128-SHA"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("alert"), "{}", text(&out.stderr));
    // A truncated ClientHello: the first bytes, then the client goes away.
    let hello = tls::client_hello(tls::client_config(&[&cert.cert_pem], None, None));
    assert!(tls::send_raw(sock_addr, &hello[..40], true).is_empty());
    // Garbage.
    let got = tls::send_raw(sock_addr, b"\x01\x02\x03\x04\x05\x06garbage", false);
    assert_eq!(got.first(), Some(&21), "no alert: {got:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics(&curl_path, &admin);
        if failures(&m, "no_common_parameters") >= 2
            && failures(&m, "eof") == 1
            && failures(&m, "not_tls") == 1
        {
            break;
        }
        assert!(Instant::now() < deadline, "{m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_cli_speaks_tls_to_kv() {
    let Some(redis_cli) = client("redis-cli", "redis-tools") else {
        return;
    };
    let dir = tls::temp_dir("cli-kv");
    let cert = tls::self_signed(&dir, "server", &["localhost", "127.0.0.1"]);
    let addr = free_addr();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let _server = start(&[
        "kv",
        "--listen",
        &addr,
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
    ]);
    let script = "PING\nSET greeting hello-tls\nGET greeting\nINCRBY n 41\nINCR n\n";
    let out = run_bounded(
        Command::new(&redis_cli).args([
            "--tls",
            "--cacert",
            cert.cert.to_str().unwrap(),
            "-h",
            "127.0.0.1",
            "-p",
            &port,
        ]),
        script.as_bytes(),
        Duration::from_secs(15),
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["PONG", "OK", "hello-tls", "41", "42"],
        "stderr: {}",
        text(&out.stderr)
    );
    // Without --tls the client's RESP reaches a TLS port: it gets no answer, only a close.
    let out = run_bounded(
        Command::new(&redis_cli).args(["-h", "127.0.0.1", "-p", &port, "PING"]),
        b"",
        Duration::from_secs(15),
    );
    assert!(!text(&out.stdout).contains("PONG"));
}

/// A keep-alive HTTPS request on an open rustls connection.
fn get(client: &mut tls::Client) -> String {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    client.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    while !got.ends_with(b"Hello, World!") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", text(&got));
        got.extend_from_slice(&buf[..n]);
    }
    text(&got)
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let dir = tls::temp_dir("cli-hup");
    let old = tls::self_signed(&dir, "server", &["localhost"]);
    let addr = free_addr();
    let server = start(&[
        "serve",
        "--listen",
        &addr,
        "--tls-cert",
        old.cert.to_str().unwrap(),
        "--tls-key",
        old.key.to_str().unwrap(),
    ]);
    let sock_addr: SocketAddr = addr.parse().unwrap();
    let mut open = tls::connect(
        sock_addr,
        "localhost",
        tls::client_config(&[&old.cert_pem], None, None),
    )
    .unwrap();
    assert!(get(&mut open).starts_with("HTTP/1.1 200"));
    let new = tls::self_signed(&dir, "server", &["localhost"]);
    // SAFETY: plain kill(2) of our own child.
    let sent = unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    assert_eq!(sent, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_roots = || tls::client_config(&[&new.cert_pem], None, None);
    while tls::connect(sock_addr, "localhost", new_roots()).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let old_roots = tls::client_config(&[&old.cert_pem], None, None);
    assert!(tls::connect(sock_addr, "localhost", old_roots).is_err());
    // The connection opened before the reload goes on.
    assert!(get(&mut open).starts_with("HTTP/1.1 200"));
    drop(server);
}

fn refused(args: &[&str], path: &Path, problem: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(args)
        .args(["--listen", &free_addr(), "--shards", "1", "--quiet"])
        .output()
        .expect("percore runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&*path.to_string_lossy()), "{stderr}");
    assert!(stderr.contains(problem), "{stderr}");
}

#[test]
fn bad_certificates_and_keys_stop_startup_in_one_line_with_status_2() {
    let dir = tls::temp_dir("cli-files");
    let good = tls::self_signed(&dir, "good", &["localhost"]);
    let other = tls::self_signed(&dir, "other", &["localhost"]);
    let garbage = dir.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n",
    )
    .unwrap();
    let missing = dir.join("missing.pem");
    let (g_cert, g_key) = (good.cert.to_str().unwrap(), good.key.to_str().unwrap());
    for service in ["serve", "kv", "echo"] {
        refused(
            &[
                service,
                "--tls-cert",
                missing.to_str().unwrap(),
                "--tls-key",
                g_key,
            ],
            &missing,
            "cannot read",
        );
        refused(
            &[
                service,
                "--tls-cert",
                g_cert,
                "--tls-key",
                other.key.to_str().unwrap(),
            ],
            &other.key,
            "does not match",
        );
    }
    refused(
        &[
            "serve",
            "--tls-cert",
            garbage.to_str().unwrap(),
            "--tls-key",
            g_key,
        ],
        &garbage,
        "bad PEM",
    );
    refused(
        &["serve", "--tls-cert", g_cert, "--tls-key", g_cert],
        &good.cert,
        "holds a certificate",
    );
}
