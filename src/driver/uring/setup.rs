//! Ring setup: the best flags this kernel accepts, falling back one feature at a time and
//! saying so, and the translation of setup failures into one actionable line.

use std::io;

use io_uring::IoUring;

use super::probe::{OpcodeSupport, probe_opcodes};
use crate::{error::Error, sys};

/// How a shard's ring is built. Defaults suit a server with thousands of connections a shard.
#[derive(Clone, Debug)]
pub struct RingConfig {
    /// Submission queue entries (power of two; the kernel rounds up). Default 1024.
    pub sq_entries: u32,
    /// Completion queue entries. Default 4 × `sq_entries`. A small CQ is legal: overflowing
    /// completions are kept by the kernel (`IORING_FEAT_NODROP`) and counted.
    pub cq_entries: u32,
    /// Provided receive buffers per shard (power of two). Default 1024.
    pub recv_buffers: u16,
    /// Size of each receive buffer in bytes. Default 4096.
    pub recv_buffer_size: u32,
    /// Allow `IORING_SETUP_DEFER_TASKRUN`. Default true.
    pub defer_taskrun: bool,
    /// Cap on io-wq workers per ring, `[bounded, unbounded]`; least privilege and bounded
    /// threads (network I/O rarely needs io-wq at all). Default `[2, 2]`.
    pub iowq_max_workers: [u32; 2],
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            sq_entries: 1024,
            cq_entries: 4096,
            recv_buffers: 1024,
            recv_buffer_size: 4096,
            defer_taskrun: true,
            iowq_max_workers: [2, 2],
        }
    }
}

/// What the ring ended up using, for the startup report and metrics.
#[derive(Clone, Debug, Default)]
pub struct RingFeatures {
    pub single_issuer: bool,
    pub defer_taskrun: bool,
    pub coop_taskrun: bool,
    pub taskrun_flag: bool,
    pub msg_ring: bool,
    pub send_zc: bool,
    pub nodrop: bool,
    pub skip_cqe_on_success: bool,
    /// One line per feature the kernel refused, with what is used instead.
    pub fallbacks: Vec<String>,
}

#[derive(Clone, Copy)]
struct Flags {
    single_issuer: bool,
    defer_taskrun: bool,
    coop_taskrun: bool,
    taskrun_flag: bool,
}

/// Flag sets from best to plainest; each later one drops what an older kernel may refuse.
const ATTEMPTS: [Flags; 4] = [
    Flags {
        single_issuer: true,
        defer_taskrun: true,
        coop_taskrun: true,
        taskrun_flag: true,
    },
    Flags {
        single_issuer: true,
        defer_taskrun: false,
        coop_taskrun: true,
        taskrun_flag: true,
    },
    Flags {
        single_issuer: false,
        defer_taskrun: false,
        coop_taskrun: true,
        taskrun_flag: true,
    },
    Flags {
        single_issuer: false,
        defer_taskrun: false,
        coop_taskrun: false,
        taskrun_flag: false,
    },
];

pub(crate) fn build_ring(
    config: &RingConfig,
) -> Result<(IoUring, RingFeatures, OpcodeSupport), Error> {
    let mut features = RingFeatures::default();
    let mut last_err = None;
    for flags in ATTEMPTS
        .iter()
        .filter(|f| config.defer_taskrun || !f.defer_taskrun)
    {
        match try_build(config, *flags) {
            Ok(ring) => {
                features.single_issuer = flags.single_issuer;
                features.defer_taskrun = flags.defer_taskrun;
                features.coop_taskrun = flags.coop_taskrun;
                features.taskrun_flag = flags.taskrun_flag;
                features.nodrop = ring.params().is_feature_nodrop();
                features.skip_cqe_on_success = ring.params().is_feature_skip_cqe_on_success();
                if !ring.params().is_feature_ext_arg() {
                    return Err(Error::KernelTooOld(
                        "io_uring lacks IORING_FEAT_EXT_ARG (timed waits, Linux 5.11); percore needs Linux ≥ 6.0: upgrade the kernel".into(),
                    ));
                }
                let support =
                    probe_opcodes(&ring).map_err(|e| Error::io("probing io_uring opcodes", e))?;
                if let Some(op) = support.missing_required.first() {
                    return Err(Error::KernelTooOld(format!(
                        "this kernel's io_uring lacks {} (Linux ≥ {}); percore needs Linux ≥ 6.0: upgrade the kernel",
                        op.name, op.since
                    )));
                }
                features.msg_ring = support.msg_ring;
                features.send_zc = support.send_zc;
                if !support.msg_ring {
                    features.fallbacks.push(
                        "IORING_OP_MSG_RING missing: shards wake each other through eventfd".into(),
                    );
                }
                let mut workers = config.iowq_max_workers;
                if let Err(e) = ring.submitter().register_iowq_max_workers(&mut workers) {
                    features.fallbacks.push(format!(
                        "cannot cap io-wq workers ({e}): kernel default applies"
                    ));
                }
                return Ok((ring, features, support));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                features.fallbacks.push(fallback_line(*flags));
                last_err = Some(e);
            }
            Err(e) => return Err(unavailable(&e)),
        }
    }
    Err(unavailable(&last_err.unwrap_or_else(|| {
        io::Error::from_raw_os_error(libc::EINVAL)
    })))
}

