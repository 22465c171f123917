//! Connection steering: which shard serves a new connection.
//!
//! - [`Steering::ReusePort`]: one listener per shard in a SO_REUSEPORT group; the kernel
//!   picks the listener by a hash of the 4-tuple.
//! - [`Steering::Cpu`]: the same group, plus a classic-BPF selector
//!   (`SO_ATTACH_REUSEPORT_CBPF`) that returns the listener of the shard pinned to the CPU
//!   that processed the connection's SYN, for cache locality. Where the kernel refuses the
//!   program the server runs as `ReusePort` and says so in the startup report.
//! - [`Steering::Balanced`]: every shard still accepts on its own reuseport listener (so
//!   there is no single acceptor to saturate), then places each accepted socket on the
//!   least-loaded shard: fewest connections (open or on their way), plus one per millisecond
//!   of the shard's current loop iteration. A socket for another shard crosses as its fd
//!   number in a mesh message: the shards are threads of one process and share one fd table,
//!   so nothing else has to move (MSG_RING fd passing, `IORING_MSG_SEND_FD`, only moves
//!   *registered* files, which percore does not use for sockets).
//!
//! In every mode a **stalled** shard (its current loop iteration past the takeover
//! threshold, seen by the stall detector) is skipped as a target, and the detector itself
//! takes the connections that queue on the stalled shard's listener while the stall lasts,
//! handing each to a healthy shard (see `executor::watchdog`).
//!
//! Shared state and ordering: [`ShardLoad`] holds relaxed atomics. Their values are hints
//! for placement, never used for memory safety or to publish other data: a stale read only
//! places one connection less well. The connection count is changed by the shard that
//! chooses (at placement) and by the owning shard (at release); the stall flag and the loop
//! lag are written only by the stall detector. Nothing is written per request.

use std::{
    fmt,
    net::SocketAddr,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::sys::steer::SockFilter;

/// How new connections are spread over the shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Steering {
    /// A listener per shard, the kernel's 4-tuple hash (the default).
    #[default]
    ReusePort,
    /// Reuseport plus a cBPF program choosing the listener of the CPU that took the SYN.
    Cpu,
    /// Accepted sockets are placed on the least-loaded shard.
    Balanced,
}

impl Steering {
    pub fn name(self) -> &'static str {
        match self {
            Steering::ReusePort => "reuseport",
            Steering::Cpu => "cpu",
            Steering::Balanced => "balanced",
        }
    }
}

impl fmt::Display for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Steering {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reuseport" => Ok(Steering::ReusePort),
            "cpu" => Ok(Steering::Cpu),
            "balanced" => Ok(Steering::Balanced),
            other => Err(format!(
                "unknown steering mode {other:?} (reuseport, cpu or balanced)"
            )),
        }
    }
}

/// Loop lag, in µs, that weighs as much as one connection when placing.
const LAG_US_PER_CONNECTION: u64 = 1000;

/// The longest the stall detector's `accept` may block on a listener another thread
/// emptied between its poll and its accept.
const ACCEPT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);

/// One shard's load as the other shards and the stall detector see it.
#[derive(Debug, Default)]
pub(crate) struct ShardLoad {
    /// Connections placed on the shard and not yet released (queued, handed over or open).
    conns: AtomicU64,
    /// The stall detector sees the shard's current iteration past the threshold.
    stalled: AtomicBool,
    /// How long the shard's current iteration has run, µs (0 while it waits).
    lag_us: AtomicU64,
    /// Stalls that ended (a shard that stays stalled is reported while it lasts).
    stalls_ended: AtomicU64,
    /// Connections the stall detector took from this shard's listeners while it stalled.
    taken_over: AtomicU64,
}

impl ShardLoad {
    pub(crate) fn add(&self, n: u64) {
        self.conns.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: u64) {
        // Saturating: a release can never make the count wrap around.
        let _ = self
            .conns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
    }

