//! Termination-signal handling without handlers: SIGINT/SIGTERM (and SIGHUP, the reload
//! request, and SIGUSR2, the hot restart request) are blocked in every thread and collected
//! synchronously with `sigtimedwait`.

use std::{io, mem, time::Duration};

use super::os_error;

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully before
    // sigaddset, and both only write into the live local.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread and returns the previous
/// mask. Call before spawning shard threads so they inherit the blocked mask
/// and the signals stay pending for [`wait_termination_signal`].
pub(crate) fn block_termination_signals() -> io::Result<libc::sigset_t> {
    let set = termination_set();
    // SAFETY: sigset_t is plain data; pthread_sigmask overwrites it.
    let mut old: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: both pointers refer to live sigset_t locals.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if rc != 0 {
        // pthread_* return the error instead of setting errno.
        return Err(super::with_context(
            io::Error::from_raw_os_error(rc),
            "pthread_sigmask(SIG_BLOCK, {SIGINT, SIGTERM})",
        ));
    }
    Ok(old)
}

/// Restores a mask returned by [`block_termination_signals`].
#[cfg(test)]
fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a valid sigset_t; SIG_SETMASK is a valid `how`, which
    // is the only failure mode (EINVAL), so the result carries no information.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// Waits up to `timeout` for a pending SIGINT or SIGTERM and consumes it.
/// Returns `Ok(None)` on timeout. The signals must be blocked (see
/// [`block_termination_signals`]) or they are delivered normally instead.
pub(crate) fn wait_termination_signal(timeout: Duration) -> io::Result<Option<i32>> {
    let set = termination_set();
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // subsec_nanos() < 1e9 fits every c_long.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: `set` and `ts` are live locals; a null siginfo is allowed.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
        if sig >= 0 {
            return Ok(Some(sig));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(None),
            // Interrupted by some other (handled) signal: wait again. The
            // full timeout restarts, which is fine for a shutdown poll loop.
            Some(libc::EINTR) => continue,
            _ => return Err(super::with_context(err, "sigtimedwait {SIGINT, SIGTERM}")),
        }
    }
}

/// Ignores SIGPIPE process-wide: writing to a reset socket must return EPIPE,
/// not kill the server.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE is always valid and does not
    // run any code in signal context.
    let prev = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SIG_ERR is only possible for an invalid signal number.
    debug_assert_ne!(prev, libc::SIG_ERR, "{}", os_error("signal(SIGPIPE)"));
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test runs on its own thread, and the mask is per-thread, so these
    // do not disturb other tests. Signals are thread-directed (pthread_kill)
    // so only this thread can receive them.

    #[test]
    fn blocked_signal_is_collected() {
        let old = block_termination_signals().unwrap();
        // SAFETY: pthread_self is always valid; SIGTERM is blocked in this
        // thread, so it stays pending instead of terminating the process.
        let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
        assert_eq!(rc, 0);
        let got = wait_termination_signal(Duration::from_secs(5)).unwrap();
        assert_eq!(got, Some(libc::SIGTERM));
        // SAFETY: as above, for SIGINT.
        let rc = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGINT) };
        assert_eq!(rc, 0);
        assert_eq!(
            wait_termination_signal(Duration::from_secs(5)).unwrap(),
            Some(libc::SIGINT)
        );
        restore_mask(&old);
    }

    #[test]
    fn times_out_with_none() {
        let old = block_termination_signals().unwrap();
        let start = std::time::Instant::now();
        let got = wait_termination_signal(Duration::from_millis(20)).unwrap();
        assert_eq!(got, None);
        assert!(start.elapsed() >= Duration::from_millis(15));
        restore_mask(&old);
    }

    #[test]
    fn sigpipe_ignored() {
        ignore_sigpipe();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(b);
        use std::io::Write;
        let err = (&a).write_all(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
