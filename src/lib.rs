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
//! Like Node.js documents the phases of its event loop, here are a shard's. Each iteration:
//!
//! 1. **timers** — expired timers fire (a hierarchical wheel, 1 ms resolution, no tick);
//! 2. **mesh** — tasks woken from other threads are queued, and up to 256 inbox messages run;
//! 3. **run** — ready tasks are polled (at most 1024 polls, each with an I/O budget of 64,
//!    so one busy connection cannot starve the rest); then unconsumed input is copied out of
//!    the ring's buffers and one send per connection with output is queued;
//! 4. **submit + wait** — one `io_uring_enter` submits every queued SQE and waits for a
//!    completion or the next timer deadline; it does not wait while tasks are ready, and it
//!    never spins;
//! 5. **complete** — every CQE is reaped into a local queue before any is dispatched;
//!    multishot operations that ended without `IORING_CQE_F_MORE` are re-armed;
//! 6. **close** — connections whose last operation completed release their fds and buffers.
//!
//! ## io_uring use
//!
//! Rings are set up `SINGLE_ISSUER | DEFER_TASKRUN` (plus `COOP_TASKRUN`, `TASKRUN_FLAG`)
//! where the kernel allows, falling back one flag at a time and saying so in the startup
//! report. Listeners use multishot accept; connections use multishot receive into a per-shard
//! provided-buffer ring; sends batch everything a connection wrote in an iteration. Shards
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
mod error;
pub mod executor;
pub mod future;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod ring;
pub mod server;
// Thin wrappers over every syscall the kernel and its doctor need; a few serve only tests
// and diagnostics for now.
#[allow(dead_code)]
pub(crate) mod sys;
pub mod time;

pub use crate::{
    error::Error,
    executor::{
        JoinError, JoinHandle, shutdown_requested, shutdown_signal, spawn, spawn_blocking,
        stop_server, yield_now,
    },
    metrics::{ShardStats, stats},
    net::{NetConfig, NetStats, ShardLoadStats, Steering, TcpListener, TcpStream},
    ring::{RingConfig, RingFeatures, RingStats},
    server::{Placement, Server, ServerBuilder, ServerHandle, ShardInfo, StartupReport},
};

/// The README's example compiles as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
