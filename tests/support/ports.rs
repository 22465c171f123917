//! Test support: loopback ports for a server a test starts after choosing its address.
//!
//! The usual trick (bind port 0, read the port, close, hand it over) races with every
//! outbound connection on the host: the kernel takes connection source ports from the same
//! ephemeral range (`net.ipv4.ip_local_port_range`), so a client of another test running at
//! the same moment can be given the freed port, and the server then fails to bind it
//! (`address already in use`). Ports chosen here lie below that range, where neither
//! `connect` nor `bind(0)` ever lands; a bind check skips one another process holds.

#![allow(dead_code)]

use std::{
    hash::{BuildHasher, RandomState},
    net::{SocketAddr, TcpListener},
    sync::atomic::{AtomicU64, Ordering},
};

/// Ports below this are left alone (well-known and registered services).
const LOWEST: u16 = 10_000;

/// A loopback address whose port is free now and outside the ephemeral range.
pub fn free_loopback_addr() -> SocketAddr {
    let (below, _) = ephemeral_range();
    let span = below.saturating_sub(LOWEST).max(1);
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    for _ in 0..1000 {
        // A new random draw per call: tests of one binary run in parallel threads, and
        // several test binaries at once.
        let draw = RandomState::new().hash_one(DRAWS.fetch_add(1, Ordering::Relaxed));
        let port = LOWEST + (draw % u64::from(span)) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port in {LOWEST}..{below} after 1000 draws");
}

/// The kernel's ephemeral port range (its default when it cannot be read).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut ports = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((ports.next()??, ports.next()??))
        })
        .unwrap_or((32_768, 60_999))
}
