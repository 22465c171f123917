//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer sends first
//! on each connection to say who the real client is. Parsing only, sans I/O; the server's
//! accept path (`server::proxy`) reads the header with a deadline, from trusted peers only.
//!
//! Strict: a wrong signature, a malformed or truncated header, an unsupported version,
//! command or address family, a v2 header longer than [`ProxyLimits::max_v2_len`] or with
//! more than [`ProxyLimits::max_tlvs`] TLVs, or a TLV that overruns the header is an error
//! (the connection is closed). The v1 line is at most 107 bytes (the spec's limit). TLV
//! contents are not interpreted, but for one: a `PP2_TYPE_CRC32C` TLV (HAProxy's
//! `proxy-v2-options crc32c`) must hold the CRC32C of the whole header computed with its
//! own 4 bytes zeroed (spec 2.2.5), or the header is refused as corrupt.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, `\r\n` included (spec: 107).
pub const V1_MAX: usize = 107;
const V2_FIXED: usize = 16;

/// Bounds on a v2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyLimits {
    /// Most bytes after the 16-byte fixed part (addresses + TLVs). Default 512.
    pub max_v2_len: usize,
    /// Most TLVs. Default 16.
    pub max_tlvs: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            max_v2_len: 512,
            max_tlvs: 16,
        }
    }
}

/// What a header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The connection carries a client: its address and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The proxy's own connection (v2 `LOCAL`, a health check) or an unknown family (v1
    /// `UNKNOWN`, v2 `UNSPEC`): the connection's own addresses stand.
    Local,
}

/// Why a header was refused. Each has a short label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither the v1 nor the v2 signature.
    Signature,
    /// A v1 line that does not parse.
    V1(&'static str),
    /// A v2 header that does not parse.
    V2(&'static str),
    /// Longer than the limits (v1: 107 bytes; v2: `max_v2_len`, `max_tlvs`).
    TooLong,
    /// The connection ended inside the header.
    Truncated,
}

impl ProxyError {
    /// A stable label (`signature`, `v1`, `v2`, `too_long`, `truncated`).
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::Signature => "signature",
            ProxyError::V1(_) => "v1",
            ProxyError::V2(_) => "v2",
            ProxyError::TooLong => "too_long",
            ProxyError::Truncated => "truncated",
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Signature => f.write_str("no PROXY protocol signature"),
            ProxyError::V1(why) => write!(f, "bad PROXY v1 header: {why}"),
            ProxyError::V2(why) => write!(f, "bad PROXY v2 header: {why}"),
            ProxyError::TooLong => f.write_str("PROXY header over the limits"),
            ProxyError::Truncated => f.write_str("connection closed inside the PROXY header"),
        }
    }
}

/// The outcome of looking at the first bytes of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes to decide yet.
    NeedMore,
    /// A whole header of `len` bytes (the rest belongs to the application).
    Header { header: ProxyHeader, len: usize },
}

/// Parses a PROXY header (v1 or v2) at the front of `input`.
pub fn parse(input: &[u8], limits: &ProxyLimits) -> Result<Parsed, ProxyError> {
    match signature(input) {
        Signature::V1 => parse_v1(input),
        Signature::V2 => parse_v2(input, limits),
        Signature::Undecided => Ok(Parsed::NeedMore),
        Signature::None => Err(ProxyError::Signature),
    }
}

/// Which signature `input` starts with, as far as its bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    V1,
    V2,
    /// A prefix of one of them: more bytes decide.
    Undecided,
    None,
}

/// Which signature `input` starts with (also used to reject a header from an untrusted
/// peer without parsing it).
pub fn signature(input: &[u8]) -> Signature {
    let prefix_of = |sig: &[u8]| {
        let n = input.len().min(sig.len());
        input[..n] == sig[..n]
    };
    if input.len() >= V1_PREFIX.len() && input.starts_with(V1_PREFIX) {
        Signature::V1
    } else if input.len() >= V2_SIGNATURE.len() && input.starts_with(&V2_SIGNATURE) {
        Signature::V2
    } else if prefix_of(V1_PREFIX) || prefix_of(&V2_SIGNATURE) {
        Signature::Undecided
    } else {
        Signature::None
    }
}

fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &input[..input.len().min(V1_MAX)];
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if input.len() >= V1_MAX {
            Err(ProxyError::TooLong)
        } else {
            Ok(Parsed::NeedMore)
        };
    };
    if window[cr] == b'\n' {
        return Err(ProxyError::V1("a bare LF ends the line"));
    }
    // The CRLF included, the line is at most 107 bytes.
    if cr + 2 > V1_MAX {
        return Err(ProxyError::TooLong);
    }
    if cr + 1 >= input.len() {
        return Ok(Parsed::NeedMore);
    }
    if input[cr + 1] != b'\n' {
        return Err(ProxyError::V1("CR not followed by LF"));
    }
    let len = cr + 2;
    let line = std::str::from_utf8(&input[V1_PREFIX.len()..cr])
        .map_err(|_| ProxyError::V1("not ASCII"))?;
    if line.starts_with("UNKNOWN") {
        return Ok(Parsed::Header {
            header: ProxyHeader::Local,
            len,
        });
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [family, src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::V1("expected 5 fields after PROXY"));
    };
    let (source, destination): (IpAddr, IpAddr) = match family {
        "TCP4" => (
            IpAddr::V4(
                src.parse::<Ipv4Addr>()
                    .map_err(|_| ProxyError::V1("bad IPv4 source"))?,
            ),
            IpAddr::V4(
                dst.parse::<Ipv4Addr>()
                    .map_err(|_| ProxyError::V1("bad IPv4 destination"))?,
            ),
        ),
        "TCP6" => (
            IpAddr::V6(
                src.parse::<Ipv6Addr>()
                    .map_err(|_| ProxyError::V1("bad IPv6 source"))?,
            ),
            IpAddr::V6(
                dst.parse::<Ipv6Addr>()
                    .map_err(|_| ProxyError::V1("bad IPv6 destination"))?,
            ),
        ),
        _ => return Err(ProxyError::V1("family is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Header {
        header: ProxyHeader::Proxied {
            source: SocketAddr::new(source, port(sport)?),
            destination: SocketAddr::new(destination, port(dport)?),
        },
        len,
    })
}

/// A v1 port: 1 to 5 decimal digits, no sign, no leading zero (but `0` itself), ≤ 65535.
fn port(text: &str) -> Result<u16, ProxyError> {
    let valid = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !valid {
        return Err(ProxyError::V1("bad port"));
    }
    text.parse().map_err(|_| ProxyError::V1("port over 65535"))
}

fn parse_v2(input: &[u8], limits: &ProxyLimits) -> Result<Parsed, ProxyError> {
    if input.len() < V2_FIXED {
        return Ok(Parsed::NeedMore);
    }
    let version_command = input[12];
    if version_command >> 4 != 2 {
        return Err(ProxyError::V2("version is not 2"));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::V2("command is neither LOCAL nor PROXY")),
    };
    let family = input[13];
    let body_len = u16::from_be_bytes([input[14], input[15]]) as usize;
    if body_len > limits.max_v2_len {
        return Err(ProxyError::TooLong);
    }
    let len = V2_FIXED + body_len;
    if input.len() < len {
        return Ok(Parsed::NeedMore);
    }
    let body = &input[V2_FIXED..len];
    let (addresses, header) = match family {
        // UNSPEC: no addresses.
        0x00 => (0, None),
        // TCP over IPv4: source, destination (4 bytes each), ports (2 each).
        0x11 => {
            let b = body
                .get(..12)
                .ok_or(ProxyError::V2("IPv4 addresses truncated"))?;
            let source = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                u16::from_be_bytes([b[8], b[9]]),
            );
            let destination = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
                u16::from_be_bytes([b[10], b[11]]),
            );
            (12, Some((source, destination)))
        }
        // TCP over IPv6: 16 + 16 + 2 + 2.
        0x21 => {
            let b = body
                .get(..36)
                .ok_or(ProxyError::V2("IPv6 addresses truncated"))?;
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let source = SocketAddr::new(ip(0), u16::from_be_bytes([b[32], b[33]]));
            let destination = SocketAddr::new(ip(16), u16::from_be_bytes([b[34], b[35]]));
            (36, Some((source, destination)))
        }
        // A LOCAL connection's family is ignored (spec); any other is not TCP.
        _ if local => (body.len(), None),
        _ => return Err(ProxyError::V2("address family is not TCP over IPv4/IPv6")),
    };
    check_tlvs(&input[..len], V2_FIXED + addresses, limits)?;
    let header = match header {
        Some((source, destination)) if !local => ProxyHeader::Proxied {
            source,
            destination,
        },
        _ => ProxyHeader::Local,
    };
    Ok(Parsed::Header { header, len })
}

