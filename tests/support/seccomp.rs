//! Test support: seccomp filters that make syscalls fail. One denies io_uring, to check
//! how the server reports an io_uring-less environment (as under a default Docker seccomp
//! profile); one refuses reuseport cBPF programs, to check the steering fallback.
//! Standalone: only `libc` and std.

#![allow(dead_code)]

use std::io;

// Classic BPF opcodes and seccomp constants from <linux/filter.h>,
// <linux/seccomp.h> and <linux/audit.h>, defined here so the module does not
// depend on which of them a given libc release exports.
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_AND: u16 = 0x50;
const BPF_JEQ: u16 = 0x10;
const BPF_K: u16 = 0x00;

const SECCOMP_MODE_FILTER: libc::c_ulong = 2;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_DATA: u32 = 0x0000_ffff;

// Offsets into `struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }`
// (an argument's low half first, on these little-endian targets).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG2_LOW: u32 = 16 + 8 * 2;

const SO_ATTACH_REUSEPORT_CBPF: u32 = 51;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e; // EM_X86_64 | 64BIT | LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7; // EM_AARCH64 | 64BIT | LE

// x32 syscalls share AUDIT_ARCH_X86_64 and set this bit in `nr`; masking it
// keeps the x32 entry points to io_uring closed too. No-op on aarch64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Same numbers on every architecture (the unified syscall table).
const NR_IO_URING_SETUP: u32 = 425;
const NR_IO_URING_ENTER: u32 = 426;
const NR_IO_URING_REGISTER: u32 = 427;

#[repr(C)]
#[derive(Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Installs, in the calling process, a seccomp filter under which
/// `io_uring_setup`, `io_uring_enter` and `io_uring_register` fail with
/// `errno`; every other syscall is allowed.
///
/// Meant for `CommandExt::pre_exec`: it allocates nothing and only calls
/// `prctl`, so it is safe between `fork` and `exec`. The filter is inherited
/// across `exec` and cannot be removed.
pub fn deny_io_uring(errno: i32) -> io::Result<()> {
    let deny = SECCOMP_RET_ERRNO | (errno as u32 & SECCOMP_RET_DATA);
    // Jump offsets are relative to the next instruction: ALLOW is index 7,
    // DENY index 8.
    let program: [SockFilter; 9] = [
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARCH),
        // Foreign-arch (compat) syscalls use other numbers; leave them alone.
        /* 1 */
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_NATIVE, 0, 5),
        /* 2 */ stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_NR),
        /* 3 */ stmt(BPF_ALU | BPF_AND | BPF_K, !X32_SYSCALL_BIT),
        /* 4 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NR_IO_URING_SETUP, 3, 0),
        /* 5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NR_IO_URING_ENTER, 2, 0),
        /* 6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NR_IO_URING_REGISTER, 1, 0),
        /* 7 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 8 */ stmt(BPF_RET | BPF_K, deny),
    ];
    install(&program)
}

/// Makes `setsockopt(_, _, SO_ATTACH_REUSEPORT_CBPF, ...)` fail with EPERM in the calling
/// thread and the threads it starts afterwards (a seccomp filter without TSYNC applies to
/// the calling thread only). Run it on a thread of its own: it cannot be removed.
pub fn refuse_reuseport_cbpf() -> io::Result<()> {
    let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    // Jump offsets count from the next instruction: 6 allows, 7 denies.
    let program = [
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARCH),
        /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_NATIVE, 0, 4),
        /* 2 */ stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_NR),
        /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_setsockopt as u32, 0, 2),
        /* 4 */ stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARG2_LOW),
        /* 5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, SO_ATTACH_REUSEPORT_CBPF, 1, 0),
        /* 6 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 7 */ stmt(BPF_RET | BPF_K, deny),
    ];
    install(&program)
}

/// Installs `program` as a seccomp filter of the calling thread (inherited by the threads it
/// starts and across `exec`; it cannot be removed). Allocates nothing and only calls
/// `prctl`, so it is safe between `fork` and `exec`.
fn install(program: &[SockFilter]) -> io::Result<()> {
    let prog = SockFprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr(),
    };
    // Without CAP_SYS_ADMIN the kernel only accepts a filter once the thread promises not
    // to gain privileges through exec (setuid binaries).
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `program`, both live for the call; the kernel copies the
    // filter before returning.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            SECCOMP_MODE_FILTER,
            &raw const prog,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
