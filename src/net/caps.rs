//! Connection caps (R11): at most `NetConfig::max_connections_per_shard` accepted
//! connections on one shard, and at most `ServerBuilder::max_connections` on the whole
//! server, shared by its shards.
//!
//! **Policy: stop accepting and let the listen backlog hold.** A connection counts from the
//! moment it is accepted (queued for `accept()` included) until it is closed and released,
//! and each accept in flight holds a slot before it completes (a reservation). A listener
//! never has more accepts in flight than the room left under both caps, so the caps are
//! exact: no connection is accepted beyond a cap and then closed or left waiting. At the
//! cap a shard has no accept in flight; further clients wait in the kernel's listen
//! backlog (their SYNs are answered; `listen_backlog` of them, then the kernel drops SYNs
//! and the clients retry), and are accepted in turn as connections close: a release
//! re-arms the shard's listeners at once.
//!
//! The global cap is an atomic count shared by the shards, touched only when a shard
//! reserves slots for accepts, and when an accept ends without a connection or a
//! connection is released, never per request. A shard that found no room under it marks
//! itself waiting; the shard that frees a slot tells every waiting shard (a mesh message),
//! so a client in any shard's backlog is served when room comes back. Under the global cap
//! a listener keeps at most `room / (2 × shards)` accepts in flight (at least one), `room`
//! being the free slots when it arms, so accepts waiting on an idle shard's listener cannot
//! hold the room the busy shards need: near the cap they hold one slot per listener (the
//! global cap must be at least the number of shards).
//!
//! Exceptions, all connections that are already accepted (closing them would drop a
//! client): a connection placed on this shard by another one (`balanced` steering) or by
//! the stall detector, and those a stopping listener takes from its backlog, are counted
//! even beyond the cap; this shard then accepts nothing until it is back under its cap.
//! Outbound connections (`TcpStream::connect`) are not counted.
//!
//! With no cap set nothing here runs: `NetShard::caps` is `None`, one branch per accept
//! arm and per connection release.

use std::{
    cell::Cell,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use super::NetShard;

/// The server-wide cap, shared by every shard (in the steering state).
#[derive(Debug)]
pub(crate) struct GlobalCap {
    max: usize,
    /// Accepted connections not yet released plus accepts in flight, over all shards.
    held: AtomicUsize,
    /// Shards whose accepting the cap paused: told when a slot frees.
    waiting: Box<[AtomicBool]>,
}

impl GlobalCap {
    pub(crate) fn new(max: usize, shards: usize) -> Self {
        GlobalCap {
            max,
            held: AtomicUsize::new(0),
            waiting: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Accepted connections not yet released, plus accepts in flight, over all shards.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    fn room(&self) -> usize {
        self.max.saturating_sub(self.held())
    }

    /// Takes up to `want` slots; returns how many it took.
    fn take(&self, want: usize) -> usize {
        let mut got = 0;
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                got = want.min(self.max.saturating_sub(held));
                (got > 0).then_some(held + got)
            });
        got
    }

    /// Counts `n` connections already accepted elsewhere, even beyond the cap.
    fn force(&self, n: usize) {
        self.held.fetch_add(n, Ordering::SeqCst);
    }

    fn put_back(&self, n: usize) {
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                Some(held.saturating_sub(n))
            });
    }
}

/// One shard's side of the caps.
#[derive(Debug)]
pub(crate) struct ShardCaps {
    per_shard: Option<usize>,
    /// Accepted connections on this shard not yet released, queued ones included.
    live: Cell<usize>,
    /// Accepts in flight, each holding a slot.
    reserved: Cell<usize>,
}

impl ShardCaps {
    /// `None` when neither cap is set: then nothing is counted.
    pub(crate) fn new(per_shard: Option<usize>, global: bool) -> Option<Self> {
        (per_shard.is_some() || global).then(|| ShardCaps {
            per_shard,
            live: Cell::new(0),
            reserved: Cell::new(0),
        })
    }

    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }
}

fn global(net: &NetShard) -> Option<&GlobalCap> {
    net.steer.global_cap.as_ref()
}

