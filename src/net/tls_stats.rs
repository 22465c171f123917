//! TLS counters of one shard (zero unless the `tls` feature serves TLS listeners).

/// The reasons a handshake fails, as metrics labels (`reason="..."`), in the order of
/// `TlsStats::handshake_failures`.
pub const TLS_FAILURE_REASONS: [&str; 9] = [
    "plaintext_http",
    "not_tls",
    "bad_record",
    "bad_certificate",
    "no_common_parameters",
    "peer_alert",
    "eof",
    "timeout",
    "overload",
];

/// TLS counters of one shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// ... of which resumed a session (ticket or cache).
    pub resumed: u64,
    /// Handshakes that failed, by reason, in the order of [`TLS_FAILURE_REASONS`].
    pub handshake_failures: [u64; TLS_FAILURE_REASONS.len()],
    /// Input refused after the handshake (the connection then ends with an alert).
    pub record_errors: u64,
    /// Connections whose session keys went to the kernel (kTLS).
    pub ktls: u64,
    /// Connections that stayed on rustls although kTLS was wanted (cipher, kernel, or a
    /// partial record at the hand-over), or were lost to a kernel refusal.
    pub ktls_fallbacks: u64,
}
