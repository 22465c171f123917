//! Configuration of the blocking pool, including `PERCORE_BLOCKING_THREADS`.

use std::{ffi::OsStr, io};

/// Threads started when nothing else is configured; libuv's default
/// `UV_THREADPOOL_SIZE`.
pub const DEFAULT_THREADS: usize = 4;
/// Jobs that may wait in the queue before submitters see backpressure.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Upper bound on the thread count, as for libuv's `UV_THREADPOOL_SIZE`.
pub const MAX_THREADS: usize = 1024;
/// How much lower than the shards the pool's threads run by default: added to the nice
/// value of each worker thread (capped at 19). See [`BlockingConfig::nice_increment`].
pub const DEFAULT_NICE_INCREMENT: u8 = 10;
/// Environment variable read by [`BlockingConfig::from_env`].
pub const THREADS_ENV: &str = "PERCORE_BLOCKING_THREADS";

/// How a [`BlockingPool`](super::BlockingPool) is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingConfig {
    /// Worker threads, all started by `BlockingPool::new`; 1..=`MAX_THREADS`.
    pub threads: usize,
    /// Jobs that may wait for a thread; at least 1.
    pub queue_capacity: usize,
    /// Name given to every worker thread (visible in `top -H`, debuggers).
    pub thread_name: String,
    /// Added to each worker thread's nice value when it starts (capped at 19), so that
    /// pool work (a CPU burn moved off a shard) never takes a CPU from a shard: at +10 a
    /// pool thread weighs about a tenth of a shard thread in the kernel's fair scheduler,
    /// and a waking shard preempts it. It still runs when a CPU is free, and gets about a
    /// tenth of a contended CPU, so pool jobs are slowed under load but never starved
    /// (unlike `SCHED_IDLE`). 0 leaves the threads at the process's priority. Default
    /// [`DEFAULT_NICE_INCREMENT`]. A failure to lower the priority is logged as a warning;
    /// the thread then runs at the process's priority.
    pub nice_increment: u8,
}

impl Default for BlockingConfig {
    fn default() -> Self {
        BlockingConfig {
            threads: DEFAULT_THREADS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            thread_name: "percore-blocking".to_owned(),
            nice_increment: DEFAULT_NICE_INCREMENT,
        }
    }
}

impl BlockingConfig {
    /// The default configuration, with `threads` taken from
    /// `PERCORE_BLOCKING_THREADS` when that variable is set.
    ///
    /// An unset variable keeps the default; a value that is not an integer in
    /// `1..=1024` is an `InvalidInput` error whose one-line message names the
    /// variable and the bad value.
    pub fn from_env() -> io::Result<Self> {
        Self::from_threads_var(std::env::var_os(THREADS_ENV).as_deref())
    }

    /// `from_env` with the variable's value passed in, so tests need not
    /// mutate the process environment (which is `unsafe` in Rust 2024).
    pub(crate) fn from_threads_var(value: Option<&OsStr>) -> io::Result<Self> {
        let mut config = Self::default();
        if let Some(value) = value {
            config.threads = parse_threads(value)
                .map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
        }
        Ok(config)
    }

    /// Checks the invariants `BlockingPool::new` relies on.
    pub(crate) fn validate(&self) -> io::Result<()> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if self.threads == 0 || self.threads > MAX_THREADS {
            return invalid(format!(
                "blocking pool threads must be in 1..={MAX_THREADS}, got {}",
                self.threads
            ));
        }
        if self.queue_capacity == 0 {
            // A zero-capacity flume channel is a rendezvous: `try_submit`
            // would fail whenever no thread happens to be waiting.
            return invalid("blocking pool queue_capacity must be at least 1".to_owned());
        }
        Ok(())
    }
}

fn parse_threads(value: &OsStr) -> Result<usize, String> {
    let bad = || {
        format!(
            "{THREADS_ENV} must be an integer in 1..={MAX_THREADS}, got {:?}",
            value.to_string_lossy()
        )
    };
    let text = value.to_str().ok_or_else(bad)?;
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn threads_from(value: &str) -> io::Result<usize> {
        BlockingConfig::from_threads_var(Some(OsStr::new(value))).map(|c| c.threads)
    }

    #[test]
    fn unset_keeps_default() {
        let config = BlockingConfig::from_threads_var(None).unwrap();
        assert_eq!(config, BlockingConfig::default());
        assert_eq!(config.threads, 4);
        assert_eq!(config.queue_capacity, 1024);
        assert_eq!(config.thread_name, "percore-blocking");
        assert_eq!(config.nice_increment, 10);
    }

    #[test]
    fn valid_values() {
        assert_eq!(threads_from("8").unwrap(), 8);
        assert_eq!(threads_from(" 16 ").unwrap(), 16);
        assert_eq!(threads_from("1").unwrap(), 1);
        assert_eq!(threads_from("1024").unwrap(), 1024);
    }

    #[test]
    fn zero_is_rejected() {
        let err = threads_from("0").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(msg.contains(THREADS_ENV) && msg.contains("\"0\""), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn garbage_and_out_of_range_are_rejected() {
        for bad in ["abc", "", "-3", "4.5", "1025", "99999999999999999999999"] {
            let err = threads_from(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            let msg = err.to_string();
            assert!(msg.contains(THREADS_ENV), "{msg}");
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        }
    }

    #[test]
    fn non_unicode_is_rejected() {
        use std::os::unix::ffi::OsStringExt;
        let value = OsString::from_vec(vec![b'4', 0xff]);
        let err = BlockingConfig::from_threads_var(Some(&value)).unwrap_err();
        assert!(err.to_string().contains(THREADS_ENV));
    }

    #[test]
    fn validate_rejects_zero_threads_and_queue() {
        let zero_threads = BlockingConfig {
            threads: 0,
            ..Default::default()
        };
        assert!(zero_threads.validate().is_err());
        let zero_queue = BlockingConfig {
            queue_capacity: 0,
            ..Default::default()
        };
        assert!(zero_queue.validate().is_err());
        assert!(BlockingConfig::default().validate().is_ok());
    }
}
