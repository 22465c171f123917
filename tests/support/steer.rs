//! Test support for the steering tests: a line server that says which shard serves each
//! connection and can spin its shard, clients for it, and a seccomp filter that makes the
//! kernel refuse a reuseport cBPF program.

#![allow(dead_code)]

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream as StdStream},
    time::{Duration, Instant},
};

use percore::{ServerBuilder, ServerHandle, TcpStream, mesh};

/// Line protocol: `ping` → `pong <shard>`; `spin <ms>` burns CPU inline (stalling the
/// shard), then `spun <shard>`.
pub async fn spin_or_pong(mut stream: TcpStream) {
    loop {
        let line = stream
            .read_with(|input| match input.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, String::from_utf8_lossy(&input[..end]).into_owned()),
                None => (0, String::new()),
            })
            .await;
        let Ok(Some(line)) = line else { return };
        let shard = mesh::shard_id();
        let reply = if let Some(ms) = line.strip_prefix("spin ") {
            let until = Instant::now() + Duration::from_millis(ms.parse().unwrap_or(0));
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            format!("spun {shard}\n")
        } else {
            format!("pong {shard}\n")
        };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

pub fn serve(builder: ServerBuilder) -> (ServerHandle, SocketAddr) {
    let server = builder
        .serve("127.0.0.1:0".parse().unwrap(), spin_or_pong)
        .unwrap_or_else(|e| panic!("server did not start: {e}"));
    let addr = server.listen_addr().unwrap();
    (server, addr)
}

pub struct Client {
    reader: BufReader<StdStream>,
    writer: StdStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = StdStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub fn ask(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut reply = String::new();
        self.reader
            .read_line(&mut reply)
            .unwrap_or_else(|e| panic!("no reply to {line:?}: {e}"));
        reply.trim_end().to_string()
    }

    /// The shard serving this connection.
    pub fn shard(&mut self) -> usize {
        let reply = self.ask("ping");
        reply
            .strip_prefix("pong ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {reply:?}"))
    }
}

/// A connection served by `shard` (new connections until one lands there, at most 200).
pub fn client_on(addr: SocketAddr, shard: usize) -> Client {
    for _ in 0..200 {
        let mut client = Client::connect(addr).unwrap();
        if client.shard() == shard {
            return client;
        }
    }
    panic!("200 connections and none on shard {shard}");
}

/// Waits (bounded) until `server` reports shard `shard` stalled (`true`) or not (`false`).
pub fn wait_stalled(server: &ServerHandle, shard: usize, stalled: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if server.shard_loads()[shard].stalled == stalled {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Pins the calling thread to `cpu`.
pub fn pin_to(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

// Classic BPF and seccomp constants (<linux/filter.h>, <linux/seccomp.h>, <linux/audit.h>).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7;
const SO_ATTACH_REUSEPORT_CBPF: u32 = 51;
// `struct seccomp_data`: nr at 0, arch at 4, args[i] at 16 + 8 i (low half first).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG2_LOW: u32 = 16 + 8 * 2;

#[repr(C)]
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

const fn op(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Makes `setsockopt(_, _, SO_ATTACH_REUSEPORT_CBPF, ...)` fail with EPERM in the calling
/// thread and the threads it starts afterwards (a seccomp filter without TSYNC applies to
/// the calling thread only). Run it on a thread of its own: it cannot be removed.
pub fn refuse_reuseport_cbpf() -> io::Result<()> {
    let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    // Jump offsets count from the next instruction: 6 allows, 7 denies.
    let program = [
        /* 0 */ op(BPF_LD_W_ABS, OFFSET_ARCH, 0, 0),
        /* 1 */ op(BPF_JMP_JEQ_K, AUDIT_ARCH_NATIVE, 0, 4),
        /* 2 */ op(BPF_LD_W_ABS, OFFSET_NR, 0, 0),
        /* 3 */ op(BPF_JMP_JEQ_K, libc::SYS_setsockopt as u32, 0, 2),
        /* 4 */ op(BPF_LD_W_ABS, OFFSET_ARG2_LOW, 0, 0),
        /* 5 */ op(BPF_JMP_JEQ_K, SO_ATTACH_REUSEPORT_CBPF, 1, 0),
        /* 6 */ op(BPF_RET_K, SECCOMP_RET_ALLOW, 0, 0),
        /* 7 */ op(BPF_RET_K, deny, 0, 0),
    ];
    let prog = SockFprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `program`; both live through the call and the kernel copies
    // the filter before returning.
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
