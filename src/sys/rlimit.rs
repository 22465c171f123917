//! Process resource limits: locked memory (io_uring rings on older kernels)
//! and open descriptors (one per connection).

use std::io;

use super::os_error;

/// A resource limit; `RLIM_INFINITY` is reported as `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// `RLIMIT_MEMLOCK`, in bytes.
pub(crate) fn memlock() -> io::Result<Limit> {
    get(libc::RLIMIT_MEMLOCK, "getrlimit RLIMIT_MEMLOCK")
}

/// `RLIMIT_NOFILE`, in descriptors.
pub(crate) fn nofile() -> io::Result<Limit> {
    get(libc::RLIMIT_NOFILE, "getrlimit RLIMIT_NOFILE")
}

/// Raises the soft descriptor limit to the hard one (always permitted for an
/// unprivileged process) and returns the limit now in force.
pub(crate) fn raise_nofile_to_hard() -> io::Result<Limit> {
    let current = nofile()?;
    if current.soft != current.hard {
        let new = libc::rlimit {
            rlim_cur: to_rlim(current.hard),
            rlim_max: to_rlim(current.hard),
        };
        // SAFETY: `new` is a live, fully initialised rlimit.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) };
        if rc != 0 {
            return Err(os_error("setrlimit RLIMIT_NOFILE"));
        }
    }
    nofile()
}

// glibc types the resource argument as an enum, musl as c_int.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

fn get(resource: Resource, call: &str) -> io::Result<Limit> {
    let mut raw = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `raw` is a live rlimit the kernel writes into.
    let rc = unsafe { libc::getrlimit(resource, &mut raw) };
    if rc != 0 {
        return Err(os_error(call));
    }
    Ok(Limit {
        soft: from_rlim(raw.rlim_cur),
        hard: from_rlim(raw.rlim_max),
    })
}

// rlim_t is u64 on every 64-bit Linux target we support, so only the
// infinity sentinel needs translating.
fn from_rlim(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        v
    }
}

fn to_rlim(v: u64) -> libc::rlim_t {
    if v == u64::MAX {
        libc::RLIM_INFINITY
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinity_maps_to_max() {
        assert_eq!(from_rlim(libc::RLIM_INFINITY), u64::MAX);
        assert_eq!(to_rlim(u64::MAX), libc::RLIM_INFINITY);
        assert_eq!(from_rlim(to_rlim(1024)), 1024);
    }

    #[test]
    fn limits_are_readable_and_raisable() {
        let m = memlock().unwrap();
        assert!(m.soft <= m.hard);
        let before = nofile().unwrap();
        let after = raise_nofile_to_hard().unwrap();
        assert_eq!(after.soft, after.hard);
        assert_eq!(after.hard, before.hard);
    }
}
