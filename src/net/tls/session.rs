//! One connection's TLS record layer: ciphertext in (from the connection's receive queue),
//! plaintext out to the service; plaintext in from the service, ciphertext appended to the
//! connection's output. Pure state, no I/O: the stream and the fuzz target drive it alike.

use std::io::{Read, Write};

use rustls::Connection;

use super::ktls::RecordTracker;

/// Why the record layer gave up on a connection (also the metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The first bytes were an HTTP request in plaintext.
    PlaintextHttp,
    /// The first bytes were not a TLS record at all.
    NotTls,
    /// A malformed or unexpected record or handshake message.
    BadRecord,
    /// The peer's certificate was refused (mutual TLS), or it sent none.
    BadCertificate,
    /// No protocol version, cipher suite or ALPN protocol in common.
    NoCommonParameters,
    /// The peer sent an alert.
    PeerAlert,
    /// The peer closed (or reset) before the handshake ended: a truncated ClientHello.
    Eof,
    /// The handshake deadline passed.
    Timeout,
    /// The shard's handshake slots stayed full until the deadline.
    Overload,
}

impl Failure {
    /// Every reason, in the order of [`label`](Self::label) (for metrics).
    pub const ALL: [Failure; 9] = [
        Failure::PlaintextHttp,
        Failure::NotTls,
        Failure::BadRecord,
        Failure::BadCertificate,
        Failure::NoCommonParameters,
        Failure::PeerAlert,
        Failure::Eof,
        Failure::Timeout,
        Failure::Overload,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        crate::net::TLS_FAILURE_REASONS[self.index()]
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn of(error: &rustls::Error) -> Failure {
        use rustls::Error as E;
        match error {
            E::InvalidCertificate(_) | E::NoCertificatesPresented => Failure::BadCertificate,
            E::PeerIncompatible(_) | E::NoApplicationProtocol => Failure::NoCommonParameters,
            E::AlertReceived(_) => Failure::PeerAlert,
            _ => Failure::BadRecord,
        }
    }
}

/// What a client that speaks plain HTTP to the TLS port is told, as nginx does: in plaintext,
/// since it could not read an alert.
pub(crate) const PLAINTEXT_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 48\r\nConnection: close\r\n\r\nThis port speaks HTTPS: use https:// to reach it";

/// Classifies the first bytes of a connection that should start with a TLS handshake record
/// (content type 22). `None`: nothing wrong seen yet.
pub(crate) fn sniff(first: &[u8]) -> Option<Failure> {
    let &byte = first.first()?;
    if byte == 0x16 {
        return None;
    }
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    let looks_http = METHODS.iter().any(|m| {
        let n = m.len().min(first.len());
        first[..n] == m[..n]
    });
    Some(if looks_http {
        Failure::PlaintextHttp
    } else {
        Failure::NotTls
    })
}

/// The record layer of one connection (server side, or client side for outbound
/// connections), and the plaintext it decrypted that the reader has not consumed yet.
pub struct Session {
    pub(crate) tls: Connection,
    /// Decrypted input: `plain[pos..]` is unconsumed; the reader has seen `seen` of it.
    pub(crate) plain: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) seen: usize,
    /// Where the service's output is built before it is encrypted (reused).
    pub(crate) scratch: Vec<u8>,
    /// The peer sent close_notify: no more input.
    pub(crate) peer_closed: bool,
    /// Our close_notify is queued.
    pub(crate) close_sent: bool,
    /// Record boundaries of the input, kept while the session may go to the kernel.
    tracker: Option<RecordTracker>,
}

impl Session {
    /// A session over `tls` (a `ServerConnection` or a `ClientConnection`);
    /// `track_records` keeps the input's record boundaries, which a hand-over to kernel TLS
    /// needs.
    pub fn new(tls: impl Into<Connection>, track_records: bool) -> Self {
        let mut tls = tls.into();
        // The output is drained into the connection's buffer after every write, whose own
        // high watermark bounds it; rustls need not hold any back.
        tls.set_buffer_limit(None);
        Session {
            tls,
            plain: Vec::new(),
            pos: 0,
            seen: 0,
            scratch: Vec::new(),
            peer_closed: false,
            close_sent: false,
            tracker: track_records.then(RecordTracker::default),
        }
    }

