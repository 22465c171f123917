//! Kernel TLS: after the handshake, the session's record keys go to the kernel, and the
//! connection goes on as a plaintext stream (io_uring sends and receives plaintext, the
//! kernel seals and opens the records; no user-space crypto).
//!
//! Whether the kernel can is probed once, when the acceptor is made: a loopback connection
//! per (TLS version, cipher) gets the `tls` ULP and both directions' keys. The probe's
//! answer (and, when it fails, why: usually "module `tls` not loaded: `modprobe tls`") is
//! in the startup report and in `percore doctor`.
//!
//! Per connection, the hand-over is:
//! 1. the negotiated version and cipher must be ones the probe accepted, else rustls stays
//!    (counted as a fallback);
//! 2. everything rustls produced (handshake end, session tickets) is sent first, so the
//!    kernel does not seal it again;
//! 3. the receive is stopped and its last completion awaited, so no ciphertext is in flight
//!    to user space; what was received goes through rustls, and it must end on a record
//!    boundary (else rustls stays, counted);
//! 4. `TCP_ULP "tls"`, then the secrets with their sequence numbers (`TLS_TX`, `TLS_RX`);
//!    plaintext rustls already decrypted is put back at the front of the receive queue,
//!    and the receive restarts.
//!
//! Once the secrets are taken out of rustls there is no way back: a kernel that refuses a
//! key it accepted in the probe ends that connection (counted as a fallback).
//! Limits, as in every kTLS user: a TLS 1.3 KeyUpdate or alert from the client (close_notify
//! included) surfaces as a receive error (EIO) and ends the connection, and our side closes
//! without close_notify.

use std::{fmt, future::poll_fn, net::TcpListener, os::fd::AsRawFd, task::Poll};

use rustls::{ConnectionTrafficSecrets, ProtocolVersion};

use super::{pump, session::Session};
use crate::{
    net::{
        conn::register,
        dispatch::{arm_recv, cancel_recv, maybe_resume_recv},
        stream::TcpStream,
    },
    sys::ktls::{Cipher, CryptoInfo, attach_tls_ulp, available_ulps, set_crypto},
};

/// What the kernel offers for TLS, as probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtlsSupport {
    /// `[tls12, tls13]` × [`Cipher::ALL`]: both directions accepted.
    usable: [[bool; 3]; 2],
    /// Why not, when nothing is usable.
    why_not: Option<String>,
}

impl KtlsSupport {
    /// kTLS switched off by configuration.
    pub fn disabled() -> Self {
        KtlsSupport {
            usable: [[false; 3]; 2],
            why_not: Some("switched off (--tls-ktls off)".into()),
        }
    }

    /// Probes the kernel with loopback connections.
    pub fn probe() -> Self {
        let mut usable = [[false; 3]; 2];
        let mut last_error = None;
        for (v, tls13) in [false, true].into_iter().enumerate() {
            for (c, cipher) in Cipher::ALL.into_iter().enumerate() {
                match probe_one(tls13, cipher) {
                    Ok(()) => usable[v][c] = true,
                    Err(e) => last_error = Some(e),
                }
            }
        }
        let any = usable.iter().flatten().any(|&u| u);
        let why_not = if any {
            None
        } else {
            Some(explain(
                last_error.unwrap_or_else(|| "no cipher accepted".into()),
            ))
        };
        KtlsSupport { usable, why_not }
    }

    /// At least one version and cipher goes to the kernel.
    pub fn is_available(&self) -> bool {
        self.why_not.is_none()
    }

    /// Why kTLS is not used, when it is not.
    pub fn why_not(&self) -> Option<&str> {
        self.why_not.as_deref()
    }

    fn allows(&self, tls13: bool, cipher: Cipher) -> bool {
        let c = Cipher::ALL.iter().position(|&x| x == cipher).unwrap_or(0);
        self.usable[usize::from(tls13)][c]
    }
}

