//! `percore doctor`: can percore run on this host, and what to change if not.
//!
//! One [`Check`] per item (kernel, io_uring sysctls, seccomp, every io_uring feature percore
//! uses, limits, network sysctls, CPUs), each OK, WARN or FAIL with the exact fix, and the
//! `driver` line: which driver a run with the same `--driver` gets here (io_uring, or epoll
//! with why and the fix that brings io_uring back). The exit status follows that driver:
//! where `auto` would start on epoll, what only io_uring needs is WARN, not FAIL.
//!
//! Two halves: [`Facts::gather`] observes the host (it creates two tiny rings, reads sysctls,
//! limits and sysfs), and [`judge`] turns facts into verdicts without touching the host, so
//! tests can invent a host. The io_uring failure lines carry the very message the server prints
//! at start for the same failure (both come from `driver::uring::setup::unavailable`), and the server's
//! start-up report shows the doctor's line for a low open-files limit (`startup_warnings`).

#![forbid(unsafe_code)]

mod facts;
mod json;
mod judge;
#[cfg(test)]
mod tests;

use std::fmt;

pub use self::{
    facts::{Facts, OpcodePresence, RingFacts, RingProbe, Rlimit},
    json::to_json,
};
use crate::{
    driver::{DriverChoice, DriverKind},
    error::Error,
    sys,
};

/// How one item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fine as it is.
    Ok,
    /// percore runs, but worse than it could (a fallback, a low limit); the fix says how.
    Warn,
    /// percore cannot run (or cannot serve) until this is fixed.
    Fail,
}

impl Verdict {
    /// `ok`, `warn` or `fail`: the spelling of `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// One item the doctor checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stable id, e.g. `io_uring.setup`, `rlimit.nofile`, `net.core.somaxconn`.
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was found, and why it matters.
    pub detail: String,
    /// The exact change that makes it OK; `None` when there is nothing to do.
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn new(
        name: &'static str,
        verdict: Verdict,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            name,
            verdict,
            detail: detail.into(),
            fix,
        }
    }

    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check::new(name, Verdict::Ok, detail, None)
    }

    pub(crate) fn warn(name: &'static str, detail: impl Into<String>, fix: Option<String>) -> Self {
        Check::new(name, Verdict::Warn, detail, fix)
    }

    pub(crate) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check::new(name, Verdict::Fail, detail, Some(fix.into()))
    }
}

/// The human line: `FAIL io_uring.setup  <what> — fix: <how>`.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4} {:<29} {}", self.verdict, self.name, self.detail)?;
        match &self.fix {
            Some(fix) => write!(f, " — fix: {fix}"),
            None => Ok(()),
        }
    }
}

/// What the doctor checks the host against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoctorConfig {
    /// Shards the server will run (default: one per CPU this process may use, as the server).
    pub shards: usize,
    /// Connections the whole server should hold at once (default 10,000).
    pub expected_connections: usize,
    /// The driver the run would be started with (`--driver`, `PERCORE_DRIVER`; default
    /// auto): the io_uring lines only stop a run that would use io_uring.
    pub driver: DriverChoice,
}

impl DoctorConfig {
    pub const DEFAULT_EXPECTED_CONNECTIONS: usize = 10_000;
}

impl Default for DoctorConfig {
    fn default() -> Self {
        DoctorConfig {
            shards: sys::cpu::allowed_cpus().map_or(1, |cpus| cpus.len().max(1)),
            expected_connections: Self::DEFAULT_EXPECTED_CONNECTIONS,
            driver: DriverChoice::Auto,
        }
    }
}

/// Observes this host and judges it: one [`Check`] per item, in a stable order.
pub fn run_checks(config: &DoctorConfig) -> Vec<Check> {
    #[allow(unused_mut)]
    let mut checks = judge(&Facts::gather(), config);
    #[cfg(feature = "tls")]
    checks.push(ktls_check());
    checks
}

/// Whether TLS sessions can go to the kernel after the handshake (probed with loopback
/// connections), and if not why: a fallback to rustls, so a warning at most.
#[cfg(feature = "tls")]
fn ktls_check() -> Check {
    let support = crate::net::tls::KtlsSupport::probe();
    if support.is_available() {
        return Check::new("tls.ktls", Verdict::Ok, support.to_string(), None);
    }
    let why = support.why_not().unwrap_or_default();
    let fix = if why.contains("modprobe tls") {
        "modprobe tls (and add `tls` to /etc/modules-load.d/ to keep it)"
    } else {
        "a kernel built with CONFIG_TLS (5.1+; TLS 1.3 receive needs 5.2+)"
    };
    Check::new(
        "tls.ktls",
        Verdict::Warn,
        support.to_string(),
        Some(fix.into()),
    )
}

/// Verdicts for the given facts; touches nothing, so any host can be invented.
pub fn judge(facts: &Facts, config: &DoctorConfig) -> Vec<Check> {
    judge::judge(facts, config)
}

/// The driver a run started with `choice` gets on the judged host: io_uring where its ring
/// and buffer ring set up, epoll where asked for or where `auto` falls back; `None` when
/// the run cannot start (`--driver io_uring` without a working io_uring).
pub fn planned_driver(facts: &Facts, choice: DriverChoice) -> Option<DriverKind> {
    judge::planned(&facts.ring, choice)
}

/// The process exit status: 0 when percore can run (everything OK or WARN); when any check
/// FAILs, the status the server itself exits with when io_uring is unavailable (3). A run
/// that gets the epoll driver is not stopped by what only io_uring needs (those lines are
/// WARN then), so the status is the one `serve` with the same `--driver` would meet.
pub fn exit_code(checks: &[Check]) -> i32 {
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Error::IoUringUnavailable(String::new()).exit_code()
    } else {
        0
    }
}

/// The doctor's lines for the limits the server depends on, when they are not OK: the
/// start-up report prints these so a low limit reads the same there as in `percore doctor`.
pub(crate) fn startup_warnings(shards: usize) -> Vec<String> {
    let config = DoctorConfig {
        shards,
        ..DoctorConfig::default()
    };
    let nofile = sys::rlimit::nofile().ok().map(|l| Rlimit {
        soft: l.soft,
        hard: l.hard,
    });
    [judge::nofile(nofile, &config)]
        .into_iter()
        .filter(|c| c.verdict != Verdict::Ok)
        .map(|c| c.to_string())
        .collect()
}
