//! The one public error type of the kernel's API, with messages that say what to do.

#![forbid(unsafe_code)]

use std::{fmt, io, net::SocketAddr};

/// Why percore could not start or keep serving.
#[derive(Debug)]
pub enum Error {
    /// io_uring cannot be used here; the message names the cause and the fix.
    IoUringUnavailable(String),
    /// The kernel has io_uring but lacks something percore needs.
    KernelTooOld(String),
    /// A listener could not be bound.
    Bind { addr: SocketAddr, source: io::Error },
    /// A configuration value is out of range.
    Config(String),
    /// A shard failed while running.
    Shard { shard: usize, source: io::Error },
    /// Any other system error, with what was being done.
    Io { context: String, source: io::Error },
}

impl Error {
    /// The process exit status for this error: distinct per cause so scripts can tell
    /// "io_uring is unavailable" (3) from "address in use" (4) from a bad setting (2).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            Error::IoUringUnavailable(_) | Error::KernelTooOld(_) => 3,
            Error::Bind { .. } => 4,
            Error::Shard { .. } | Error::Io { .. } => 1,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::IoUringUnavailable(msg) | Error::KernelTooOld(msg) | Error::Config(msg) => {
                f.write_str(msg)
            }
            Error::Bind { addr, source } => {
                if source.kind() == io::ErrorKind::AddrInUse {
                    write!(
                        f,
                        "cannot listen on {addr}: the address is already in use (another socket is listening on it; stop it, choose another --listen address, or share it on purpose with --reuse-port-shared / ServerBuilder::reuse_port_shared)"
                    )
                } else if source.kind() == io::ErrorKind::PermissionDenied {
                    write!(
                        f,
                        "cannot listen on {addr}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE; choose a port ≥ 1024)"
                    )
                } else {
                    write!(f, "cannot listen on {addr}: {source}")
                }
            }
            Error::Shard { shard, source } => write!(f, "shard {shard} failed: {source}"),
            Error::Io { context, source } if context.is_empty() => write!(f, "{source}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

/// An application's I/O error in a setup function or init hook (`?` on an `io::Result`):
/// an [`Error::Io`] with no context.
impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::Io {
            context: String::new(),
            source,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Shard { source, .. } | Error::Io { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn io_errors_convert_with_question_mark() {
        fn setup() -> Result<(), Error> {
            std::fs::read("/nonexistent/percore-test")?;
            Ok(())
        }
        let err = setup().unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("No such file"), "{err}");
    }
}
