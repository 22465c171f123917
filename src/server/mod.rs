//! The server: shard count and placement, ring and network settings, the blocking pool,
//! signals and graceful stop. [`Server::builder`] is where an embedding program starts.

#![forbid(unsafe_code)]

mod builder;
pub(crate) mod control;
mod drain;
mod handle;
mod placement;
mod report;
mod shard_loop;
mod shard_thread;
mod signals;
#[cfg(feature = "tls")]
mod tls;
mod watchdog;

pub use self::{
    builder::{Server, ServerBuilder, ShardInfo},
    drain::{shutdown_requested, shutdown_signal, stop_server},
    handle::ServerHandle,
    placement::Placement,
    report::StartupReport,
    watchdog::EXIT_SHARD_STUCK,
};
