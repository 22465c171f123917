//! Raw file-descriptor helpers; ownership itself uses `std::os::fd::OwnedFd`.

use std::{io, os::fd::RawFd};

/// Closes `fd`, ignoring errors.
///
/// On Linux the descriptor is released even when `close` reports `EINTR`, so
/// retrying would risk closing a descriptor another thread just reused.
pub(crate) fn close_raw(fd: RawFd) {
    // SAFETY: `close` takes any integer; the caller gives up ownership of
    // `fd`, and an invalid descriptor only yields EBADF, which we ignore.
    unsafe {
        libc::close(fd);
    }
}

/// Number of descriptors open in this process, not counting the one used to
/// read `/proc/self/fd`.
pub(crate) fn open_fd_count() -> io::Result<usize> {
    let entries = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| super::with_context(e, "read_dir /proc/self/fd"))?;
    let mut count = 0usize;
    for entry in entries {
        entry.map_err(|e| super::with_context(e, "read_dir /proc/self/fd"))?;
        count += 1;
    }
    // The directory handle itself shows up as one entry while we iterate.
    Ok(count.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_tracks_open_and_close() {
        // Other tests run in parallel threads and open descriptors, so open
        // many and accept a bounded drift.
        let before = open_fd_count().unwrap();
        let files: Vec<_> = (0..64)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let during = open_fd_count().unwrap();
        assert!(during >= before + 32, "before={before} during={during}");
        let raws: Vec<RawFd> = files
            .into_iter()
            .map(std::os::fd::IntoRawFd::into_raw_fd)
            .collect();
        for fd in raws {
            close_raw(fd);
        }
        let after = open_fd_count().unwrap();
        assert!(after + 32 <= during, "during={during} after={after}");
    }
}
