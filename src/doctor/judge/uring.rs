//! The io_uring lines: setup, then one line per feature percore uses.

use super::split_message;
use crate::{
    doctor::{
        Check, Verdict,
        facts::{OpcodePresence, RingFacts, RingProbe},
    },
    driver::{DriverChoice, DriverKind},
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

/// Whether the io_uring driver starts on this host, as `Ring::new` decides it: a ring can
/// be set up with the server's own flags and its provided-buffer ring registers. `Err` is
/// the line the server prints when it does not ("cause; fix").
pub(crate) fn usable(ring: &RingFacts) -> Result<(), String> {
    match ring {
        RingFacts::SetupFailed { message, .. } => Err(message.clone()),
        RingFacts::Works(probe) => {
            if let Some(message) = &probe.build_error {
                return Err(message.clone());
            }
            match probe.buf_ring {
                Ok(()) => Ok(()),
                Err(libc::ENOMEM) => Err(
                    "cannot register the provided-buffer ring (ENOMEM); raise the locked-memory limit (`ulimit -l`)".into(),
                ),
                Err(errno) => Err(format!(
                    "cannot register the provided-buffer ring ({}); percore needs Linux ≥ 6.0 (IORING_REGISTER_PBUF_RING): upgrade the kernel",
                    std::io::Error::from_raw_os_error(errno)
                )),
            }
        }
    }
}

/// The driver a run with `choice` gets here; `None` when it cannot start (`--driver
/// io_uring` where io_uring does not work: exit 3, as the server).
pub(crate) fn planned(ring: &RingFacts, choice: DriverChoice) -> Option<DriverKind> {
    match (choice, usable(ring)) {
        (DriverChoice::Epoll, _) | (DriverChoice::Auto, Err(_)) => Some(DriverKind::Epoll),
        (DriverChoice::Auto | DriverChoice::IoUring, Ok(())) => Some(DriverKind::IoUring),
        (DriverChoice::IoUring, Err(_)) => None,
    }
}

/// Which driver a run gets with `choice` (`--driver`, `PERCORE_DRIVER`; auto by default):
/// `io_uring`, or `epoll` with why and the fix that brings io_uring back.
pub(super) fn driver(ring: &RingFacts, choice: DriverChoice) -> Check {
    let name = "driver";
    let usable = usable(ring);
    match (choice, usable) {
        (DriverChoice::Auto, Ok(())) => Check::ok(
            name,
            "io_uring (--driver auto: io_uring works here; --driver epoll is there for comparison)",
        ),
        (DriverChoice::IoUring, Ok(())) => Check::ok(name, "io_uring (--driver io_uring)"),
        (DriverChoice::Auto, Err(message)) => {
            let (cause, fix) = split_message(&message);
            Check::warn(
                name,
                format!(
                    "epoll (--driver auto falls back: {cause}; --driver io_uring would exit 3)"
                ),
                fix.map(|f| format!("to run on io_uring: {f}")),
            )
        }
        (DriverChoice::Epoll, Ok(())) => Check::ok(
            name,
            "epoll (--driver epoll; io_uring works here too: --driver auto would take it)",
        ),
        (DriverChoice::Epoll, Err(message)) => {
            let (cause, _) = split_message(&message);
            Check::ok(
                name,
                format!("epoll (--driver epoll; io_uring would not start here: {cause})"),
            )
        }
        (DriverChoice::IoUring, Err(message)) => {
            let (cause, fix) = split_message(&message);
            Check::fail(
                name,
                format!(
                    "none: --driver io_uring cannot start here ({cause}); --driver auto would run on epoll"
                ),
                fix.unwrap_or_else(|| "run with --driver auto or --driver epoll".into()),
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