impl fmt::Display for KtlsSupport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.why_not {
            return write!(f, "kernel TLS not in use: {why}; sessions stay on rustls");
        }
        let mut parts = Vec::new();
        for (v, name) in ["TLS1.2", "TLS1.3"].into_iter().enumerate() {
            for (c, cipher) in Cipher::ALL.into_iter().enumerate() {
                if self.usable[v][c] {
                    parts.push(format!("{name} {cipher:?}"));
                }
            }
        }
        write!(
            f,
            "kernel TLS in use after the handshake ({})",
            parts.join(", ")
        )
    }
}

fn explain(error: String) -> String {
    let ulps = available_ulps().unwrap_or_default();
    if !ulps.split_whitespace().any(|u| u == "tls") {
        return format!(
            "the kernel's `tls` module is not loaded (tcp_available_ulp: \"{ulps}\"; `modprobe tls` loads it): {error}"
        );
    }
    error
}

/// One loopback connection, its accepted end given the ULP and dummy keys both ways.
fn probe_one(tls13: bool, cipher: Cipher) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("probe socket: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("probe socket: {e}"))?;
    let _client = std::net::TcpStream::connect(addr).map_err(|e| format!("probe connect: {e}"))?;
    let (server, _) = listener
        .accept()
        .map_err(|e| format!("probe accept: {e}"))?;
    let fd = server.as_raw_fd();
    attach_tls_ulp(fd).map_err(|e| e.to_string())?;
    let key = [0x42u8; 32];
    let iv = [0x24u8; 12];
    let info = CryptoInfo::new(tls13, cipher, &key[..cipher.key_len()], &iv, 0)
        .map_err(|e| e.to_string())?;
    set_crypto(fd, false, &info).map_err(|e| e.to_string())?;
    set_crypto(fd, true, &info).map_err(|e| e.to_string())?;
    Ok(())
}

/// Record boundaries of the ciphertext fed to rustls: the keys may go to the kernel only
/// between two records.
#[derive(Default, Debug)]
pub(crate) struct RecordTracker {
    header: [u8; 5],
    have: usize,
    body_left: usize,
}

impl RecordTracker {
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = (5 - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have == 5 {
                    self.have = 0;
                    self.body_left =
                        usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                }
            }
        }
    }

    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0 && self.body_left == 0
    }
}

fn cipher_of(secrets: &ConnectionTrafficSecrets) -> Option<(Cipher, &[u8], [u8; 12])> {
    let (cipher, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Cipher::Aes128Gcm, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Cipher::Aes256Gcm, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (Cipher::Chacha20Poly1305, key, iv)
        }
        _ => return None,
    };
    let iv: [u8; 12] = iv.as_ref().try_into().ok()?;
    Some((cipher, key.as_ref(), iv))
}

fn negotiated(session: &Session) -> Option<(bool, Cipher)> {
    use rustls::CipherSuite as S;
    let tls13 = match session.tls.protocol_version()? {
        ProtocolVersion::TLSv1_3 => true,
        ProtocolVersion::TLSv1_2 => false,
        _ => return None,
    };
    let cipher = match session.tls.negotiated_cipher_suite()?.suite() {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Cipher::Aes128Gcm,
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Cipher::Aes256Gcm,
        S::TLS13_CHACHA20_POLY1305_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => Cipher::Chacha20Poly1305,
        _ => return None,
    };
    Some((tls13, cipher))
}

/// How a hand-over ended.
enum Outcome {
    /// The kernel has the keys; the stream is plaintext now.
    Kernel,
    /// rustls keeps the session (the stream is unchanged).
    Rustls,
    /// The secrets left rustls but the kernel refused them: the connection cannot go on.
    Lost,
}

/// Hands the session of a freshly handshaken `stream` to the kernel where `support` allows
/// (see the module docs); otherwise the stream stays on rustls. Counts the outcome.
pub(crate) async fn offload(stream: &mut TcpStream, support: &KtlsSupport) {
    let outcome = try_offload(stream, support).await;
    let net = stream.net.clone();
    match outcome {
        Outcome::Kernel => net.count(|s| s.tls.ktls += 1),
        Outcome::Rustls => net.count(|s| s.tls.ktls_fallbacks += 1),
        Outcome::Lost => {
            net.count(|s| s.tls.ktls_fallbacks += 1);
            crate::net::dispatch::close(&net, &stream.conn, true);
        }
    }
}

