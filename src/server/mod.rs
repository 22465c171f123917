//! The server: shard count and placement, ring and network settings, the blocking pool,
//! signals and graceful stop. [`Server::builder`] is where an embedding program starts.

#![forbid(unsafe_code)]

pub mod activation;
mod builder;
pub(crate) mod control;
mod drain;
mod handle;
mod placement;
pub mod proxy;
mod report;
mod shard_loop;
mod shard_thread;
mod signals;
#[cfg(feature = "tls")]
mod tls;
pub mod upgrade;
mod watchdog;

pub use self::{
    activation::InheritedListeners,
    builder::{Server, ServerBuilder, ShardInfo},
    drain::{ShutdownFlag, shutdown_requested, shutdown_signal, stop_server},
    handle::ServerHandle,
    placement::Placement,
    proxy::{Cidr, ProxyProtocol},
    report::StartupReport,
    upgrade::{SuccessorCommand, UpgradeConfig},
    watchdog::EXIT_SHARD_STUCK,
};