fn try_build(config: &RingConfig, flags: Flags) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    builder
        .setup_cqsize(config.cq_entries.max(config.sq_entries))
        .setup_clamp()
        .setup_submit_all();
    if flags.single_issuer {
        builder.setup_single_issuer();
    }
    if flags.defer_taskrun {
        builder.setup_defer_taskrun();
    }
    if flags.coop_taskrun {
        builder.setup_coop_taskrun();
    }
    if flags.taskrun_flag {
        builder.setup_taskrun_flag();
    }
    builder.build(config.sq_entries)
}

fn fallback_line(refused: Flags) -> String {
    if refused.defer_taskrun {
        "IORING_SETUP_DEFER_TASKRUN refused (Linux ≥ 6.1): completions run as regular task work"
            .into()
    } else if refused.single_issuer {
        "IORING_SETUP_SINGLE_ISSUER refused (Linux ≥ 6.0): ring runs without single-issuer optimisations".into()
    } else if refused.coop_taskrun {
        "IORING_SETUP_COOP_TASKRUN refused (Linux ≥ 5.19): task work interrupts the shard".into()
    } else {
        "io_uring setup refused plain flags".into()
    }
}

/// Turns a failed `io_uring_setup` into the one line a user needs.
pub(crate) fn unavailable(err: &io::Error) -> Error {
    let disabled = sys::kernel::io_uring_disabled_sysctl();
    let msg = match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) if disabled.is_some_and(|v| v > 0) => format!(
            "io_uring is disabled by the sysctl kernel.io_uring_disabled={} (io_uring_setup: {}); run `sysctl -w kernel.io_uring_disabled=0` as root (or add this user to kernel.io_uring_group when it is 1)",
            disabled.unwrap_or_default(),
            errno_name(err)
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring is blocked (io_uring_setup: {}), most likely by a seccomp profile such as Docker's default; run the container with `--security-opt seccomp=linux-setup/docker-seccomp.json`{}",
            errno_name(err),
            if sys::kernel::in_container() { " (this process runs in a container)" } else { "" }
        ),
        Some(libc::ENOSYS) => "io_uring is not available (io_uring_setup: ENOSYS): the kernel was built without CONFIG_IO_URING or a seccomp filter hides the syscall; percore needs Linux ≥ 6.0 with io_uring enabled".into(),
        Some(libc::ENOMEM) => format!(
            "io_uring ring memory could not be locked (io_uring_setup: ENOMEM); raise the locked-memory limit (`ulimit -l`, currently {}) or use fewer ring entries",
            sys::rlimit::memlock().map(|l| format!("{} bytes", l.soft)).unwrap_or_else(|_| "unknown".into())
        ),
        Some(libc::EMFILE) | Some(libc::ENFILE) => "no file descriptor left for the io_uring instance (EMFILE); raise `ulimit -n`".into(),
        _ => format!("io_uring_setup failed: {err}"),
    };
    Error::IoUringUnavailable(msg)
}

fn errno_name(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ENOSYS) => "ENOSYS",
        _ => "error",
    }
}
