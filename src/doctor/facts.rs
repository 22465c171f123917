//! What the doctor observes about the host, kept apart from the verdicts so that tests can
//! invent a host (an old kernel, a disabled sysctl, a tiny limit) and judge it.
//!
//! Every field is a plain value: `None` means "could not be read here", never "zero".

use std::io;

use io_uring::{IoUring, Probe};

use crate::{
    driver::uring::{
        RingConfig,
        buf_ring::BufRing,
        probe::OPCODES,
        setup::{build_ring, unavailable},
    },
    sys,
};

/// A resource limit as `getrlimit` reports it; unlimited is `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: u64,
    pub hard: u64,
}

/// One opcode percore submits, and whether this kernel has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpcodePresence {
    pub name: &'static str,
    /// The kernel release that first has it.
    pub since: &'static str,
    /// Required opcodes stop the server's start when missing.
    pub required: bool,
    pub present: bool,
}

/// What creating rings on this host showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingFacts {
    /// `io_uring_setup` itself failed. `message` is the line the server prints at start for
    /// this failure (cause; fix), taken from the same function, so both say the same thing.
    SetupFailed { errno: i32, message: String },
    /// A ring could be created; what it offers.
    Works(RingProbe),
}

/// The io_uring features percore uses, as probed on a small ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingProbe {
    /// Ring flags the server's own setup ended with.
    pub single_issuer: bool,
    pub defer_taskrun: bool,
    /// Every opcode in percore's list, present or not.
    pub opcodes: Vec<OpcodePresence>,
    /// Registering a provided-buffer ring: `Err(errno)` when refused.
    pub buf_ring: Result<(), i32>,
    /// The server's ring setup failed after a plain ring worked (a missing opcode or
    /// `IORING_FEAT_EXT_ARG`): its start-up message.
    pub build_error: Option<String>,
}

/// Everything the doctor judges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// `kernel.io_uring_disabled` (Linux ≥ 6.6).
    pub io_uring_disabled: Option<u32>,
    /// `kernel.io_uring_group` (Linux ≥ 6.6); -1 means no group.
    pub io_uring_group: Option<i64>,
    /// The process's real, effective and supplementary group ids.
    pub groups: Vec<u32>,
    /// CAP_SYS_ADMIN in the effective set (it bypasses `io_uring_disabled=1`).
    pub cap_sys_admin: bool,
    pub in_container: bool,
    /// `Seccomp:` of /proc/self/status: 0 none, 1 strict, 2 filter.
    pub seccomp_mode: Option<u32>,
    pub ring: RingFacts,
    pub memlock: Option<Rlimit>,
    pub nofile: Option<Rlimit>,
    pub somaxconn: Option<u64>,
    pub tcp_max_syn_backlog: Option<u64>,
    /// `net.ipv4.ip_local_port_range` as (low, high).
    pub ip_local_port_range: Option<(u32, u32)>,
    pub nr_open: Option<u64>,
    pub online_cpus: usize,
    /// The CPUs this process may run on (its affinity mask), ascending.
    pub allowed_cpus: Vec<usize>,
    /// `/sys/devices/system/cpu/isolated`.
    pub isolated_cpus: Vec<usize>,
    /// For each allowed CPU, its SMT siblings (itself included), from sysfs topology.
    pub siblings: Vec<(usize, Vec<usize>)>,
}

impl Facts {
    /// Observes this host. Creates (and closes) two tiny io_uring instances.
    pub fn gather() -> Facts {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let allowed_cpus = sys::cpu::allowed_cpus().unwrap_or_default();
        Facts {
            kernel_release: sys::kernel::kernel_version().ok().map(|k| k.release),
            io_uring_disabled: sys::kernel::io_uring_disabled_sysctl(),
            io_uring_group: sysctl_number("kernel.io_uring_group"),
            groups: status_groups(&status),
            cap_sys_admin: status_field(&status, "CapEff:")
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0),
            in_container: sys::kernel::in_container(),
            seccomp_mode: status_field(&status, "Seccomp:").and_then(|v| v.parse().ok()),
            ring: probe_ring(),
            memlock: sys::rlimit::memlock().ok().map(to_rlimit),
            nofile: sys::rlimit::nofile().ok().map(to_rlimit),
            somaxconn: sysctl_number("net.core.somaxconn"),
            tcp_max_syn_backlog: sysctl_number("net.ipv4.tcp_max_syn_backlog"),
            ip_local_port_range: sys::kernel::sysctl("net.ipv4.ip_local_port_range")
                .and_then(|v| parse_pair(&v)),
            nr_open: sysctl_number("fs.nr_open"),
            online_cpus: sys::cpu::online_cpus(),
            isolated_cpus: std::fs::read_to_string("/sys/devices/system/cpu/isolated")
                .map(|s| parse_cpu_list(&s))
                .unwrap_or_default(),
            siblings: allowed_cpus
                .iter()
                .map(|&cpu| (cpu, thread_siblings(cpu)))
                .collect(),
            allowed_cpus,
        }
    }
}