async fn try_offload(stream: &mut TcpStream, support: &KtlsSupport) -> Outcome {
    let Some(session) = stream.tls.as_ref() else {
        return Outcome::Rustls;
    };
    let Some((tls13, cipher)) = negotiated(session) else {
        return Outcome::Rustls;
    };
    if !support.allows(tls13, cipher) {
        return Outcome::Rustls;
    }
    // 2. What rustls wrote leaves first, sealed by rustls.
    if stream.flush().await.is_err() {
        return Outcome::Rustls;
    }
    // 3. No receive in flight; then everything received goes through rustls.
    let net = stream.net.clone();
    let conn = stream.conn.clone();
    conn.rx.borrow_mut().paused = true;
    cancel_recv(&net, &conn);
    poll_fn(|cx| {
        if !conn.state().recv_in_flight() {
            return Poll::Ready(());
        }
        register(&mut conn.rx.borrow_mut().waker, cx.waker());
        Poll::Pending
    })
    .await;
    let Some(session) = stream.tls.as_mut() else {
        return Outcome::Rustls;
    };
    let drained = pump(&net, &conn, session).is_ok()
        && !conn.rx.borrow().has_buffered()
        && session.at_record_boundary()
        && !session.tls.wants_write();
    if !drained || attach_tls_ulp(conn.fd).is_err() {
        maybe_resume_recv(&net, &conn);
        return Outcome::Rustls;
    }
    // 4. The point of no return.
    let Some(session) = stream.tls.take() else {
        return Outcome::Rustls;
    };
    let Session {
        tls, plain, pos, ..
    } = *session;
    let installed = tls.dangerous_extract_secrets().ok().and_then(|secrets| {
        let (tx_seq, tx) = &secrets.tx;
        let (rx_seq, rx) = &secrets.rx;
        let (tx_cipher, tx_key, tx_iv) = cipher_of(tx)?;
        let (rx_cipher, rx_key, rx_iv) = cipher_of(rx)?;
        let tx_info = CryptoInfo::new(tls13, tx_cipher, tx_key, &tx_iv, *tx_seq).ok()?;
        let rx_info = CryptoInfo::new(tls13, rx_cipher, rx_key, &rx_iv, *rx_seq).ok()?;
        set_crypto(conn.fd, false, &tx_info).ok()?;
        set_crypto(conn.fd, true, &rx_info).ok()?;
        Some(())
    });
    if installed.is_none() {
        return Outcome::Lost;
    }
    {
        // Plaintext rustls decrypted before the hand-over is read first.
        let mut rx = conn.rx.borrow_mut();
        rx.spill.clear();
        rx.spill.extend_from_slice(&plain[pos..]);
        rx.spill_pos = 0;
        rx.seen_len = 0;
        rx.paused = false;
    }
    if !conn.state().recv_in_flight() {
        arm_recv(&net, &conn);
    }
    Outcome::Kernel
}

#[cfg(test)]
mod tests {
    use super::RecordTracker;

    #[test]
    fn record_boundaries_are_found_across_any_split() {
        // Two records (5-byte headers, bodies of 3 and 0 bytes), then half a third.
        let stream = [23, 3, 3, 0, 3, 1, 2, 3, 21, 3, 3, 0, 0, 23, 3, 3, 0, 2, 9];
        for cut in 0..=13 {
            let mut tracker = RecordTracker::default();
            tracker.feed(&stream[..cut]);
            tracker.feed(&stream[cut..13]);
            assert!(tracker.at_boundary(), "cut at {cut}");
            tracker.feed(&stream[13..]);
            assert!(!tracker.at_boundary());
        }
        let mut header_only = RecordTracker::default();
        header_only.feed(&[23, 3, 3]);
        assert!(!header_only.at_boundary());
    }
}
