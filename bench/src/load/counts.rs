//! The books of a request-response load. Every request sent ends as exactly one of: a
//! success, one counted request error, or "in flight at the end" (its answer had not come
//! when the drain deadline passed), so `sent == ok + request_errors() + in_flight_at_end`
//! always holds. Failed connection attempts are counted apart: no request was sent on them.

use std::io;

use crate::connect::ConnectFailure;

/// Why a request, or a connection attempt, failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    ConnectRefused,
    ConnectTimeout,
    ConnectOther,
    /// A complete, well-framed response with an unexpected status (HTTP) or an error
    /// reply (RESP).
    Status,
    /// The server closed the connection in the middle of this request's response.
    Truncated,
    /// The server closed the connection before any byte of this request's response.
    Closed,
    /// The response bytes do not parse.
    Parse,
    /// Reset or broken pipe while the request was in flight.
    Reset,
    /// No response byte for the whole timeout.
    Timeout,
    /// Another I/O error on the connection.
    Io,
    /// In flight (pipelined) behind a request that failed; the connection was dropped, so
    /// its response will never be read.
    Aborted,
}

impl ErrorKind {
    /// Classifies an I/O error on an established connection.
    pub fn of_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
            io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
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
    /// Requests still waiting for their response when the drain deadline passed.
    pub in_flight_at_end: u64,
    /// Connections opened (successful connects).
    pub connects: u64,
    pub connect_refused: u64,
    pub connect_timeout: u64,
    pub connect_other: u64,
    pub status: u64,
    pub truncated: u64,
    pub closed: u64,
    pub parse: u64,
    pub reset: u64,
    pub timeout: u64,
    pub io: u64,
    pub aborted: u64,
}

impl Counts {
    pub fn add_error(&mut self, kind: ErrorKind) {
        *self.slot(kind) += 1;
    }

    fn slot(&mut self, kind: ErrorKind) -> &mut u64 {
        match kind {
            ErrorKind::ConnectRefused => &mut self.connect_refused,
            ErrorKind::ConnectTimeout => &mut self.connect_timeout,
            ErrorKind::ConnectOther => &mut self.connect_other,
            ErrorKind::Status => &mut self.status,
            ErrorKind::Truncated => &mut self.truncated,
            ErrorKind::Closed => &mut self.closed,
            ErrorKind::Parse => &mut self.parse,
            ErrorKind::Reset => &mut self.reset,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Io => &mut self.io,
            ErrorKind::Aborted => &mut self.aborted,
        }
    }

    /// Failed requests (each was sent).
    pub fn request_errors(&self) -> u64 {
        self.status
            + self.truncated
            + self.closed
            + self.parse
            + self.reset
            + self.timeout
            + self.io
            + self.aborted
    }

    /// Failed connection attempts (no request was sent on them).
    pub fn connect_errors(&self) -> u64 {
        self.connect_refused + self.connect_timeout + self.connect_other
    }

    pub fn errors(&self) -> u64 {
        self.request_errors() + self.connect_errors()
    }

    /// True when every request sent is accounted for exactly once.
    pub fn reconciles(&self) -> bool {
        self.sent == self.ok + self.request_errors() + self.in_flight_at_end
    }

    pub fn merge(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.in_flight_at_end += other.in_flight_at_end;
        self.connects += other.connects;
        for (kind, n) in other.errors_by_kind() {
            *self.slot(kind) += n;
        }
    }

    fn errors_by_kind(&self) -> [(ErrorKind, u64); 11] {
        [
            (ErrorKind::ConnectRefused, self.connect_refused),
            (ErrorKind::ConnectTimeout, self.connect_timeout),
            (ErrorKind::ConnectOther, self.connect_other),
            (ErrorKind::Status, self.status),
            (ErrorKind::Truncated, self.truncated),
            (ErrorKind::Closed, self.closed),
            (ErrorKind::Parse, self.parse),
            (ErrorKind::Reset, self.reset),
            (ErrorKind::Timeout, self.timeout),
            (ErrorKind::Io, self.io),
            (ErrorKind::Aborted, self.aborted),
        ]
    }

    /// `(name, count)` of every error kind, for reports.
    pub fn error_fields(&self) -> [(&'static str, u64); 11] {
        let names = [
            "connect_refused",
            "connect_timeout",
            "connect_other",
            "status",
            "truncated",
            "closed",
            "parse",
            "reset",
            "timeout",
            "io",
            "aborted",
        ];
        let by_kind = self.errors_by_kind();
        std::array::from_fn(|i| (names[i], by_kind[i].1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_field_and_the_books_balance() {
        let mut a = Counts {
            sent: 10,
            ok: 6,
            in_flight_at_end: 1,
            ..Counts::default()
        };
        a.add_error(ErrorKind::Status);
        a.add_error(ErrorKind::Parse);
        a.add_error(ErrorKind::Aborted);
        a.add_error(ErrorKind::ConnectRefused);
        assert!(a.reconciles());
        let mut b = a;
        b.merge(&a);
        assert_eq!(b.sent, 20);
        assert_eq!(b.status, 2);
        assert_eq!(b.connect_refused, 2);
        assert_eq!(b.errors(), 8);
        assert!(b.reconciles());
        b.sent += 1;
        assert!(!b.reconciles());
    }
}
