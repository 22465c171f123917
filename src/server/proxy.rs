//! The PROXY protocol on accept (`ServerBuilder::proxy_protocol`): a connection from a
//! trusted proxy (an address in `from`) must start with a v1 or v2 header within the header
//! deadline; its client address then replaces the peer's ([`TcpStream::client_addr`]). A
//! connection from anyone else is served as a direct client, unless its first bytes carry a
//! PROXY signature: then it is closed (only trusted proxies may say who the client is).
//!
//! Every outcome is counted per shard: `percore_proxy_headers_total{version}` (accepted:
//! `v1`, `v2`, `local`) and `percore_proxy_rejected_total{reason}` (`signature`, `v1`, `v2`,
//! `too_long`, `truncated`, `timeout`, `untrusted`).
//!
//! An untrusted peer that sends nothing within the header deadline is handed to the service
//! unchecked (a client may connect before it has anything to say); the service's own
//! parser then refuses a PROXY line that comes later as a bad request.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use crate::{
    metrics::counter,
    net::{
        TcpStream,
        proxy_protocol::{self, Parsed, ProxyError, ProxyHeader, ProxyLimits, Signature},
    },
    time::timeout,
};

/// How the PROXY protocol is accepted; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Peers allowed (and required) to send a header.
    pub from: Vec<Cidr>,
    /// How long a trusted peer has to send its whole header. Default 5 s.
    pub header_timeout: Duration,
    /// Bounds on v2 headers.
    pub limits: ProxyLimits,
}

impl ProxyProtocol {
    /// Trusts `from`, with the default deadline and limits.
    pub fn from(from: Vec<Cidr>) -> Self {
        ProxyProtocol {
            from,
            header_timeout: Duration::from_secs(5),
            limits: ProxyLimits::default(),
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.from.iter().any(|cidr| cidr.contains(ip))
    }
}

/// An address block, `10.0.0.0/8`, `::1/128`, or one address (`127.0.0.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an address or address/prefix"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix must be 0..={max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The check of one accepted connection: the stream to serve (with its client address
/// set), or `None` when it was refused (it is then dropped, which closes it).
pub(crate) async fn admit(mut stream: TcpStream, config: &ProxyProtocol) -> Option<TcpStream> {
    let peer = stream.peer_addr().ok()?;
    if !config.trusts(peer.ip()) {
        return check_untrusted(stream, config, peer).await;
    }
    let limits = config.limits;
    let read = stream.read_with(|data| match proxy_protocol::parse(data, &limits) {
        Ok(Parsed::NeedMore) => (0, Ok(None)),
        Ok(Parsed::Header { header, len }) => (len, Ok(Some(header))),
        Err(e) => (data.len().max(1), Err(e)),
    });
    let outcome = match timeout(config.header_timeout, read).await {
        Err(_) => Err("timeout"),
        Ok(Err(_)) | Ok(Ok(None)) => Err(ProxyError::Truncated.label()),
        Ok(Ok(Some(Err(e)))) => {
            tracing::debug!(%peer, "PROXY protocol: {e}; closed");
            Err(e.label())
        }
        Ok(Ok(Some(Ok(None)))) => Err(ProxyError::Truncated.label()),
        Ok(Ok(Some(Ok(Some(header))))) => Ok(header),
    };
    match outcome {
        Ok(ProxyHeader::Proxied { source, .. }) => {
            tracing::debug!(client = %source, proxy = %peer, "PROXY protocol: accepted");
            count_accepted("proxied");
            stream.set_client_addr(source);
            Some(stream)
        }
        Ok(ProxyHeader::Local) => {
            count_accepted("local");
            Some(stream)
        }
        Err(reason) => {
            count_rejected(reason);
            None
        }
    }
}

async fn check_untrusted(
    mut stream: TcpStream,
    config: &ProxyProtocol,
    peer: SocketAddr,
) -> Option<TcpStream> {
    let peek = stream.peek_with(|data| match proxy_protocol::signature(data) {
        Signature::Undecided => None,
        Signature::V1 | Signature::V2 => Some(true),
        Signature::None => Some(false),
    });
    match timeout(config.header_timeout, peek).await {
        Ok(Ok(Some(true))) => {
            tracing::debug!(%peer, "PROXY protocol header from an untrusted peer; closed");
            count_rejected("untrusted");
            None
        }
        // Closed, failed: the service sees it as it is.
        Ok(_) | Err(_) => Some(stream),
    }
}

fn count_accepted(kind: &'static str) {
    counter(
        "percore_proxy_headers_total",
        "PROXY protocol headers accepted, by kind (proxied: a client address; local: the proxy's own connection).",
        &[("kind", kind)],
    )
    .inc();
}

fn count_rejected(reason: &'static str) {
    counter(
        "percore_proxy_rejected_total",
        "Connections closed by the PROXY protocol check, by reason.",
        &[("reason", reason)],
    )
    .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_strictly_and_match_their_block() {
        let lan: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(lan.contains("10.1.200.3".parse().unwrap()));
        assert!(!lan.contains("10.2.0.1".parse().unwrap()));
        assert!(
            lan.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
