//! The startup report: one block, printed once, saying what percore found and uses.

use std::fmt;

use crate::{
    driver::{DriverKind, RingFeatures},
    sys,
};

pub(crate) struct ShardReport {
    pub(crate) id: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) features: RingFeatures,
    pub(crate) driver: DriverKind,
    /// Why `auto` did not get io_uring, with the fix.
    pub(crate) driver_fallback: Option<String>,
    pub(crate) pin_error: Option<String>,
}

/// Kernel, io_uring features in use, fallbacks taken, and the shard → CPU map.
pub struct StartupReport {
    pub kernel: String,
    pub shards: usize,
    /// `(shard, cpu)`; `None` for an unpinned shard.
    pub shard_cpus: Vec<(usize, Option<usize>)>,
    pub features: RingFeatures,
    /// The driver the shards run on (the first shard's, when they differ: see `fallbacks`).
    pub driver: DriverKind,
    /// Why the driver is epoll although io_uring was allowed (`auto`), with the fix.
    pub driver_reason: Option<String>,
    /// Every fallback and warning, once each.
    pub fallbacks: Vec<String>,
    /// Host problems the doctor would warn about (low limits...), one line each.
    pub warnings: Vec<String>,
    pub nofile_limit: Option<u64>,
    pub blocking_threads: usize,
    /// Where `GET /metrics` is served, when the admin listener is on.
    pub admin_addr: Option<std::net::SocketAddr>,
    /// The connection steering mode in effect, in words.
    pub steering: String,
    /// The connection caps and their policy, in words.
    pub connection_caps: String,
    /// Where the listening sockets came from when they were not bound here (systemd,
    /// `--listen-fd`, a hot restart's predecessor); `None` when bound.
    pub listeners: Option<String>,
}

impl StartupReport {
    pub(crate) fn new(
        shards: Vec<ShardReport>,
        nofile: Option<sys::rlimit::Limit>,
        blocking_threads: usize,
    ) -> Self {
        let kernel = sys::kernel::kernel_version()
            .map(|k| k.release)
            .unwrap_or_else(|_| "unknown".into());
        let features = shards
            .first()
            .map(|s| s.features.clone())
            .unwrap_or_default();
        let driver = shards.first().map_or(DriverKind::IoUring, |s| s.driver);
        let driver_reason = shards.iter().find_map(|s| s.driver_fallback.clone());
        let mut fallbacks: Vec<String> = Vec::new();
        if shards.iter().any(|s| s.driver != driver) {
            fallbacks.push(
                "shards run on different drivers (io_uring could not start on every shard)".into(),
            );
        }
        for shard in &shards {
            for line in shard
                .features
                .fallbacks
                .iter()
                .chain(shard.pin_error.iter())
            {
                if !fallbacks.contains(line) {
                    fallbacks.push(line.clone());
                }
            }
        }
        let warnings = crate::doctor::startup_warnings(shards.len());
        StartupReport {
            kernel,
            shards: shards.len(),
            shard_cpus: shards.iter().map(|s| (s.id, s.cpu)).collect(),
            features,
            driver,
            driver_reason,
            fallbacks,
            warnings,
            nofile_limit: nofile.map(|l| l.soft),
            blocking_threads,
            admin_addr: None,
            steering: String::new(),
            connection_caps: String::new(),
            listeners: None,
        }
    }
}

impl fmt::Display for StartupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |on: bool, name: &'static str| if on { Some(name) } else { None };
        let ff = &self.features;
        let in_use: Vec<&str> = [
            flag(ff.single_issuer, "SINGLE_ISSUER"),
            flag(ff.defer_taskrun, "DEFER_TASKRUN"),
            flag(ff.coop_taskrun, "COOP_TASKRUN"),
            flag(ff.taskrun_flag, "TASKRUN_FLAG"),
            Some("bounded accept"),
            Some("multishot recv"),
            Some("provided-buffer ring"),
            flag(ff.msg_ring, "MSG_RING"),
            flag(ff.send_zc, "SEND_ZC available"),
            flag(ff.nodrop, "NODROP"),
        ]
        .into_iter()
        .flatten()
        .collect();
        writeln!(
            f,
            "percore {}: Linux {}, {} shard(s)",
            env!("CARGO_PKG_VERSION"),
            self.kernel,
            self.shards
        )?;
        match (self.driver, &self.driver_reason) {
            (DriverKind::IoUring, _) => writeln!(f, "  io_uring: {}", in_use.join(", "))?,
            (DriverKind::Epoll, Some(why)) => {
                writeln!(f, "  driver: epoll (io_uring unavailable: {why})")?
            }
            (DriverKind::Epoll, None) => writeln!(f, "  driver: epoll (chosen)")?,
        }
        if self.fallbacks.is_empty() {
            writeln!(f, "  fallbacks: none")?;
        } else {
            for line in &self.fallbacks {
                writeln!(f, "  fallback: {line}")?;
            }
        }
        for line in &self.warnings {
            writeln!(f, "  warning: {line}")?;
        }
        let map: Vec<String> = self
            .shard_cpus
            .iter()
            .map(|(shard, cpu)| match cpu {
                Some(cpu) => format!("{shard}→cpu{cpu}"),
                None => format!("{shard}→unpinned"),
            })
            .collect();
        writeln!(f, "  shards: {}", map.join(" "))?;
        if let Some(listeners) = &self.listeners {
            writeln!(f, "  listeners: {listeners}")?;
        }
        if !self.steering.is_empty() {
            writeln!(f, "  steering: {}", self.steering)?;
        }
        if !self.connection_caps.is_empty() {
            writeln!(f, "  connections: {}", self.connection_caps)?;
        }
        let nofile = self
            .nofile_limit
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        writeln!(
            f,
            "  open-files limit: {nofile}; blocking pool: {} threads",
            self.blocking_threads
        )?;
        match self.admin_addr {
            Some(addr) => writeln!(f, "  metrics: http://{addr}/metrics"),
            None => Ok(()),
        }
    }
}
