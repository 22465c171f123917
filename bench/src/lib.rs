//! percore-bench: load generators and micro-benchmarks for percore, built on percore's own
//! shards (the client side runs the same io_uring loop it measures).
//!
//! Each mode is one module with a `run` function that returns a report; `main.rs` only parses
//! the command line and prints. Issue #4 adds HTTP and RESP modes next to [`echo`], reusing
//! [`measure`] (the warm-up/measure/stop clock shared by the shards) and [`report`].

#![forbid(unsafe_code)]

pub mod echo;
pub mod idle;
pub mod measure;
pub mod mesh;
pub mod procfs;
pub mod report;
