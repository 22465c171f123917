//! Every io_uring opcode percore submits, listed once, and the probe that checks them at start.
//!
//! A missing opcode becomes one actionable line (which opcode, which kernel brings it), never a
//! panic at the first submission. Optional opcodes only switch a feature off, and the startup
//! report says so.

use io_uring::{IoUring, Probe, opcode};

/// One opcode percore uses.
#[derive(Debug)]
pub(crate) struct OpcodeUse {
    pub(crate) code: u8,
    pub(crate) name: &'static str,
    /// The kernel release that first has it, for the error message.
    pub(crate) since: &'static str,
    /// Required opcodes stop the start when missing; optional ones only disable a feature.
    pub(crate) required: bool,
}

pub(crate) const OPCODES: &[OpcodeUse] = &[
    OpcodeUse {
        code: opcode::Accept::CODE,
        name: "IORING_OP_ACCEPT",
        since: "5.5",
        required: true,
    },
    OpcodeUse {
        code: opcode::RecvMulti::CODE,
        name: "IORING_OP_RECV",
        since: "5.6",
        required: true,
    },
    OpcodeUse {
        code: opcode::Send::CODE,
        name: "IORING_OP_SEND",
        since: "5.6",
        required: true,
    },
    OpcodeUse {
        code: opcode::Connect::CODE,
        name: "IORING_OP_CONNECT",
        since: "5.5",
        required: true,
    },
    OpcodeUse {
        code: opcode::AsyncCancel::CODE,
        name: "IORING_OP_ASYNC_CANCEL",
        since: "5.5",
        required: true,
    },
    OpcodeUse {
        code: opcode::Read::CODE,
        name: "IORING_OP_READ",
        since: "5.6",
        required: true,
    },
    OpcodeUse {
        code: opcode::Close::CODE,
        name: "IORING_OP_CLOSE",
        since: "5.6",
        required: true,
    },
    OpcodeUse {
        code: opcode::MsgRingData::CODE,
        name: "IORING_OP_MSG_RING",
        since: "5.18",
        required: false,
    },
    OpcodeUse {
        code: opcode::SendZc::CODE,
        name: "IORING_OP_SEND_ZC",
        since: "6.0",
        required: false,
    },
];

/// The opcodes this kernel supports, as far as percore cares.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpcodeSupport {
    pub(crate) missing_required: Vec<&'static OpcodeUse>,
    pub(crate) msg_ring: bool,
    pub(crate) send_zc: bool,
}

pub(crate) fn probe_opcodes(ring: &IoUring) -> std::io::Result<OpcodeSupport> {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    Ok(support_from(|code| probe.is_supported(code)))
}

/// Pure part of the probe, so tests can feed it an invented kernel.
pub(crate) fn support_from(is_supported: impl Fn(u8) -> bool) -> OpcodeSupport {
    let mut support = OpcodeSupport::default();
    for op in OPCODES {
        let present = is_supported(op.code);
        if op.required && !present {
            support.missing_required.push(op);
        }
        if op.code == opcode::MsgRingData::CODE {
            support.msg_ring = present;
        }
        if op.code == opcode::SendZc::CODE {
            support.send_zc = present;
        }
    }
    support
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_recv_reports_it_missing() {
        let support = support_from(|code| code != opcode::RecvMulti::CODE);
        let names: Vec<_> = support.missing_required.iter().map(|op| op.name).collect();
        assert_eq!(names, ["IORING_OP_RECV"]);
        assert!(support.msg_ring);
    }

    #[test]
    fn optional_opcodes_only_switch_features_off() {
        let support = support_from(|code| code != opcode::MsgRingData::CODE);
        assert!(support.missing_required.is_empty());
        assert!(!support.msg_ring);
        assert!(support.send_zc);
    }
}
