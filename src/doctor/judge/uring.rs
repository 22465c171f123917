//! The io_uring lines: setup, then one line per feature percore uses.

use super::split_message;
use crate::{
    doctor::{
        Check, Verdict,
        facts::{OpcodePresence, RingFacts, RingProbe},
    },
    sys::kernel::KernelVersion,
};

pub(super) fn setup(ring: &RingFacts) -> Check {
    let name = "io_uring.setup";
    match ring {
        RingFacts::SetupFailed { message, .. } => {
            let (detail, fix) = split_message(message);
            Check::new(name, Verdict::Fail, detail, fix)
        }
        RingFacts::Works(probe) => {
            let flags: Vec<&str> = [
                (probe.single_issuer, "SINGLE_ISSUER"),
                (probe.defer_taskrun, "DEFER_TASKRUN"),
            ]
            .into_iter()
            .filter_map(|(on, flag)| on.then_some(flag))
            .collect();
            let flags = if flags.is_empty() {
                "plain flags".into()
            } else {
                flags.join(", ")
            };
            Check::ok(name, format!("io_uring_setup works ({flags})"))
        }
    }
}

/// Which driver a run gets with `--driver auto` (the default): io_uring where its setup
/// works, else epoll, which serves the same services without io_uring.
pub(super) fn driver(ring: &RingFacts) -> Check {
    let name = "driver";
    match ring {
        RingFacts::Works(_) => Check::ok(
            name,
            "a run gets the io_uring driver (--driver auto); --driver epoll is there for comparison",
        ),
        RingFacts::SetupFailed { message, .. } => {
            let (_, fix) = split_message(message);
            Check::warn(
                name,
                "a run gets the epoll driver (--driver auto falls back; --driver io_uring exits 3)",
                fix,
            )
        }
    }
}

const FEATURES: [&str; 8] = [
    "io_uring.single_issuer",
    "io_uring.defer_taskrun",
    "io_uring.multishot_accept",
    "io_uring.multishot_recv",
    "io_uring.buf_ring",
    "io_uring.msg_ring",
    "io_uring.send_zc",
    "io_uring.opcodes",
];

pub(super) fn features(ring: &RingFacts, kernel: Option<&KernelVersion>) -> Vec<Check> {
    let RingFacts::Works(probe) = ring else {
        return FEATURES
            .iter()
            .map(|&name| {
                Check::fail(
                    name,
                    "not probed: io_uring_setup failed",
                    "see io_uring.setup",
                )
            })
            .collect();
    };
    let present = |op: &str| probe.opcodes.iter().any(|o| o.name == op && o.present);
    let since = |major, minor| kernel.is_none_or(|k| k.at_least(major, minor));
    let upgrade = |release: &str| format!("upgrade to Linux ≥ {release}");
    vec![
        flag(
            FEATURES[0],
            probe.single_issuer,
            "IORING_SETUP_SINGLE_ISSUER",
            "6.0",
            "the ring runs without single-issuer optimisations",
        ),
        flag(
            FEATURES[1],
            probe.defer_taskrun,
            "IORING_SETUP_DEFER_TASKRUN",
            "6.1",
            "completions run as regular task work",
        ),
        if present("IORING_OP_ACCEPT") && since(5, 19) {
            Check::ok(
                FEATURES[2],
                "IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT (Linux ≥ 5.19)",
            )
        } else {
            Check::fail(
                FEATURES[2],
                "multishot accept needs Linux ≥ 5.19",
                upgrade("6.1"),
            )
        },
        if present("IORING_OP_RECV") && since(6, 0) {
            Check::ok(
                FEATURES[3],
                "IORING_OP_RECV with IORING_RECV_MULTISHOT (Linux ≥ 6.0)",
            )
        } else {
            Check::fail(
                FEATURES[3],
                "multishot receive needs Linux ≥ 6.0",
                upgrade("6.1"),
            )
        },
        buf_ring(FEATURES[4], probe),
        flag(
            FEATURES[5],
            present("IORING_OP_MSG_RING"),
            "IORING_OP_MSG_RING",
            "5.18",
            "shards wake each other through eventfd",
        ),
        flag(
            FEATURES[6],
            present("IORING_OP_SEND_ZC"),
            "IORING_OP_SEND_ZC",
            "6.0",
            "large sends are copied",
        ),
        opcodes(FEATURES[7], probe),
    ]
}

/// An optional feature: OK when present, else WARN with what percore does instead.
fn flag(name: &'static str, on: bool, what: &str, since: &str, instead: &str) -> Check {
    if on {
        Check::ok(name, format!("{what} available"))
    } else {
        Check::warn(
            name,
            format!("{what} not available (Linux ≥ {since}): {instead}"),
            Some(format!("upgrade to Linux ≥ {since}")),
        )
    }
}

fn buf_ring(name: &'static str, probe: &RingProbe) -> Check {
    match probe.buf_ring {
        Ok(()) => Check::ok(name, "IORING_REGISTER_PBUF_RING works"),
        Err(libc::ENOMEM) => Check::fail(
            name,
            "cannot register a provided-buffer ring (ENOMEM)",
            "raise the locked-memory limit (`ulimit -l`)",
        ),
        Err(errno) => Check::fail(
            name,
            format!(
                "cannot register a provided-buffer ring ({}); percore needs Linux ≥ 6.0",
                std::io::Error::from_raw_os_error(errno)
            ),
            "upgrade to Linux ≥ 6.1",
        ),
    }
}

fn opcodes(name: &'static str, probe: &RingProbe) -> Check {
    if let Some(message) = &probe.build_error {
        let (detail, fix) = split_message(message);
        return Check::new(name, Verdict::Fail, detail, fix);
    }
    let missing: Vec<&OpcodePresence> = probe
        .opcodes
        .iter()
        .filter(|o| o.required && !o.present)
        .collect();
    match missing.first() {
        Some(op) => Check::fail(
            name,
            format!(
                "this kernel's io_uring lacks {} (Linux ≥ {})",
                op.name, op.since
            ),
            "percore needs Linux ≥ 6.0: upgrade the kernel",
        ),
        None => Check::ok(
            name,
            format!("all {} required opcodes percore submits are present", {
                probe.opcodes.iter().filter(|o| o.required).count()
            }),
        ),
    }
}
