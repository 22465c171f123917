//! Facts about the running kernel and environment, for diagnosing why
//! io_uring is unavailable or limited.

use std::{io, mem};

use super::os_error;

/// The kernel release as reported by `uname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The full release string, e.g. `6.18.44-fc-v595`.
    pub release: String,
}

impl KernelVersion {
    /// Parses a release string such as `6.18.44-fc-v595` or `5.15.0`;
    /// missing or non-numeric trailing components read as 0.
    pub(crate) fn parse(release: &str) -> Option<Self> {
        let mut parts = release.splitn(3, '.');
        let major = leading_number(parts.next()?)?;
        let minor = parts.next().and_then(leading_number).unwrap_or(0);
        let patch = parts.next().and_then(leading_number).unwrap_or(0);
        Some(Self {
            major,
            minor,
            patch,
            release: release.to_owned(),
        })
    }

    pub(crate) fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.release)
    }
}

fn leading_number(s: &str) -> Option<u32> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

pub(crate) fn kernel_version() -> io::Result<KernelVersion> {
    // SAFETY: utsname is plain data; uname overwrites it.
    let mut uts: libc::utsname = unsafe { mem::zeroed() };
    // SAFETY: `uts` is a live utsname the kernel fills in.
    let rc = unsafe { libc::uname(&mut uts) };
    if rc != 0 {
        return Err(os_error("uname"));
    }
    // The kernel NUL-terminates each field; fall back to the whole array.
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let release = String::from_utf8_lossy(&bytes).into_owned();
    KernelVersion::parse(&release).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse kernel release {release:?}"),
        )
    })
}

/// `kernel.io_uring_disabled` (6.6+): 0 = allowed, 1 = only for
/// `kernel.io_uring_group` members, 2 = disabled. `None` when the sysctl does
/// not exist (older kernel) or cannot be read.
pub(crate) fn io_uring_disabled_sysctl() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?;
    text.trim().parse().ok()
}

/// A sysctl's value as text (`net.core.somaxconn` reads
/// `/proc/sys/net/core/somaxconn`), trimmed; `None` when it does not exist on
/// this kernel or cannot be read (e.g. a container hiding `/proc/sys`).
pub(crate) fn sysctl(name: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.trim().to_owned())
}

/// Best-effort guess at whether we run inside a container, where seccomp
/// profiles commonly block io_uring.
pub(crate) fn in_container() -> bool {
    if std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
    {
        return true;
    }
    if let Ok(env) = std::fs::read("/proc/1/environ")
        && env
            .split(|&b| b == 0)
            .any(|var| var.starts_with(b"container="))
    {
        return true;
    }
    std::fs::read_to_string("/proc/1/cgroup")
        .map(|s| cgroup_suggests_container(&s))
        .unwrap_or(false)
}

fn cgroup_suggests_container(cgroup: &str) -> bool {
    const HINTS: [&str; 5] = ["docker", "kubepods", "containerd", "libpod", "lxc"];
    cgroup
        .lines()
        .any(|line| HINTS.iter().any(|h| line.contains(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases() {
        let v = KernelVersion::parse("6.18.44-fc-v595").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (6, 18, 44));
        assert_eq!(v.release, "6.18.44-fc-v595");
        let v = KernelVersion::parse("5.15.0-105-generic").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (5, 15, 0));
        let v = KernelVersion::parse("6.1-rc3").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (6, 1, 0));
        let v = KernelVersion::parse("4.19.284+").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (4, 19, 284));
        assert!(KernelVersion::parse("garbage").is_none());
    }

    #[test]
    fn at_least_compares_major_then_minor() {
        let v = KernelVersion::parse("6.1.0").unwrap();
        assert!(v.at_least(6, 1));
        assert!(v.at_least(5, 19));
        assert!(!v.at_least(6, 2));
        assert!(!v.at_least(7, 0));
    }

    #[test]
    fn running_kernel_parses() {
        let v = kernel_version().unwrap();
        assert!(v.major >= 3, "{v:?}");
        // Just exercise these; their values depend on the host.
        let _ = io_uring_disabled_sysctl();
        let _ = in_container();
    }

    #[test]
    fn cgroup_hints() {
        assert!(cgroup_suggests_container(
            "0::/kubepods/besteffort/pod1234/abcd\n"
        ));
        assert!(cgroup_suggests_container("12:cpu:/docker/0123abcd\n"));
        assert!(!cgroup_suggests_container("0::/init.scope\n"));
        assert!(!cgroup_suggests_container(
            "0::/user.slice/user-1000.slice\n"
        ));
    }
}
