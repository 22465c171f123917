//! Health that tells the truth while a shard is stuck: every shard's stall state as the
//! stall detector publishes it (shared atomics, so it answers from any healthy shard or
//! thread while one shard's loop is held by a handler), and the standard answer of a health
//! check built from it: `200 {"status":"ok"}`, or `503` with the stuck shards named.
//!
//! The check also answers for the server's lifecycle ([`Readiness`]): `503
//! {"status":"starting"}` until every shard runs, and `503 {"status":"draining"}` from the
//! moment a stop is announced (SIGTERM, the admin listener's `POST /drain`, a hot restart's
//! successor taking over), while the listeners stay open for the drain delay, so a load
//! balancer's health check takes the instance out before it stops accepting.

use std::{
    cell::RefCell,
    fmt::Write,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use crate::{
    mesh::MESH,
    task::{
        local::ShardLocal,
        remote::{ShardRemote, now_ns},
    },
};

/// Where the server is in its life, as health checks report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Shards are still starting: not ready (503).
    Starting,
    /// Every shard runs: ready (200 unless a shard is stuck).
    Serving,
    /// A stop was announced: 503 at once, while the listeners may still accept for the drain
    /// delay and open connections drain after it.
    Draining,
}

/// The lifecycle shared by the server, its shards and the admin thread (one atomic word).
/// It only moves forward: `Starting → Serving → Draining`, or `Starting → Draining`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Readiness(Arc<AtomicU8>);

impl Readiness {
    const STARTING: u8 = 0;
    const SERVING: u8 = 1;
    const DRAINING: u8 = 2;

    pub(crate) fn get(&self) -> Lifecycle {
        match self.0.load(Ordering::Acquire) {
            Self::STARTING => Lifecycle::Starting,
            Self::SERVING => Lifecycle::Serving,
            _ => Lifecycle::Draining,
        }
    }

    /// Every shard runs. No effect once draining.
    pub(crate) fn set_serving(&self) {
        let _ = self.0.compare_exchange(
            Self::STARTING,
            Self::SERVING,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// A stop was announced. True the first time.
    pub(crate) fn set_draining(&self) -> bool {
        self.0.swap(Self::DRAINING, Ordering::AcqRel) != Self::DRAINING
    }
}

thread_local! {
    static CURRENT: RefCell<Option<std::rc::Rc<Readiness>>> = const { RefCell::new(None) };
}

/// The server's lifecycle, reachable from its shards (installed by the shard thread).
pub(crate) static READINESS: ShardLocal<Readiness> = ShardLocal::new(&CURRENT);

/// The server's lifecycle, from a shard; `Serving` off a shard (nothing to report).
pub fn lifecycle() -> Lifecycle {
    READINESS
        .try_current()
        .map_or(Lifecycle::Serving, |r| r.get())
}

/// One shard's state, as the stall detector last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardHealth {
    pub shard: usize,
    /// How long its current loop iteration has run; zero while it waits for I/O.
    pub iteration: Duration,
    /// How long that iteration has been stalled (past the stall threshold); zero otherwise.
    pub stalled: Duration,
    /// Stalled longer than the server's `unhealthy_after`.
    pub stuck: bool,
    /// The route or task it runs, when the service labelled it (see [`crate::task::label`]).
    pub task: Option<&'static str>,
}

impl ShardHealth {
    /// `idle`, `running`, `stalled` or `stuck`.
    pub fn state(&self) -> &'static str {
        if self.stuck {
            "stuck"
        } else if !self.stalled.is_zero() {
            "stalled"
        } else if self.iteration.is_zero() {
            "idle"
        } else {
            "running"
        }
    }
}

/// Every shard's state. Call it from a shard (a service's health route).
///
/// # Panics
/// When called from a thread that runs no shard.
#[track_caller]
pub fn health() -> Vec<ShardHealth> {
    health_of(MESH.current().shared.remotes())
}

/// The answer of a health check: status 200 or 503, and its JSON body (see the module docs).
/// Call it from a shard.
///
/// # Panics
/// When called from a thread that runs no shard.
#[track_caller]
pub fn health_check() -> (u16, String) {
    check_of(MESH.current().shared.remotes(), lifecycle())
}

pub(crate) fn health_of(remotes: &[Arc<ShardRemote>]) -> Vec<ShardHealth> {
    let now = now_ns();
    remotes
        .iter()
        .map(|remote| {
            let since = remote.busy_since();
            ShardHealth {
                shard: remote.id,
                iteration: Duration::from_nanos(if since == 0 {
                    0
                } else {
                    now.saturating_sub(since)
                }),
                stalled: Duration::from_millis(remote.stall.stalled_ms()),
                stuck: remote.stall.is_stuck(),
                task: remote.label(),
            }
        })
        .collect()
}

