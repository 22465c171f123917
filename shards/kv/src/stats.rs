//! RESP commands by name, as the kernel's shard-local service counters: exported on the
//! admin listener as `percore_kv_commands_total{command="get",shard="0"}`.
//!
//! Counted where a command arrives (the connection's shard), as it is parsed, whether it
//! then runs here or on its key's owner; unknown commands are counted under
//! `command="unknown"`. Each count is one add to a
//! shard-local cell, so counting costs nothing measurable next to the command itself.

use std::cell::OnceCell;

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

/// Counts one command received on this shard: `spec` is what its name looked up to
/// (`None`: an unknown command).
pub fn received(spec: Option<&'static Spec>) {
    let index = spec.map(Spec::index);
    with_counters(|c| match index.and_then(|i| c.by_command[i].as_ref()) {
        Some(counter) => counter.inc(),
        None => c.unknown.inc(),
    });
}
