//! RESP commands by name, as the kernel's shard-local service counters: exported on the
//! admin listener as `percore_kv_commands_total{command="get",shard="0"}`.
//!
//! Counted where a command arrives (the connection's shard), as it is parsed, whether it
//! then runs here or on its key's owner; unknown commands are counted under
//! `command="unknown"`. Each count is one add to a
//! shard-local cell, so counting costs nothing measurable next to the command itself.

use std::{
    cell::{OnceCell, RefCell},
    collections::VecDeque,
    sync::atomic::Ordering,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use percore::metrics::{Counter, counter};

use crate::commands::table::{COMMANDS, Spec};

const NAME: &str = "percore_kv_commands_total";
const HELP: &str = "RESP commands received, by command name";

struct Counters {
    /// Indexed by the command's position in the table.
    by_command: Vec<Option<Counter>>,
    unknown: Counter,
}

thread_local! {
    static COUNTERS: OnceCell<Counters> = const { OnceCell::new() };
}

fn with_counters(f: impl FnOnce(&Counters)) {
    COUNTERS.with(|cell| {
        f(cell.get_or_init(|| {
            let by_command = COMMANDS
                .iter()
                .map(|spec| Some(counter(NAME, HELP, &[("command", spec.name)])))
                .collect();
            Counters {
                by_command,
                unknown: counter(NAME, HELP, &[("command", "unknown")]),
            }
        }))
    });
}

/// Per command (by table index): calls, µs spent on a store, failed calls; and errors by
/// their first word: INFO commandstats and errorstats. Shard-local.
#[derive(Default)]
pub struct CommandStats {
    pub calls: Vec<u64>,
    pub usec: Vec<u64>,
    pub failed: Vec<u64>,
    pub errors: Vec<(String, u64)>,
}

/// One slow command (SLOWLOG).
#[derive(Clone, Debug)]
pub struct Slow {
    pub id: u64,
    pub at: u64,
    pub usec: u64,
    pub args: Vec<Vec<u8>>,
}

#[derive(Default)]
struct Local {
    stats: CommandStats,
    slow: VecDeque<Slow>,
    next_slow: u64,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// After a command ran on a store: its time and whether its reply was an error (`error`:
/// the reply's first word).
pub fn ran(
    spec: &Spec,
    args: &[Vec<u8>],
    took: Duration,
    error: Option<&[u8]>,
    live: Option<&crate::settings::Live>,
) {
    // The entry's place in the table (every spec a command runs with is one of it).
    let index = (spec as *const Spec as usize).wrapping_sub(COMMANDS.as_ptr() as usize)
        / std::mem::size_of::<Spec>();
    if index >= COMMANDS.len() {
        return;
    }
    let usec = took.as_micros() as u64;
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        let stats = &mut l.stats;
        if stats.usec.len() <= index {
            stats.usec.resize(COMMANDS.len(), 0);
            stats.failed.resize(COMMANDS.len(), 0);
        }
        stats.usec[index] += usec;
        if let Some(word) = error {
            stats.failed[index] += 1;
            let word = String::from_utf8_lossy(word).into_owned();
            if let Some((_, n)) = stats.errors.iter_mut().find(|(w, _)| *w == word) {
                *n += 1;
            } else if stats.errors.len() < 128 {
                // Bounded: at most 128 kinds of error are told apart.
                stats.errors.push((word, 1));
            }
        }
        let Some(live) = live else {
            return;
        };
        let threshold = live.slowlog_us.load(Ordering::Relaxed);
        if threshold >= 0 && usec >= threshold as u64 {
            let max = live.slowlog_max.load(Ordering::Relaxed) as usize;
            let id = l.next_slow;
            l.next_slow += 1;
            // As Redis: at most 32 arguments, each cut at 128 bytes.
            let args = args
                .iter()
                .take(32)
                .map(|a| a[..a.len().min(128)].to_vec())
                .collect();
            l.slow.push_front(Slow {
                id,
                at: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                usec,
                args,
            });
            l.slow.truncate(max);
        }
    });
}

/// This shard's command figures (a copy).
pub fn snapshot() -> CommandStats {
    LOCAL.with(|l| {
        let l = l.borrow();
        CommandStats {
            calls: l.stats.calls.clone(),
            usec: l.stats.usec.clone(),
            failed: l.stats.failed.clone(),
            errors: l.stats.errors.clone(),
        }
    })
}

/// CONFIG RESETSTAT.
pub fn reset() {
    LOCAL.with(|l| l.borrow_mut().stats = CommandStats::default());
}

/// SLOWLOG GET/LEN/RESET on this shard.
pub fn slow(count: usize) -> Vec<Slow> {
    LOCAL.with(|l| l.borrow().slow.iter().take(count).cloned().collect())
}

pub fn slow_len() -> usize {
    LOCAL.with(|l| l.borrow().slow.len())
}

pub fn slow_reset() {
    LOCAL.with(|l| l.borrow_mut().slow.clear());
}

/// Counts one command received on this shard: `spec` is what its name looked up to
/// (`None`: an unknown command).
pub fn received(spec: Option<&'static Spec>) {
    let index = spec.map(Spec::index);
    if let Some(i) = index {
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            if l.stats.calls.len() <= i {
                l.stats.calls.resize(COMMANDS.len(), 0);
            }
            l.stats.calls[i] += 1;
        });
    }
    with_counters(|c| match index.and_then(|i| c.by_command[i].as_ref()) {
        Some(counter) => counter.inc(),
        None => c.unknown.inc(),
    });
}
