//! CPU topology queries used to place one shard per core.

use std::{io, mem};

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
#[cfg(test)]
fn current_cpu() -> Option<usize> {
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

/// What the scheduler has recorded of one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadSched {
    /// CPU time it ran (schedstat's first field; for a thread on a CPU right now, current
    /// to the last scheduler tick).
    pub(crate) ran_ns: u64,
    /// Time it waited for a CPU while runnable. A wait still going on is added only when
    /// the thread next runs.
    pub(crate) waited_ns: u64,
    /// Running or waiting for a CPU now (state `R`), as opposed to sleeping or blocked.
    pub(crate) runnable: bool,
}

/// Reads `/proc/self/task/<tid>/{schedstat,stat}`; `None` when unavailable.
pub(crate) fn thread_sched(tid: i32) -> Option<ThreadSched> {
    let schedstat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut fields = schedstat.split_whitespace();
    let ran_ns = fields.next()?.parse().ok()?;
    let waited_ns = fields.next()?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    Some(ThreadSched {
        ran_ns,
        waited_ns,
        runnable: stat_state(&stat)? == 'R',
    })
}

/// The state letter of a `/proc/.../stat` line: the first field after the command name,
/// which is in parentheses and may itself contain spaces and parentheses.
fn stat_state(stat: &str) -> Option<char> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().next()?.chars().next()
}

#[cfg(test)]
mod schedstat_tests {
    use super::*;

    #[test]
    fn the_state_follows_the_last_parenthesis() {
        assert_eq!(stat_state("42 (a (b) c) S 1 2 3"), Some('S'));
        assert_eq!(stat_state("7 (percore-0) R 1"), Some('R'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn the_calling_thread_is_runnable_while_it_reads_its_own_state() {
        let sched = thread_sched(current_tid()).expect("schedstat and stat readable");
        assert!(sched.runnable);
    }
}
