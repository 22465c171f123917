//! Running the Rust web ecosystem on percore's shards (behind cargo features).
//!
//! - `tokio-io`, `futures-io`: [`TcpStream`](crate::TcpStream) implements
//!   `tokio::io::{AsyncRead, AsyncWrite}` and `futures_io::{AsyncRead, AsyncWrite}`; tokio is
//!   used for its traits only, no tokio runtime ever runs a shard.
//! - `hyper`: hyper 1.x's `rt::{Read, Write}` on `TcpStream`, a [`ShardExecutor`] and a
//!   [`ShardTimer`] for hyper, [`serve`]/[`HttpServer`] to serve a hyper service or an axum
//!   `Router` on every shard, a request [`TimeoutLayer`] on the shard's timer wheel, and a
//!   hyper [`client`].
//! - [`on_shard`] runs shard-local (`!Send`) work, such as a hyper client call, from code
//!   that must be `Send`, such as an axum handler.
//!
//! What does not work on a shard: tokio's runtime APIs (`tokio::spawn`, `tokio::time`,
//! `tokio::net`, and layers built on them such as `tower_http::timeout`) panic there with
//! tokio's "must be called from the context of a Tokio 1.x runtime". The server answers
//! such a request `500`, naming the fix in the log and the body: [`crate::spawn`] (tasks
//! need not be `Send`), [`crate::time`], [`TimeoutLayer`].

#![forbid(unsafe_code)]

#[cfg(feature = "hyper")]
pub mod client;
#[cfg(feature = "hyper")]
mod health;
mod io;
mod local;
#[cfg(feature = "hyper")]
mod rt;
#[cfg(feature = "hyper")]
mod serve;
#[cfg(feature = "hyper")]
mod service;
#[cfg(feature = "hyper")]
mod timeout;

pub use self::local::{OnShard, on_shard};
#[cfg(feature = "hyper")]
pub use self::{
    health::healthz,
    rt::{ShardExecutor, ShardSleep, ShardTimer},
    serve::{HttpConfig, HttpServer, serve},
    service::{Guarded, GuardedBody, Oneshot, TowerToHyper, tokio_runtime_hint},
    timeout::{Timeout, TimeoutFuture, TimeoutLayer},
};
