//! CPU topology queries used to place one shard per core.

use std::io;
use std::mem;

use super::os_error;

/// CPU ids the calling thread may run on, ascending.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bitmask; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is live and we pass its exact size; pid 0 = this thread.
    let rc = unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(os_error("sched_getaffinity"));
    }
    let capacity = mem::size_of::<libc::cpu_set_t>() * 8;
    // Iterating in order yields the ids already sorted.
    Ok((0..capacity)
        // SAFETY: `cpu` < capacity, so CPU_ISSET stays within the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Number of online CPUs (at least 1).
pub(crate) fn online_cpus() -> usize {
    // SAFETY: sysconf takes a constant and touches no caller memory.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// The CPU the calling thread is running on right now, if the kernel says.
pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_is_sorted_nonempty_and_contains_current() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
        // The thread may migrate between the two calls, but only within
        // its affinity mask.
        let cur = current_cpu().expect("sched_getcpu");
        assert!(cpus.contains(&cur), "{cur} not in {cpus:?}");
        assert!(online_cpus() >= 1);
    }
}

/// The kernel's id of the calling thread (for `/proc/self/task/<tid>/...`).
pub(crate) fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// How long thread `tid` of this process has waited for a CPU while runnable (run-queue
/// delay, from `/proc/self/task/<tid>/schedstat`), in nanoseconds; `None` when unavailable.
pub(crate) fn run_delay_ns(tid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod schedstat_tests {
    use super::*;

    #[test]
    fn the_calling_thread_has_a_run_delay() {
        assert!(
            run_delay_ns(current_tid()).is_some(),
            "schedstat readable for our own thread"
        );
    }
}
