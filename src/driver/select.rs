//! Which driver a shard gets: `auto` (io_uring when it works, epoll otherwise, saying why),
//! or one named strictly.

use std::{fmt, str::FromStr};

use super::{Driver, RingConfig, epoll::Epoll, uring::Ring};
use crate::error::Error;

/// The environment variable that picks the driver when the builder was not told.
pub const DRIVER_ENV: &str = "PERCORE_DRIVER";

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring when this host allows it, else epoll (the startup report says why).
    #[default]
    Auto,
    /// io_uring or nothing: a host without it stops the start with one line (exit 3).
    IoUring,
    /// The readiness driver, even where io_uring works.
    Epoll,
}

/// The driver a shard runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriverKind {
    #[default]
    IoUring,
    Epoll,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::IoUring => "io_uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DriverChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DriverChoice::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(DriverChoice::IoUring),
            "epoll" => Ok(DriverChoice::Epoll),
            other => Err(format!(
                "unknown driver `{other}`: expected auto, io_uring or epoll"
            )),
        }
    }
}

impl fmt::Display for DriverChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverChoice::Auto => "auto",
            DriverChoice::IoUring => "io_uring",
            DriverChoice::Epoll => "epoll",
        })
    }
}

impl DriverChoice {
    /// The choice `PERCORE_DRIVER` names; `None` when unset, an error when it names no driver.
    pub fn from_env() -> Result<Option<DriverChoice>, Error> {
        match std::env::var(DRIVER_ENV) {
            Ok(value) if !value.trim().is_empty() => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| Error::Config(format!("{DRIVER_ENV}: {e}"))),
            _ => Ok(None),
        }
    }
}

impl Driver {
    /// Builds the driver `choice` names. With `Auto`, a host where io_uring cannot start
    /// gets epoll, and the second value is the reason, with the fix that brings io_uring
    /// back (the same line `--driver io_uring` would stop with).
    pub(crate) fn new(
        config: &RingConfig,
        choice: DriverChoice,
    ) -> Result<(Driver, Option<String>), Error> {
        match choice {
            DriverChoice::IoUring => Ok((Driver::Uring(Ring::new(config)?), None)),
            DriverChoice::Epoll => Ok((Driver::Epoll(Epoll::new(config)?), None)),
            DriverChoice::Auto => match Ring::new(config) {
                Ok(ring) => Ok((Driver::Uring(ring), None)),
                Err(Error::IoUringUnavailable(why) | Error::KernelTooOld(why)) => {
                    Ok((Driver::Epoll(Epoll::new(config)?), Some(why)))
                }
                Err(e) => Err(e),
            },
        }
    }
}
