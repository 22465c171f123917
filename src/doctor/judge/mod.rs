//! Facts in, verdicts out: a pure function, so every verdict can be tested on an invented host.
//!
//! The io_uring lines reuse the server's own start-up messages (carried in
//! [`RingFacts`](super::RingFacts)), so what the doctor says about a failure is what
//! `percore echo` prints when it hits it.

mod cpus;
mod limits;
mod uring;

pub(super) use self::limits::nofile;
use super::{Check, DoctorConfig, Verdict, facts::Facts};
use crate::driver::DriverKind;
use crate::sys::kernel::KernelVersion;

pub(super) fn judge(facts: &Facts, config: &DoctorConfig) -> Vec<Check> {
    let kernel = facts
        .kernel_release
        .as_deref()
        .and_then(KernelVersion::parse);
    let mut checks = vec![
        kernel_version(kernel.as_ref()),
        io_uring_disabled(facts),
        io_uring_group(facts),
        container(facts),
        uring::setup(&facts.ring),
        uring::driver(&facts.ring, config.driver),
    ];
    checks.extend(uring::features(&facts.ring, kernel.as_ref()));
    checks.push(limits::memlock(facts.memlock, kernel.as_ref(), config));
    checks.push(limits::nofile(facts.nofile, config));
    checks.extend(limits::sysctls(facts, config));
    checks.extend(cpus::cpus(facts, config));
    if uring::planned(&facts.ring, config.driver) == Some(DriverKind::Epoll) {
        // What only the io_uring driver needs cannot stop a run on epoll: say it, keep the
        // fix (it brings io_uring back), and exit 0 as the server would start.
        for check in checks.iter_mut().filter(|c| io_uring_only(c.name)) {
            if check.verdict == Verdict::Fail {
                check.verdict = Verdict::Warn;
                check
                    .detail
                    .push_str(" (only the io_uring driver needs this; this run gets epoll)");
            }
        }
    }
    checks
}

pub(super) use self::uring::planned;

/// Checks about io_uring alone: the epoll driver needs none of them.
fn io_uring_only(name: &str) -> bool {
    name.starts_with("io_uring.")
        || matches!(
            name,
            "kernel.version"
                | "kernel.io_uring_disabled"
                | "kernel.io_uring_group"
                | "rlimit.memlock"
        )
}

fn kernel_version(kernel: Option<&KernelVersion>) -> Check {
    let name = "kernel.version";
    match kernel {
        None => Check::warn(name, "cannot read the kernel release (uname)", None),
        Some(k) if !k.at_least(6, 0) => Check::fail(
            name,
            format!("Linux {k}: percore needs ≥ 6.0 (multishot receive, provided-buffer rings)"),
            "upgrade to Linux ≥ 6.1 (6.1 adds DEFER_TASKRUN)",
        ),
        Some(k) if !k.at_least(6, 1) => Check::warn(
            name,
            format!("Linux {k}: runs, without DEFER_TASKRUN (Linux ≥ 6.1)"),
            Some("upgrade to Linux ≥ 6.1".into()),
        ),
        Some(k) => Check::ok(
            name,
            format!("Linux {k} (≥ 6.1: every feature percore uses)"),
        ),
    }
}

/// Whether `io_uring_disabled=1` lets this process through: CAP_SYS_ADMIN or group member.
fn group_admits(facts: &Facts) -> bool {
    facts.cap_sys_admin
        || facts
            .io_uring_group
            .and_then(|g| u32::try_from(g).ok())
            .is_some_and(|g| facts.groups.contains(&g))
}

const ENABLE_FIX: &str =
    "`sysctl -w kernel.io_uring_disabled=0` as root (persist it in /etc/sysctl.d/)";

fn io_uring_disabled(facts: &Facts) -> Check {
    let name = "kernel.io_uring_disabled";
    match facts.io_uring_disabled {
        None => Check::ok(
            name,
            "absent (Linux < 6.6): io_uring is not restricted by sysctl",
        ),
        Some(0) => Check::ok(name, "0: io_uring is allowed for every process"),
        Some(1) if group_admits(facts) => Check::warn(
            name,
            "1: io_uring only for CAP_SYS_ADMIN and kernel.io_uring_group; this process qualifies",
            Some(format!("for other users: {ENABLE_FIX}")),
        ),
        Some(1) => Check::fail(
            name,
            "1: io_uring only for CAP_SYS_ADMIN and kernel.io_uring_group; this process is neither",
            format!("{ENABLE_FIX}, or see kernel.io_uring_group"),
        ),
        Some(2) => Check::fail(
            name,
            "2: io_uring is disabled for every process",
            ENABLE_FIX,
        ),
        Some(n) => Check::fail(
            name,
            format!("{n}: unknown value, io_uring likely off"),
            ENABLE_FIX,
        ),
    }
}

fn io_uring_group(facts: &Facts) -> Check {
    let name = "kernel.io_uring_group";
    let Some(group) = facts.io_uring_group else {
        return Check::ok(name, "absent (Linux < 6.6)");
    };
    if facts.io_uring_disabled != Some(1) {
        let disabled = facts
            .io_uring_disabled
            .map_or_else(|| "absent".to_string(), |d| d.to_string());
        return Check::ok(
            name,
            format!("{group}: not consulted while kernel.io_uring_disabled is {disabled}"),
        );
    }
    if group_admits(facts) {
        let why = if facts.cap_sys_admin {
            "has CAP_SYS_ADMIN"
        } else {
            "is a member"
        };
        return Check::ok(name, format!("{group}: this process {why}"));
    }
    if group < 0 {
        Check::fail(
            name,
            "-1: no group may use io_uring while kernel.io_uring_disabled=1",
            "`sysctl -w kernel.io_uring_group=GID` with a group of the user running percore",
        )
    } else {
        Check::fail(
            name,
            format!(
                "{group}: this process is not a member (groups {:?})",
                facts.groups
            ),
            format!(
                "add the user running percore to group {group} (`usermod -aG`), then log in again"
            ),
        )
    }
}

fn container(facts: &Facts) -> Check {
    let seccomp = match facts.seccomp_mode {
        Some(0) => "seccomp: none",
        Some(1) => "seccomp: strict",
        Some(2) => "seccomp: filter active (it may deny io_uring)",
        _ => "seccomp: unknown",
    };
    let place = if facts.in_container {
        "in a container"
    } else {
        "not in a container"
    };
    Check::ok("host.container", format!("{place}; {seccomp}"))
}

/// Splits a start-up message "cause; fix" into the doctor's detail and fix.
pub(super) fn split_message(message: &str) -> (String, Option<String>) {
    match message.split_once("; ") {
        Some((cause, fix)) => (cause.to_string(), Some(fix.to_string())),
        None => (message.to_string(), None),
    }
}
