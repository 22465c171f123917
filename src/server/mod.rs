//! The server: shard count and placement, ring and network settings, the blocking pool,
//! signals and graceful stop. [`Server::builder`] is where an embedding program starts.

mod builder;
pub(crate) mod control;
mod handle;
mod placement;
mod report;
mod shard_thread;
mod signals;

pub use self::{
    builder::{Server, ServerBuilder, ShardInfo},
    handle::ServerHandle,
    placement::Placement,
    report::StartupReport,
};