/// Reserves slots for up to `want` more accepts of a listener that has `in_flight`
/// already; returns how many it may submit. When it returns 0 for a listener with nothing
/// in flight, that listener's accepting is paused at a cap, and with the global cap the
/// shard is marked waiting for room.
pub(crate) fn reserve(net: &NetShard, caps: &ShardCaps, want: usize, in_flight: usize) -> usize {
    let idle = in_flight == 0;
    let mut want = want;
    if let Some(cap) = caps.per_shard {
        want = want.min(cap.saturating_sub(caps.live.get() + caps.reserved.get()));
    }
    if want == 0 {
        return 0;
    }
    let got = match global(net) {
        None => want,
        Some(g) => {
            let shards = g.waiting.len().max(1);
            // Accepts in flight in all, this listener's included: a shard that frees slots
            // does not take them all back for accepts that may wait long on its listener.
            let fair = (g.room() / (2 * shards)).max(1);
            let want = want.min(fair.saturating_sub(in_flight));
            if want == 0 {
                return 0;
            }
            let mut got = g.take(want);
            if got == 0 && idle {
                // Waiting for room; checked again after the mark, so that a slot freed
                // between the two is not missed (the freeing shard reads the mark after
                // giving the slot back).
                g.waiting[net.shard_id].store(true, Ordering::SeqCst);
                got = g.take(want);
                if got > 0 {
                    g.waiting[net.shard_id].store(false, Ordering::SeqCst);
                }
            }
            if got > 0 && g.waiting[net.shard_id].load(Ordering::SeqCst) {
                g.waiting[net.shard_id].store(false, Ordering::SeqCst);
            }
            got
        }
    };
    caps.reserved.set(caps.reserved.get() + got);
    got
}

/// An accept in flight brought a connection that stays on this shard.
pub(crate) fn accepted(caps: &ShardCaps) {
    caps.reserved.set(caps.reserved.get().saturating_sub(1));
    caps.live.set(caps.live.get() + 1);
}

/// An accept in flight brought a connection that was placed on another shard: it keeps its
/// global slot (the receiving shard counts it in its own `live`).
pub(crate) fn handed_out(caps: &ShardCaps) {
    caps.reserved.set(caps.reserved.get().saturating_sub(1));
}

/// A connection arrives already accepted (placed here by another shard, `counted` in the
/// global cap there; by the stall detector; or taken from a stopping listener's backlog).
pub(crate) fn handed_in(net: &NetShard, caps: &ShardCaps, counted: bool) {
    caps.live.set(caps.live.get() + 1);
    if !counted && let Some(g) = global(net) {
        g.force(1);
    }
}

/// `n` accepts ended without a connection (or with one that was dropped).
pub(crate) fn unreserve(net: &NetShard, caps: &ShardCaps, n: usize) {
    caps.reserved.set(caps.reserved.get().saturating_sub(n));
    give_back_global(net, n);
}

/// `n` counted connections were released (closed, or dropped from a queue).
pub(crate) fn released(net: &NetShard, caps: &ShardCaps, n: usize) {
    caps.live.set(caps.live.get().saturating_sub(n));
    give_back_global(net, n);
}

/// A connection counted globally by the shard that placed it found no listener here.
pub(crate) fn give_back_global(net: &NetShard, n: usize) {
    let Some(g) = global(net) else { return };
    if n == 0 {
        return;
    }
    g.put_back(n);
    // Tell the shards that wait for room (this one re-arms its own listeners itself).
    for (shard, waiting) in g.waiting.iter().enumerate() {
        if shard == net.shard_id || !waiting.load(Ordering::SeqCst) {
            continue;
        }
        if !waiting.swap(false, Ordering::SeqCst) {
            continue;
        }
        let sent = crate::mesh::try_send_to(shard, || {
            super::listener::room_freed(&super::NET.current());
        });
        if sent.is_err() {
            // Its inbox is full (it is busy): the next slot freed tells it again.
            waiting.store(true, Ordering::SeqCst);
        }
    }
}
