//! Limits and sysctls: locked memory, open files, listen and SYN backlogs, ports.

use crate::{
    doctor::{
        Check, DoctorConfig,
        facts::{Facts, Rlimit},
    },
    driver::RingConfig,
    sys::kernel::KernelVersion,
};

/// Descriptors a process needs before its first connection: stdio, logs, signal fds.
const FDS_PER_PROCESS: u64 = 16;
/// Descriptors each shard holds before its first connection: ring, eventfd, listener, and
/// room for accept bursts and the blocking pool.
const FDS_PER_SHARD: u64 = 16;
/// percore's listen backlog (`sys::socket`), which `net.core.somaxconn` caps.
const LISTEN_BACKLOG: u64 = 4096;
const SYN_BACKLOG: u64 = 4096;
/// Below this many ephemeral ports, outbound connections to one destination run out early.
const PORT_SPAN_MIN: u32 = 16384;
/// Bytes one shard's ring locks on kernels that charge rings to RLIMIT_MEMLOCK (< 5.12):
/// 64-byte SQEs, 16-byte CQEs, the 4-byte SQ index array and a page of ring header.
fn ring_lock_bytes(config: &RingConfig) -> u64 {
    let page = 4096;
    let round = |n: u64| n.div_ceil(page) * page;
    let sq = u64::from(config.sq_entries);
    let cq = u64::from(config.cq_entries.max(config.sq_entries));
    round(sq * 64) + round(page + cq * 16 + sq * 4)
}

pub(super) fn memlock(
    limit: Option<Rlimit>,
    kernel: Option<&KernelVersion>,
    config: &DoctorConfig,
) -> Check {
    let name = "rlimit.memlock";
    let Some(limit) = limit else {
        return Check::warn(name, "cannot read RLIMIT_MEMLOCK", None);
    };
    let need = config.shards as u64 * ring_lock_bytes(&RingConfig::default());
    let soft = bytes(limit.soft);
    if limit.soft >= need {
        return Check::ok(
            name,
            format!(
                "soft {soft}: enough for the rings of {} shard(s) ({need} bytes) on any kernel",
                config.shards
            ),
        );
    }
    if kernel.is_some_and(|k| k.at_least(5, 12)) {
        return Check::ok(
            name,
            format!(
                "soft {soft}, below the {need} bytes the rings of {} shard(s) would lock on Linux < 5.12; not needed here: Linux ≥ 5.12 charges ring memory to the memory cgroup",
                config.shards
            ),
        );
    }
    Check::fail(
        name,
        format!(
            "soft {soft}: the rings of {} shard(s) lock {need} bytes on Linux < 5.12 (io_uring_setup fails with ENOMEM)",
            config.shards
        ),
        format!(
            "raise it: `ulimit -l {}` (KiB), `LimitMEMLOCK=infinity` (systemd), `docker run --ulimit memlock=-1`",
            need.div_ceil(1024)
        ),
    )
}

fn bytes(n: u64) -> String {
    if n == u64::MAX {
        "unlimited".into()
    } else {
        format!("{n} bytes")
    }
}

/// Descriptors needed: before the first connection, and with the expected connections.
fn nofile_need(config: &DoctorConfig) -> (u64, u64) {
    let start = FDS_PER_PROCESS + FDS_PER_SHARD * config.shards as u64;
    (start, start + config.expected_connections as u64)
}

pub(in crate::doctor) fn nofile(limit: Option<Rlimit>, config: &DoctorConfig) -> Check {
    let name = "rlimit.nofile";
    let Some(limit) = limit else {
        return Check::warn(name, "cannot read RLIMIT_NOFILE", None);
    };
    let (start, need) = nofile_need(config);
    let fix = format!(
        "raise the hard limit to ≥ {need}: `ulimit -Hn {need}` (root), `LimitNOFILE={need}` (systemd), `docker run --ulimit nofile={need}:{need}`"
    );
    // percore raises its soft limit to the hard one at start, so only the hard limit counts.
    let hard = limit.hard;
    if hard < start {
        Check::fail(
            name,
            format!(
                "hard limit {hard} < the {start} descriptors {} shard(s) need before any connection",
                config.shards
            ),
            fix,
        )
    } else if hard < need {
        Check::warn(
            name,
            format!(
                "hard limit {hard}: room for about {} connections, fewer than the {} expected",
                hard - start,
                config.expected_connections
            ),
            Some(fix),
        )
    } else {
        Check::ok(
            name,
            format!(
                "soft {}, hard {hard} (percore raises soft to hard): room for {} connections on {} shard(s)",
                limit.soft, config.expected_connections, config.shards
            ),
        )
    }
}

pub(super) fn sysctls(facts: &Facts, config: &DoctorConfig) -> Vec<Check> {
    let at_least = |name: &'static str, value: Option<u64>, min: u64, why: String| match value {
        None => Check::warn(name, format!("cannot read /proc/sys for {name}"), None),
        Some(v) if v < min => Check::warn(
            name,
            format!("{v}: {why}"),
            Some(format!(
                "`sysctl -w {name}={min}` (or linux-setup/tune.sh --apply)"
            )),
        ),
        Some(v) => Check::ok(name, format!("{v} (≥ {min})")),
    };
    let (_, need) = nofile_need(config);
    let ports = "net.ipv4.ip_local_port_range";
    vec![
        at_least(
            "net.core.somaxconn",
            facts.somaxconn,
            LISTEN_BACKLOG,
            format!(
                "percore's listen backlog of {LISTEN_BACKLOG} is cut to it; connect bursts beyond it wait or fail"
            ),
        ),
        at_least(
            "net.ipv4.tcp_max_syn_backlog",
            facts.tcp_max_syn_backlog,
            SYN_BACKLOG,
            "half-open connections beyond it fall back to SYN cookies or are dropped".into(),
        ),
        match facts.ip_local_port_range {
            None => Check::warn(ports, format!("cannot read /proc/sys for {ports}"), None),
            Some((lo, hi)) if hi.saturating_sub(lo) + 1 < PORT_SPAN_MIN => Check::warn(
                ports,
                format!(
                    "{lo}-{hi}: {} ephemeral ports limit outbound connections per destination",
                    hi.saturating_sub(lo) + 1
                ),
                Some(format!(
                    "`sysctl -w {ports}=\"1024 65535\"` (or linux-setup/tune.sh --apply)"
                )),
            ),
            Some((lo, hi)) => {
                Check::ok(ports, format!("{lo}-{hi}: {} ephemeral ports", hi - lo + 1))
            }
        },
        at_least(
            "fs.nr_open",
            facts.nr_open,
            need,
            format!(
                "caps RLIMIT_NOFILE below the {need} descriptors the expected connections need"
            ),
        ),
    ]
}
