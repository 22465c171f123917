//! # percore
//!
//! An io_uring, thread-per-core server kernel for Linux. A server is a set of **shards**:
//! each owns one CPU core, one io_uring ring, its own tasks, connections, timers and memory,
//! and talks to the others only through the **mesh** (bounded message queues). There is no
//! global event loop to stall: a CPU-heavy request stalls at most its own shard, and
//! [`spawn_blocking`] moves such work off the shard entirely.
//!
//! ```no_run
//! use percore::{Server, TcpStream};
//!
//! async fn echo(mut stream: TcpStream) {
//!     while let Ok(Some(())) = stream
//!         .read_with(|data| (data.len(), ()))
//!         .await
//!     {}
//! }
//!
//! let addr = "127.0.0.1:7000".parse().unwrap();
//! let server = Server::builder().shards(2).serve(addr, echo).expect("start");
//! server.stop();
//! server.join().expect("clean stop");
//! ```
//!
//! ## The shard loop
//!
//! Like Node.js documents the phases of its event loop, here are a shard's; this list is
//! the one description of them (`task::run_loop` runs them, `server::shard_loop` plugs in
//! each layer's part). Each iteration:
//!
//! 1. **timers**: expired timers fire (a hierarchical wheel, 1 ms resolution, no tick);
//! 2. **mesh**: tasks woken from other threads are queued, and the shard's reply lane plus
//!    up to 256 inbox messages run;
//! 3. **run**: ready tasks are polled (at most 1024 polls, each with an I/O budget of 64,
//!    so one busy connection cannot starve the rest); tasks woken meanwhile wait for the next
//!    iteration. Then the end-of-run work runs (what the tasks gathered to send as one mesh
//!    message), unconsumed input is copied out of the ring's buffers, receives starved of
//!    buffers are re-armed, one send per connection with output is queued, and connections
//!    whose handle was dropped with no operation left in flight are released (the close
//!    phase's work, done here too: no completion may come to wake the loop for them);
//! 4. **submit + wait**: one `io_uring_enter` submits every queued SQE and waits for a
//!    completion or the next timer deadline; it does not wait while tasks are ready. It
//!    spins only in one bounded case: after iterations that ran or sent mesh messages, a
//!    shard with nothing else to do polls up to 50 µs for more work before it sleeps (the
//!    *idle poll*, counted in `LoopStats::idle_polls`), since waking a sleeping shard costs
//!    tens of µs and its peer usually answers sooner;
//! 5. **complete**: every CQE is reaped into a local queue before any is dispatched;
//!    multishot operations that ended without `IORING_CQE_F_MORE` are re-armed;
//! 6. **close**: connections whose last operation completed release their fds and buffers.
//!
//! The loop reads the clock twice per iteration: as it wakes (that reading drives the
//! timers phase and is the iteration's [`time::now`]) and before it waits (busy time and
//! the wait's timeout). A graceful stop is handled between the mesh and run phases.
//!
//! ## Layers
//!
//! The kernel is built in layers; a module only ever imports from its own layer or the
//! layers below it (`tests/layers.rs` checks every `crate::` path in `src/`):
//!
//! ```text
//! server      builder, placement, shard threads and their loop, drain, signals, watchdog
//! metrics     counters and their exposition            doctor   host checks (→ driver, sys)
//! net   fs    listeners, connections, streams, steering; files written through ops
//! time  mesh  blocking
//!             timers; cross-shard messages; the blocking pool
//! task        executor: tasks, wakers, run queue, budget, the loop's engine, PerShard
//! driver      the I/O boundary: typed ops, completions, buffers, wake (io_uring today)
//! sys         syscall wrappers     (error, future, histogram, slab: leaves any layer uses)
//! ```
//!
//! Each layer keeps its per-shard state to itself and finds it through one accessor,
//! `task::local::ShardLocal` (internal); handles made on a shard carry the state they use.
//!
//! ## Per-shard state, setup and stopping (for applications)
//!
//! - An application's per-shard state lives in a [`PerShard`] static (not `Send`, no lock);
//!   the closure given to `serve`/`start` is shared by every shard thread, which is why an
//!   `Rc` captured in it "cannot be sent between threads safely".
//! - [`ServerBuilder::on_shard_start`] runs once on every shard before it serves: build
//!   state, register metrics ([`metrics::gauge`], [`metrics::histogram()`], ...), spawn
//!   periodic tasks.
//! - A graceful stop closes the listeners, **cancels background tasks** (spawned by the
//!   init hook or with [`spawn_background`], and their children), completes
//!   [`shutdown_signal`], and waits for every other task until the drain timeout; then it
//!   closes the remaining connections and cancels the remaining tasks, logging how many of
//!   each.
//! - percore logs through `tracing`: install a subscriber (`tracing_subscriber::fmt::init()`)
//!   to see the logs.
//!
//! ## io_uring use
//!
//! Rings are set up `SINGLE_ISSUER | DEFER_TASKRUN` (plus `COOP_TASKRUN`, `TASKRUN_FLAG`)
//! where the kernel allows, falling back one flag at a time and saying so in the startup
//! report. Listeners keep a few accepts in flight, no more than their accept queue has room
//! for; connections use multishot receive into a per-shard provided-buffer ring; sends
//! batch everything a connection wrote in an iteration. Shards
//! wake each other with `IORING_OP_MSG_RING`; threads without a ring use an eventfd.

//! ## Connection steering
//!
//! Which shard serves a new connection is the [`Steering`] mode of the builder: `ReusePort`
//! (the kernel's hash over one listener per shard), `Cpu` (a reuseport cBPF program picks
//! the shard on the CPU that took the connection) or `Balanced` (each shard accepts, then
//! places the socket on the least-loaded shard through the mesh). In every mode a shard
//! whose loop iteration runs past the takeover threshold gets no new connections, and the
//! stall detector hands the connections queued on its listeners to healthy shards. CPU-heavy
//! handlers belong on [`spawn_blocking`] or a compute shard reached with
//! [`mesh::submit_to`]; the README compares the two.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod blocking;
#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub mod compat;
pub mod doctor;
pub(crate) mod driver;
mod error;
pub mod fs;
pub mod future;
pub(crate) mod histogram;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod server;
pub(crate) mod slab;
pub(crate) mod sys;
pub mod task;
pub mod time;

/// Test-only fault injection in the driver (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
pub use crate::driver::fault;
pub use crate::{
    blocking::spawn_blocking,
    driver::{DriverChoice, DriverKind, RingConfig, RingFeatures, RingStats},
    error::Error,
    future::{join, join_all},
    metrics::{ShardStats, stats},
    net::{NetConfig, NetStats, ShardLoadStats, Steering, TcpListener, TcpStream},
    server::{
        Placement, Server, ServerBuilder, ServerHandle, ShardInfo, ShutdownFlag, StartupReport,
        shutdown_requested, shutdown_signal, stop_server,
    },
    task::{JoinError, JoinHandle, PerShard, spawn, spawn_background, yield_now},
    time::{interval, sleep, timeout},
};

/// The README's example compiles as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