    fn score(&self) -> u64 {
        self.conns.load(Ordering::Relaxed)
            + self.lag_us.load(Ordering::Relaxed) / LAG_US_PER_CONNECTION
    }

    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_stalled(&self, on: bool) {
        if self.stalled.swap(on, Ordering::Relaxed) && !on {
            self.stalls_ended.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_lag_us(&self, lag_us: u64) {
        self.lag_us.store(lag_us, Ordering::Relaxed);
    }

    pub(crate) fn count_taken_over(&self) {
        self.taken_over.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of one shard's steering state, readable while the shard is stalled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardLoadStats {
    pub shard: usize,
    /// Connections placed on the shard and not yet released.
    pub connections: u64,
    /// The shard is stalled now (its current loop iteration is past the threshold).
    pub stalled: bool,
    /// How long the shard's current loop iteration has run, µs (0 while it waits).
    pub lag_us: u64,
    /// Connections taken from this shard's listeners while it was stalled.
    pub taken_over: u64,
}

/// A listener every shard may know about (for stall takeover and balanced placement).
struct Registered {
    id: u64,
    shard: usize,
    addr: SocketAddr,
    /// A duplicate of the listening socket: it stays valid however the owning shard's own
    /// descriptor is closed, so the stall detector never accepts on a reused fd number.
    fd: Arc<OwnedFd>,
}

/// What every shard and the stall detector share about steering.
pub(crate) struct SteerShared {
    pub(crate) mode: Steering,
    loads: Vec<ShardLoad>,
    listeners: Mutex<(u64, Vec<Registered>)>,
    /// Held while a shard binds a listener (`TcpListener::bind`), so "does this server
    /// listen on the address yet" and the bind are one step.
    pub(crate) bind_lock: Mutex<()>,
    /// The server-wide connection cap (`ServerBuilder::max_connections`), if set.
    pub(crate) global_cap: Option<super::caps::GlobalCap>,
}

/// A stalled shard's listener and where its connections should go.
pub(crate) struct Takeover {
    pub(crate) stalled_shard: usize,
    pub(crate) addr: SocketAddr,
    pub(crate) fd: Arc<OwnedFd>,
}

impl SteerShared {
    pub(crate) fn new(mode: Steering, shards: usize) -> Self {
        SteerShared {
            mode,
            loads: (0..shards).map(|_| ShardLoad::default()).collect(),
            listeners: Mutex::new((0, Vec::new())),
            bind_lock: Mutex::new(()),
            global_cap: None,
        }
    }

    /// Caps the accepted connections of all shards together at `max` (see `caps`).
    pub(crate) fn with_global_cap(mut self, max: Option<usize>) -> Self {
        self.global_cap = max.map(|max| super::caps::GlobalCap::new(max, self.loads.len()));
        self
    }

    pub(crate) fn load(&self, shard: usize) -> Option<&ShardLoad> {
        self.loads.get(shard)
    }

    pub(crate) fn snapshot(&self) -> Vec<ShardLoadStats> {
        self.loads
            .iter()
            .enumerate()
            .map(|(shard, l)| ShardLoadStats {
                shard,
                connections: l.conns.load(Ordering::Relaxed),
                stalled: l.stalled.load(Ordering::Relaxed),
                lag_us: l.lag_us.load(Ordering::Relaxed),
                taken_over: l.taken_over.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Records a listener of `shard`; returns its registration id.
    pub(crate) fn register(&self, shard: usize, addr: SocketAddr, fd: RawFd) -> Option<u64> {
        let dup = match crate::sys::steer::dup(fd).and_then(|dup| {
            crate::sys::steer::set_accept_timeout(dup.as_raw_fd(), ACCEPT_TIMEOUT)?;
            Ok(dup)
        }) {
            Ok(dup) => dup,
            Err(e) => {
                tracing::warn!(shard, %addr, "listener not shared for stall takeover: {e}");
                return None;
            }
        };
        let mut guard = lock(&self.listeners);
        let (next_id, list) = &mut *guard;
        *next_id += 1;
        list.push(Registered {
            id: *next_id,
            shard,
            addr,
            fd: Arc::new(dup),
        });
        Some(*next_id)
    }

    pub(crate) fn unregister(&self, id: u64) {
        lock(&self.listeners).1.retain(|r| r.id != id);
    }

    /// Whether a shard of this server listens on `addr`.
    pub(crate) fn listens_on(&self, addr: SocketAddr) -> bool {
        lock(&self.listeners).1.iter().any(|r| r.addr == addr)
    }

    /// Whether `shard` has a listener on `addr` (so it can take a connection for it).
    fn listens(list: &[Registered], shard: usize, addr: SocketAddr) -> bool {
        list.iter().any(|r| r.shard == shard && r.addr == addr)
    }

    /// The least-loaded healthy shard listening on `addr`, preferring `me` on a tie (no
    /// hand-over). `None` when no shard is healthy but `me`, or `me` itself is best.
    pub(crate) fn place(&self, me: usize, addr: SocketAddr) -> Option<usize> {
        let list = lock(&self.listeners);
        let mut best = me;
        let mut best_score = if self.loads[me].is_stalled() {
            u64::MAX
        } else {
            self.loads[me].score()
        };
        for (shard, load) in self.loads.iter().enumerate() {
            if shard == me || load.is_stalled() || !Self::listens(&list.1, shard, addr) {
                continue;
            }
            let score = load.score();
            if score < best_score {
                best = shard;
                best_score = score;
            }
        }
        (best != me).then_some(best)
    }

    /// The listeners of stalled shards that a healthy shard also listens on.
    pub(crate) fn takeovers(&self, out: &mut Vec<Takeover>) {
        out.clear();
        let list = lock(&self.listeners);
        for r in &list.1 {
            if !self.loads[r.shard].is_stalled() {
                continue;
            }
            let helped = list.1.iter().any(|o| {
                o.addr == r.addr && o.shard != r.shard && !self.loads[o.shard].is_stalled()
            });
            if helped {
                out.push(Takeover {
                    stalled_shard: r.shard,
                    addr: r.addr,
                    fd: r.fd.clone(),
                });
            }
        }
    }

    /// The least-loaded healthy shard listening on `addr` other than `not`.
    pub(crate) fn healthy_target(&self, addr: SocketAddr, not: usize) -> Option<usize> {
        let list = lock(&self.listeners);
        self.loads
            .iter()
            .enumerate()
            .filter(|(s, l)| *s != not && !l.is_stalled() && Self::listens(&list.1, *s, addr))
            .min_by_key(|(_, l)| l.score())
            .map(|(s, _)| s)
    }
}

impl Takeover {
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only pushes and retains happen under this lock; a panic cannot leave it half-done.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

// Classic BPF opcodes (<linux/filter.h>): class | size/op | source.
/// `BPF_LD | BPF_W | BPF_ABS`
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
/// `BPF_ALU | BPF_MOD | BPF_K`
const BPF_ALU_MOD_K: u16 = 0x04 | 0x90;
/// `BPF_RET | BPF_K`
const BPF_RET_K: u16 = 0x06;
/// `BPF_RET | BPF_A`
const BPF_RET_A: u16 = 0x06 | 0x10;
/// `SKF_AD_OFF + SKF_AD_CPU`: loads the id of the CPU running the program.
const SKF_AD_CPU: u32 = (-0x1000_i32 + 36) as u32;

/// The `cpu` selector for a group whose socket `i` belongs to shard `i`: the socket of the
/// shard pinned to the current CPU, and for a CPU no shard is pinned to, `cpu % shards`.
pub(crate) fn cpu_program(shard_cpus: &[Option<usize>]) -> Vec<SockFilter> {
    let stmt = |code, k| SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let mut program = vec![stmt(BPF_LD_W_ABS, SKF_AD_CPU)];
    for (index, cpu) in shard_cpus.iter().enumerate() {
        let Some(cpu) = cpu else { continue };
        // if A == cpu { return index } (else skip the return)
        program.push(SockFilter {
            code: BPF_JMP_JEQ_K,
            jt: 0,
            jf: 1,
            k: *cpu as u32,
        });
        program.push(stmt(BPF_RET_K, index as u32));
    }
    program.push(stmt(BPF_ALU_MOD_K, shard_cpus.len().max(1) as u32));
    program.push(stmt(BPF_RET_A, 0));
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the subset of cBPF `cpu_program` emits, as the kernel would.
    fn run(program: &[SockFilter], cpu: u32) -> u32 {
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            let i = program[pc];
            match i.code {
                BPF_LD_W_ABS => {
                    assert_eq!(i.k, SKF_AD_CPU);
                    a = cpu;
                }
                BPF_JMP_JEQ_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                BPF_ALU_MOD_K => a %= i.k,
                BPF_RET_K => return i.k,
                BPF_RET_A => return a,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn the_cpu_program_returns_the_socket_of_the_shard_on_that_cpu() {
        let program = cpu_program(&[Some(3), Some(1)]);
        assert_eq!(run(&program, 3), 0);
        assert_eq!(run(&program, 1), 1);
        assert_eq!(run(&program, 4), 0, "unmapped CPU: cpu % shards");
        assert_eq!(run(&program, 5), 1);
        let unpinned = cpu_program(&[None, None, None]);
        assert_eq!(run(&unpinned, 7), 1);
    }

    #[test]
    fn placement_prefers_self_on_a_tie_and_skips_stalled_shards() {
        let steer = SteerShared::new(Steering::Balanced, 3);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        {
            let mut list = lock(&steer.listeners);
            for shard in 0..3 {
                let fd = crate::sys::steer::dup(0).unwrap();
                list.1.push(Registered {
                    id: shard as u64,
                    shard,
                    addr,
                    fd: Arc::new(fd),
                });
            }
        }
        assert_eq!(steer.place(0, addr), None, "all equal: keep it");
        steer.loads[0].add(2);
        steer.loads[1].add(1);
        assert_eq!(steer.place(0, addr), Some(2));
        steer.loads[2].set_stalled(true);
        assert_eq!(steer.place(0, addr), Some(1), "shard 2 is stalled");
        steer.loads[1].set_lag_us(5_000);
        assert_eq!(steer.place(0, addr), None, "shard 1's loop lags 5 ms");
        steer.loads[0].set_stalled(true);
        assert_eq!(steer.place(0, addr), Some(1), "a stalled shard hands off");
        let other: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(steer.place(0, other), None, "nobody else listens there");
        steer.loads[0].sub(10);
        assert_eq!(steer.snapshot()[0].connections, 0, "saturates at zero");
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in [Steering::ReusePort, Steering::Cpu, Steering::Balanced] {
            assert_eq!(mode.to_string().parse::<Steering>(), Ok(mode));
        }
        assert!("round-robin".parse::<Steering>().is_err());
    }
}
