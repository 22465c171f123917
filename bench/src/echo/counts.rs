//! Request and error counters. Every request sent ends as exactly one success or one error,
//! so `sent == ok + request_errors()` holds whenever no request is in flight.

use std::io;

use crate::connect::ConnectFailure;

/// Why a request or a connection attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    ConnectRefused,
    ConnectTimeout,
    ConnectOther,
    /// Reset or broken pipe while the request was in flight.
    Reset,
    /// The server closed the connection before echoing everything.
    Eof,
    /// An echoed byte differed from what was sent (or came without being sent).
    Mismatch,
    /// No echo byte for the whole timeout.
    Timeout,
    /// Another I/O error on the connection.
    Io,
    /// In flight (pipelined) behind a request that failed; the connection was dropped.
    Aborted,
}

impl ErrorKind {
    /// Classifies an I/O error on an established connection.
    pub fn of_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
            io::ErrorKind::UnexpectedEof => ErrorKind::Eof,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        }
    }
}

impl From<ConnectFailure> for ErrorKind {
    fn from(failure: ConnectFailure) -> Self {
        match failure {
            ConnectFailure::Refused => ErrorKind::ConnectRefused,
            ConnectFailure::Timeout => ErrorKind::ConnectTimeout,
            ConnectFailure::Other => ErrorKind::ConnectOther,
        }
    }
}

/// Counters of one phase (warm-up or measured) on one or all shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub ok: u64,
    pub connect_refused: u64,
    pub connect_timeout: u64,
    pub connect_other: u64,
    pub reset: u64,
    pub eof: u64,
    pub mismatch: u64,
    pub timeout: u64,
    pub io: u64,
    pub aborted: u64,
}

impl Counts {
    pub fn add_error(&mut self, kind: ErrorKind) {
        let slot = match kind {
            ErrorKind::ConnectRefused => &mut self.connect_refused,
            ErrorKind::ConnectTimeout => &mut self.connect_timeout,
            ErrorKind::ConnectOther => &mut self.connect_other,
            ErrorKind::Reset => &mut self.reset,
            ErrorKind::Eof => &mut self.eof,
            ErrorKind::Mismatch => &mut self.mismatch,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Io => &mut self.io,
            ErrorKind::Aborted => &mut self.aborted,
        };
        *slot += 1;
    }

    /// Failed requests (each was sent).
    pub fn request_errors(&self) -> u64 {
        self.reset + self.eof + self.mismatch + self.timeout + self.io + self.aborted
    }

    /// Failed connection attempts (no request was sent on them).
    pub fn connect_errors(&self) -> u64 {
        self.connect_refused + self.connect_timeout + self.connect_other
    }

    pub fn errors(&self) -> u64 {
        self.request_errors() + self.connect_errors()
    }

    pub fn merge(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.connect_refused += other.connect_refused;
        self.connect_timeout += other.connect_timeout;
        self.connect_other += other.connect_other;
        self.reset += other.reset;
        self.eof += other.eof;
        self.mismatch += other.mismatch;
        self.timeout += other.timeout;
        self.io += other.io;
        self.aborted += other.aborted;
    }

    /// `(name, count)` of every error kind, for reports.
    pub fn error_fields(&self) -> [(&'static str, u64); 9] {
        [
            ("connect_refused", self.connect_refused),
            ("connect_timeout", self.connect_timeout),
            ("connect_other", self.connect_other),
            ("reset", self.reset),
            ("eof", self.eof),
            ("mismatch", self.mismatch),
            ("timeout", self.timeout),
            ("io", self.io),
            ("aborted", self.aborted),
        ]
    }
}