/// The TLV type whose value is the header's CRC32C (spec 2.2.5).
const PP2_TYPE_CRC32C: u8 = 0x03;

/// Checks the TLVs of `header` (the whole v2 header), which start at `at`: each is
/// `type (1) length (2, big-endian) value`, and they fill the rest exactly. A CRC32C TLV is
/// verified against the header.
fn check_tlvs(header: &[u8], mut at: usize, limits: &ProxyLimits) -> Result<(), ProxyError> {
    let mut count = 0;
    let mut checksum_at = None;
    while at < header.len() {
        count += 1;
        if count > limits.max_tlvs {
            return Err(ProxyError::TooLong);
        }
        let Some(&[kind, len_hi, len_lo]) = header.get(at..at + 3) else {
            return Err(ProxyError::V2("TLV header truncated"));
        };
        let value_len = u16::from_be_bytes([len_hi, len_lo]) as usize;
        let value_at = at + 3;
        if value_at + value_len > header.len() {
            return Err(ProxyError::V2("TLV value overruns the header"));
        }
        if kind == PP2_TYPE_CRC32C {
            if value_len != 4 {
                return Err(ProxyError::V2("CRC32C TLV is not 4 bytes"));
            }
            checksum_at = Some(value_at);
        }
        at = value_at + value_len;
    }
    match checksum_at {
        Some(at) if !checksum_matches(header, at) => {
            Err(ProxyError::V2("CRC32C does not match the header"))
        }
        _ => Ok(()),
    }
}