const CAP_SYS_ADMIN: u32 = 21;

/// Ring sizes for the probe: small, so the probe itself cannot hit a memory limit that
/// the real rings would not.
const PROBE_RING: RingConfig = RingConfig {
    sq_entries: 8,
    cq_entries: 16,
    recv_buffers: 1,
    recv_buffer_size: 64,
    defer_taskrun: true,
    iowq_max_workers: [1, 1],
};

fn probe_ring() -> RingFacts {
    // A plain ring first: its errno tells EPERM (seccomp, sysctl) from ENOSYS (no io_uring).
    let plain = match IoUring::new(PROBE_RING.sq_entries) {
        Ok(ring) => ring,
        Err(e) => {
            return RingFacts::SetupFailed {
                errno: e.raw_os_error().unwrap_or(0),
                message: unavailable(&e).to_string(),
            };
        }
    };
    let bufs = BufRing::register(
        &plain.submitter(),
        PROBE_RING.recv_buffers,
        PROBE_RING.recv_buffer_size,
    );
    let mut probe = RingProbe {
        single_issuer: false,
        defer_taskrun: false,
        opcodes: probe_opcodes(&plain),
        buf_ring: bufs.as_ref().map(|_| ()).map_err(errno),
        build_error: None,
    };
    // The kernel must let go of the buffer ring before its memory is freed.
    drop(plain);
    drop(bufs);
    // The server's own setup path, so the flags judged are the ones a shard would get.
    match build_ring(&PROBE_RING) {
        Ok((_ring, features, _support)) => {
            probe.single_issuer = features.single_issuer;
            probe.defer_taskrun = features.defer_taskrun;
        }
        Err(e) => probe.build_error = Some(e.to_string()),
    }
    RingFacts::Works(probe)
}

fn probe_opcodes(ring: &IoUring) -> Vec<OpcodePresence> {
    let mut probe = Probe::new();
    // A kernel that cannot even be probed (< 5.6) has none of them.
    let probed = ring.submitter().register_probe(&mut probe).is_ok();
    OPCODES
        .iter()
        .map(|op| OpcodePresence {
            name: op.name,
            since: op.since,
            required: op.required,
            present: probed && probe.is_supported(op.code),
        })
        .collect()
}

fn errno(err: &io::Error) -> i32 {
    err.raw_os_error().unwrap_or(0)
}

fn to_rlimit(limit: sys::rlimit::Limit) -> Rlimit {
    Rlimit {
        soft: limit.soft,
        hard: limit.hard,
    }
}

fn sysctl_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    sys::kernel::sysctl(name)?.parse().ok()
}

fn parse_pair(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split_whitespace().map(str::parse);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::trim)
}

/// Real and effective gid (`Gid:`) and supplementary groups (`Groups:`).
fn status_groups(status: &str) -> Vec<u32> {
    let gids = status_field(status, "Gid:").unwrap_or("");
    let supplementary = status_field(status, "Groups:").unwrap_or("");
    let mut groups: Vec<u32> = gids
        .split_whitespace()
        .take(2)
        .chain(supplementary.split_whitespace())
        .filter_map(|g| g.parse().ok())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

fn thread_siblings(cpu: usize) -> Vec<usize> {
    let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
    match std::fs::read_to_string(path) {
        Ok(list) => parse_cpu_list(&list),
        // No topology in sysfs (some containers): count the CPU as its own core.
        Err(_) => vec![cpu],
    }
}

/// Parses the kernel's CPU list format: `0-3,8,10-11`; empty for "".
pub(crate) fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
            // Bounded: a CPU list never spans more than the kernel's NR_CPUS (≤ 8192).
            cpus.extend(lo..=hi.min(lo + 8192));
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("\n"), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("5"), [5]);
    }

    #[test]
    fn status_fields_parse() {
        let status = "Gid:\t1000\t1000\t1000\t1000\nGroups:\t4 27 1000 \nSeccomp:\t2\n";
        assert_eq!(status_groups(status), [4, 27, 1000]);
        assert_eq!(status_field(status, "Seccomp:"), Some("2"));
        assert_eq!(parse_pair("32768\t60999"), Some((32768, 60999)));
    }
}
