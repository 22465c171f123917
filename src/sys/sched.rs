//! Scheduling priority of the calling thread (`nice`), for the blocking pool's threads.
//!
//! On Linux `setpriority(PRIO_PROCESS, tid, …)` changes one thread, not the whole process
//! (threads are tasks with their own nice value). Raising the nice value (a lower priority)
//! needs no privilege.

use std::io;

use super::os_error;

/// Highest nice value Linux accepts (the lowest priority).
pub(crate) const MAX_NICE: i32 = 19;

/// The calling thread's nice value.
pub(crate) fn current_nice() -> io::Result<i32> {
    let tid = super::cpu::current_tid();
    // `getpriority` may return -1 as a valid value: errno tells, so clear it first.
    // SAFETY: `__errno_location` returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: plain syscall wrapper; no memory is passed. `tid` is this thread.
    let value = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    // SAFETY: as above.
    if value == -1 && unsafe { *libc::__errno_location() } != 0 {
        return Err(os_error("getpriority"));
    }
    Ok(value)
}

/// Raises the calling thread's nice value by `increment` (capped at [`MAX_NICE`]) and
/// returns the new value. An increment of 0 changes nothing.
pub(crate) fn lower_current_thread_priority(increment: u8) -> io::Result<i32> {
    let current = current_nice()?;
    if increment == 0 {
        return Ok(current);
    }
    let target = (current + i32::from(increment)).min(MAX_NICE);
    let tid = super::cpu::current_tid();
    // SAFETY: plain syscall wrapper; no memory is passed. `tid` is this thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, target) };
    if rc != 0 {
        return Err(os_error("setpriority"));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice field (19th) of `/proc/self/task/<tid>/stat`, after the `(comm)` field.
    fn proc_nice(tid: i32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        // Fields from the 3rd on; nice is the 19th field overall.
        after_comm.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn lowering_changes_only_the_calling_thread() {
        let before = proc_nice(super::super::cpu::current_tid());
        let (nice, seen) = std::thread::spawn(|| {
            let nice = lower_current_thread_priority(3).unwrap();
            (nice, proc_nice(super::super::cpu::current_tid()))
        })
        .join()
        .unwrap();
        assert_eq!(nice, (before + 3).min(MAX_NICE));
        assert_eq!(seen, nice);
        // This thread kept its value.
        assert_eq!(proc_nice(super::super::cpu::current_tid()), before);
        assert_eq!(current_nice().unwrap(), before);
    }

    #[test]
    fn the_value_is_capped_at_19() {
        let nice = std::thread::spawn(|| {
            let nice = lower_current_thread_priority(u8::MAX).unwrap();
            (nice, proc_nice(super::super::cpu::current_tid()))
        })
        .join()
        .unwrap();
        assert_eq!(nice, (MAX_NICE, MAX_NICE));
    }
}