/// Whether the big-endian CRC32C stored at `at` is that of `header` with those 4 bytes
/// read as zeroes.
fn checksum_matches(header: &[u8], at: usize) -> bool {
    let stored = u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let crc = crc32c_update(!0, &header[..at]);
    let crc = crc32c_update(crc, &[0; 4]);
    !crc32c_update(crc, &header[at + 4..]) == stored
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), one table lookup per byte: a
/// header is at most a few hundred bytes and checked once per connection.
fn crc32c_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ProxyLimits {
        ProxyLimits::default()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn v4_body() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 7, 10, 0, 0, 1];
        b.extend_from_slice(&51234u16.to_be_bytes());
        b.extend_from_slice(&8080u16.to_be_bytes());
        b
    }

    #[test]
    fn v1_tcp4_and_tcp6_give_the_client_and_leave_the_rest() {
        let input = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8080\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(input, &limits()),
            Ok(Parsed::Header {
                header: ProxyHeader::Proxied {
                    source: addr("192.0.2.7:51234"),
                    destination: addr("10.0.0.1:8080"),
                },
                len: 42,
            })
        );
        let input = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
        assert!(matches!(
            parse(input, &limits()),
            Ok(Parsed::Header { header: ProxyHeader::Proxied { source, .. }, len })
                if source == addr("[2001:db8::1]:65535") && len == input.len()
        ));
        assert_eq!(
            parse(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\nrest", &limits()),
            Ok(Parsed::Header {
                header: ProxyHeader::Local,
                len: 31
            })
        );
    }

    #[test]
    fn v1_is_strict() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\n"[..],
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8080 x\r\n",
            b"PROXY TCP5 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 ::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.7 ::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 2\r\n",
            b"PROXY TCP4 192.0.2.7  10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\rX",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n",
            // Found by fuzzing: a bare LF before a later CRLF.
            b"PROXY UNKNOWN\x0c\n\r\n",
            b"PROXY TCP4 192.0.2.\xff 10.0.0.1 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad, &limits()), Err(ProxyError::V1(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                parse(bad, &limits())
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(parse(&long, &limits()), Err(ProxyError::TooLong));
        // 105 bytes and a CR: the LF would be byte 107, still allowed; one more is not.
        let mut line = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 91]].concat();
        line.extend_from_slice(b"\r");
        assert_eq!(parse(&line, &limits()), Ok(Parsed::NeedMore));
        line.push(b'\n');
        assert!(matches!(
            parse(&line, &limits()),
            Ok(Parsed::Header { len: 107, .. })
        ));
    }

    #[test]
    fn prefixes_wait_and_anything_else_is_no_signature() {
        for partial in [
            &b""[..],
            b"P",
            b"PROX",
            b"PROXY",
            b"\r\n\r\n\0",
            b"PROXY TCP4 1.2",
        ] {
            assert_eq!(
                parse(partial, &limits()),
                Ok(Parsed::NeedMore),
                "{partial:?}"
            );
        }
        let whole = v2(1, 0x11, &v4_body());
        for cut in 0..whole.len() {
            assert_eq!(
                parse(&whole[..cut], &limits()),
                Ok(Parsed::NeedMore),
                "cut {cut}"
            );
        }
        for other in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"*1\r\n$4\r\nPING\r\n",
            b"PROXX",
            b"\r\n\r\n\0\r\nQUIT!",
        ] {
            assert_eq!(parse(other, &limits()), Err(ProxyError::Signature));
        }
        assert_eq!(signature(b"PROXY"), Signature::Undecided);
        assert_eq!(signature(b"GET"), Signature::None);
    }

    #[test]
    fn v2_proxy_local_and_families() {
        let mut input = v2(1, 0x11, &v4_body());
        input.extend_from_slice(b"tail");
        assert_eq!(
            parse(&input, &limits()),
            Ok(Parsed::Header {
                header: ProxyHeader::Proxied {
                    source: addr("192.0.2.7:51234"),
                    destination: addr("10.0.0.1:8080"),
                },
                len: 28,
            })
        );
        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&443u16.to_be_bytes());
        v6.extend_from_slice(&8443u16.to_be_bytes());
        assert!(matches!(
            parse(&v2(1, 0x21, &v6), &limits()),
            Ok(Parsed::Header { header: ProxyHeader::Proxied { source, .. }, len: 52 })
                if source == addr("[2001:db8::7]:443")
        ));
        // LOCAL (a health check): the addresses, whatever they are, are ignored.
        assert_eq!(
            parse(&v2(0, 0x11, &v4_body()), &limits()),
            Ok(Parsed::Header {
                header: ProxyHeader::Local,
                len: 28
            })
        );
        assert_eq!(
            parse(&v2(0, 0x31, &[0; 216]), &limits()),
            Ok(Parsed::Header {
                header: ProxyHeader::Local,
                len: 232
            }),
            "LOCAL: any family, its bytes skipped"
        );
        assert_eq!(
            parse(&v2(1, 0x00, &[]), &limits()),
            Ok(Parsed::Header {
                header: ProxyHeader::Local,
                len: 16
            })
        );
    }

    #[test]
    fn v2_is_strict() {
        let mut bad_version = v2(1, 0x11, &v4_body());
        bad_version[12] = 0x11;
        assert_eq!(
            parse(&bad_version, &limits()),
            Err(ProxyError::V2("version is not 2"))
        );
        assert!(matches!(
            parse(&v2(2, 0x11, &v4_body()), &limits()),
            Err(ProxyError::V2(_))
        ));
        assert!(
            matches!(
                parse(&v2(1, 0x12, &v4_body()), &limits()),
                Err(ProxyError::V2(_))
            ),
            "UDP"
        );
        assert!(
            matches!(
                parse(
                    &v2(1, 0x31, &[0; 216]),
                    &ProxyLimits {
                        max_v2_len: 300,
                        ..limits()
                    }
                ),
                Err(ProxyError::V2(_))
            ),
            "UNIX"
        );
        assert!(matches!(
            parse(&v2(1, 0x11, &v4_body()[..11]), &limits()),
            Err(ProxyError::V2(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x21, &v4_body()), &limits()),
            Err(ProxyError::V2(_))
        ));
        // TLVs: well framed passes; one overrunning or cut fails; too many fails.
        let mut body = v4_body();
        body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        body.extend_from_slice(&[0x04, 0x00, 0x00]);
        assert!(matches!(
            parse(&v2(1, 0x11, &body), &limits()),
            Ok(Parsed::Header { len: 36, .. })
        ));
        let mut over = v4_body();
        over.extend_from_slice(&[0x01, 0x00, 0x09, b'h']);
        assert_eq!(
            parse(&v2(1, 0x11, &over), &limits()),
            Err(ProxyError::V2("TLV value overruns the header"))
        );
        let mut cut = v4_body();
        cut.extend_from_slice(&[0x01, 0x00]);
        assert_eq!(
            parse(&v2(1, 0x11, &cut), &limits()),
            Err(ProxyError::V2("TLV header truncated"))
        );
        let mut many = v4_body();
        for _ in 0..17 {
            many.extend_from_slice(&[0x04, 0x00, 0x00]);
        }
        assert_eq!(
            parse(&v2(1, 0x11, &many), &limits()),
            Err(ProxyError::TooLong)
        );
        // A CRC32C TLV that is not 4 bytes is refused.
        let mut odd = v4_body();
        odd.extend_from_slice(&[0x03, 0x00, 0x02, 0, 0]);
        assert_eq!(
            parse(&v2(1, 0x11, &odd), &limits()),
            Err(ProxyError::V2("CRC32C TLV is not 4 bytes"))
        );
        let mut long = V2_SIGNATURE.to_vec();
        long.extend_from_slice(&[0x21, 0x11, 0x02, 0x01]);
        assert_eq!(
            parse(&long, &limits()),
            Err(ProxyError::TooLong),
            "decided on the length field"
        );
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value, and RFC 3720's 32 zero bytes.
        assert_eq!(!crc32c_update(!0, b"123456789"), 0xE306_9283);
        assert_eq!(!crc32c_update(!0, &[0; 32]), 0x8A91_36AA);
    }

    #[test]
    fn a_v2_crc32c_tlv_is_verified_against_the_whole_header() {
        // The header with its checksum TLV zeroed, then the checksum written in.
        let mut body = v4_body();
        body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        body.extend_from_slice(&[PP2_TYPE_CRC32C, 0x00, 0x04, 0, 0, 0, 0]);
        let mut header = v2(1, 0x11, &body);
        let at = header.len() - 4;
        let crc = !crc32c_update(!0, &header);
        header[at..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            parse(&header, &limits()),
            Ok(Parsed::Header {
                header: ProxyHeader::Proxied {
                    source: addr("192.0.2.7:51234"),
                    destination: addr("10.0.0.1:8080"),
                },
                len: header.len(),
            })
        );
        // Any flipped bit, in the addresses or in the checksum itself, is refused.
        for flip in [16, at + 3] {
            let mut corrupt = header.clone();
            corrupt[flip] ^= 0x01;
            assert_eq!(
                parse(&corrupt, &limits()),
                Err(ProxyError::V2("CRC32C does not match the header")),
                "byte {flip} flipped"
            );
        }
    }
}