    /// All input fed so far ends with a whole record.
    pub(crate) fn at_record_boundary(&self) -> bool {
        self.tracker
            .as_ref()
            .is_some_and(RecordTracker::at_boundary)
    }

    /// The rustls connection (negotiated version, suite, ALPN, SNI, peer certificates).
    pub fn connection(&self) -> &Connection {
        &self.tls
    }

    /// Decrypted bytes not yet consumed.
    pub fn plaintext(&self) -> &[u8] {
        &self.plain[self.pos..]
    }

    /// Marks `n` plaintext bytes consumed.
    pub fn consume(&mut self, n: usize) {
        self.pos += n.min(self.plain.len() - self.pos);
        if n > 0 {
            self.seen = 0;
        }
        if self.pos == self.plain.len() {
            self.plain.clear();
            self.pos = 0;
            if self.plain.capacity() > 64 * 1024 {
                self.plain = Vec::new();
            }
        }
    }

    /// Plaintext the reader has not been offered yet.
    pub(crate) fn has_unseen(&self) -> bool {
        self.plain.len() - self.pos > self.seen
    }

    /// Feeds ciphertext to rustls and decrypts what it completes. Stops taking input once
    /// `limit` plaintext bytes wait unconsumed (backpressure). Returns the bytes taken and,
    /// on a protocol error, why (an alert is then queued for [`write_output`]).
    ///
    /// [`write_output`]: Self::write_output
    pub fn absorb(&mut self, cipher: &[u8], limit: usize) -> (usize, Result<(), Failure>) {
        let mut rest = cipher;
        while !rest.is_empty() && self.plain.len() - self.pos < limit && !self.peer_closed {
            let before = rest;
            match self.tls.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(tracker) = &mut self.tracker {
                        tracker.feed(&before[..n]);
                    }
                }
                // The deframer's buffer is full of an oversized message: a protocol error.
                Err(_) => return (cipher.len() - rest.len(), Err(Failure::BadRecord)),
            }
            if let Err(e) = self.process() {
                return (cipher.len() - rest.len(), Err(e));
            }
        }
        (cipher.len() - rest.len(), Ok(()))
    }

    /// Processes buffered records and moves the plaintext out of rustls.
    fn process(&mut self) -> Result<(), Failure> {
        let state = self
            .tls
            .process_new_packets()
            .map_err(|e| Failure::of(&e))?;
        let ready = state.plaintext_bytes_to_read();
        let peer_closed = state.peer_has_closed();
        if ready > 0 {
            let start = self.plain.len();
            self.plain.resize(start + ready, 0);
            // rustls said `ready` bytes are there; reading them cannot fail.
            if self
                .tls
                .reader()
                .read_exact(&mut self.plain[start..])
                .is_err()
            {
                self.plain.truncate(start);
                return Err(Failure::BadRecord);
            }
        }
        self.peer_closed = peer_closed;
        Ok(())
    }

    /// Appends whatever rustls wants to send (handshake messages, tickets, alerts, records)
    /// to `out`.
    pub fn write_output(&mut self, out: &mut Vec<u8>) {
        while self.tls.wants_write() {
            match self.tls.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Encrypts `self.scratch` into records appended to `out`, and empties it.
    pub fn seal_scratch(&mut self, out: &mut Vec<u8>) {
        if self.scratch.is_empty() {
            return;
        }
        // No buffer limit (see `new`): the writer takes everything at once.
        let _ = self.tls.writer().write_all(&self.scratch);
        self.scratch.clear();
        if self.scratch.capacity() > 64 * 1024 {
            self.scratch = Vec::new();
        }
        self.write_output(out);
    }

    /// Encrypts `data` into records appended to `out`.
    pub fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let _ = self.tls.writer().write_all(data);
        self.write_output(out);
    }

    /// Queues close_notify (once) into `out`.
    pub fn close_notify(&mut self, out: &mut Vec<u8>) {
        if !self.close_sent {
            self.close_sent = true;
            self.tls.send_close_notify();
            self.write_output(out);
        }
    }
}