/// Every shard's stalls by the route or task it ran (`None`: unlabelled), from the stall
/// detector's shared counts (so a shard stuck now is counted too).
pub(crate) fn stalls_by_route(
    remotes: &[Arc<ShardRemote>],
) -> Vec<(usize, Option<&'static str>, u64)> {
    remotes
        .iter()
        .flat_map(|remote| {
            remote
                .stalls_by_label()
                .into_iter()
                .map(|(label, count)| (remote.id, label, count))
        })
        .collect()
}

pub(crate) fn check_of(remotes: &[Arc<ShardRemote>], lifecycle: Lifecycle) -> (u16, String) {
    match lifecycle {
        Lifecycle::Serving => {}
        Lifecycle::Starting => return (503, "{\"status\":\"starting\"}\n".to_string()),
        Lifecycle::Draining => return (503, "{\"status\":\"draining\"}\n".to_string()),
    }
    // The common case reads one word per shard and formats nothing.
    if !remotes.iter().any(|remote| remote.stall.is_stuck()) {
        return (200, "{\"status\":\"ok\"}\n".to_string());
    }
    let mut body = String::from("{\"status\":\"unhealthy\",\"stuck_shards\":[");
    let stuck = health_of(remotes).into_iter().filter(|h| h.stuck);
    for (i, shard) in stuck.enumerate() {
        let _ = write!(
            body,
            "{}{{\"shard\":{},\"stalled_ms\":{},\"task\":",
            if i == 0 { "" } else { "," },
            shard.shard,
            shard.stalled.as_millis()
        );
        match shard.task {
            Some(task) => json_string(&mut body, task),
            None => body.push_str("null"),
        }
        body.push('}');
    }
    body.push_str("]}\n");
    (503, body)
}

/// `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The `/debug/shards` page: one line per shard with its state, how long its current
/// iteration has run, and what it runs.
pub(crate) fn debug_shards(remotes: &[Arc<ShardRemote>], out: &mut String) {
    for shard in health_of(remotes) {
        let _ = writeln!(
            out,
            "shard {}: {:<8} iteration {:>9.3} s  stalled {:>9.3} s  task {}",
            shard.shard,
            shard.state(),
            shard.iteration.as_secs_f64(),
            shard.stalled.as_secs_f64(),
            shard.task.unwrap_or("-")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_check_names_stuck_shards_and_passes_when_none_is() {
        let remotes: Vec<_> = (0..2)
            .map(|id| Arc::new(ShardRemote::new(id).unwrap()))
            .collect();
        assert_eq!(
            check_of(&remotes, Lifecycle::Serving),
            (200, "{\"status\":\"ok\"}\n".into())
        );
        remotes[1].stall.publish(2500, true, false);
        let label = crate::task::label::Label::new("GET /health \"test\"");
        remotes[1].set_busy_since(now_ns());
        remotes[1].set_label_for_test(label);
        let (status, body) = check_of(&remotes, Lifecycle::Serving);
        assert_eq!(status, 503);
        assert_eq!(
            body,
            "{\"status\":\"unhealthy\",\"stuck_shards\":[{\"shard\":1,\"stalled_ms\":2500,\"task\":\"GET /health \\\"test\\\"\"}]}\n"
        );
        let mut page = String::new();
        debug_shards(&remotes, &mut page);
        assert!(page.starts_with("shard 0: idle"), "{page}");
        assert!(page.contains("shard 1: stuck"), "{page}");
        assert!(page.contains("stalled     2.500 s"), "{page}");
        remotes[1].stall.publish(0, false, false);
        assert_eq!(check_of(&remotes, Lifecycle::Serving).0, 200);
    }

    #[test]
    fn starting_and_draining_answer_503_and_the_state_only_moves_forward() {
        let remotes: Vec<_> = (0..1)
            .map(|id| Arc::new(ShardRemote::new(id).unwrap()))
            .collect();
        let readiness = Readiness::default();
        assert_eq!(readiness.get(), Lifecycle::Starting);
        assert_eq!(
            check_of(&remotes, readiness.get()),
            (503, "{\"status\":\"starting\"}\n".into())
        );
        readiness.set_serving();
        assert_eq!(check_of(&remotes, readiness.get()).0, 200);
        assert!(readiness.set_draining());
        assert!(!readiness.set_draining());
        readiness.set_serving();
        assert_eq!(readiness.get(), Lifecycle::Draining);
        assert_eq!(
            check_of(&remotes, readiness.get()),
            (503, "{\"status\":\"draining\"}\n".into())
        );
    }
}
