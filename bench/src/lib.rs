//! percore-bench: load generators and micro-benchmarks for percore, built on percore's own
//! shards (the client side runs the same io_uring loop it measures).
//!
//! Each mode is one module with a `run` function that returns a report; `main.rs` only parses
//! the command line and prints. The request-response modes, [`http`] and [`resp`], are
//! protocols plugged into one engine, [`load`] (closed or open loop, pipelining, the books,
//! latency); [`echo`] predates it. [`measure`] is the warm-up/measure/stop clock shared by
//! the shards and [`books`] each client shard's counters and latencies, for every mode; [`progress`] and [`plot`] are the live and the graphic output.

#![forbid(unsafe_code)]

pub mod books;
pub mod cli;
pub mod connect;
pub mod echo;
pub mod http;
pub mod idle;
pub mod load;
pub mod measure;
pub mod mesh;
pub mod plot;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod resp;
pub mod tls;
