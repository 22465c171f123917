//! Cross-thread wake-up: an eventfd another shard writes to and this shard's
//! ring reads from.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use super::os_error;

/// A non-blocking, close-on-exec eventfd used as a counter of wake-ups.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

// OwnedFd is Send + Sync, and eventfd reads/writes are atomic in the kernel,
// so EventFd is too without any unsafe impl.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EventFd>();
};

impl EventFd {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall with constant arguments.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(os_error("eventfd"));
        }
        // SAFETY: `eventfd` just returned this descriptor; nobody else owns it.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Adds 1 to the counter, waking a reader. Never blocks.
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes exactly 8 bytes from a live u64, as eventfd requires.
            let n = unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
            if n >= 0 {
                return;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // EAGAIN: the counter is near overflow, i.e. already non-zero,
                // so the reader is already due to wake. Other errors (EBADF)
                // cannot happen while we own the descriptor.
                _ => return,
            }
        }
    }

    /// Reads and resets the counter; 0 when nothing was pending.
    pub(crate) fn drain(&self) -> io::Result<u64> {
        let mut value: u64 = 0;
        loop {
            // SAFETY: reads exactly 8 bytes into a live u64.
            let n = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut value).cast(), 8) };
            if n >= 0 {
                return Ok(value);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(0),
                _ => return Err(super::with_context(err, "read eventfd")),
            }
        }
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn notify_then_drain() {
        let e = EventFd::new().unwrap();
        assert_eq!(e.drain().unwrap(), 0);
        e.notify();
        e.notify();
        assert_eq!(e.drain().unwrap(), 2);
        assert_eq!(e.drain().unwrap(), 0);
    }

    #[test]
    fn notify_across_threads() {
        let e = Arc::new(EventFd::new().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let e = Arc::clone(&e);
                std::thread::spawn(move || e.notify())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(e.drain().unwrap(), 4);
    }
}
