//! Hierarchical hashed timer wheel: the per-shard timer data structure.
//!
//! This module holds only the data structure: no futures, no I/O, no clock.
//! Time is a `u64` count of milliseconds since the wheel was created; the
//! caller converts from its `Clock` (see `clock.rs`) and feeds the
//! wheel through [`TimerWheel::advance`]. A shard owns its wheel, so nothing
//! here is `Sync`-aware or locked.
//!
//! # Levels
//!
//! There are 11 levels of 64 slots each. A slot at level `l` spans
//! `64^l` ms: level 0 has 1 ms slots, level 1 has 64 ms slots, level 2
//! ~4.1 s, level 3 ~4.4 min, level 4 ~4.7 h, level 5 ~12.4 days, and so on.
//! Six levels would cover ~795 days; rather than clamping later deadlines
//! into the top level and re-cascading them, the wheel has 11 levels, which
//! cover the whole `u64` range, so no deadline is ever out of range. The five
//! extra levels cost 320 slot headers and are skipped in O(1) while empty
//! (see "Finding the next slot").
//!
//! A timer with deadline `d > now` goes to the level of the highest bit in
//! which `d` and `now` differ (bits 0..6 are level 0, 6..12 level 1, ...),
//! into the slot given by `d`'s bits of that level. Hence a level-`l` timer
//! shares all bits above level `l` with `now` and is strictly greater in
//! level `l`'s bits. Two consequences:
//!
//! * No wrap-around: every occupied slot of a level lies after `now`'s own
//!   position in that level, so the next slot is the lowest set bit.
//! * Levels are ordered: every timer at level `l` is later than every timer
//!   at a level below `l` (those lie inside `now`'s current level-`l` slot).
//!   A level-0 slot holds timers with exactly one deadline.
//!
//! # Cascading
//!
//! When [`advance`](TimerWheel::advance) reaches the start of an occupied
//! slot at level `l > 0`, the wheel's internal time jumps to that start and
//! the slot is emptied: timers due exactly then fire, the others are
//! re-placed relative to the new time, which puts them at a lower level. A
//! timer therefore moves at most 10 times (usually 1 to 3), and `advance`
//! costs O(occupied slots passed + timers fired + timers cascaded). Empty
//! ranges cost nothing, so an idle shard may advance by hours at once.
//!
//! # Ordering
//!
//! `advance` pushes due timers in deadline order, ties in insertion order
//! ([`reset`](TimerWheel::reset) counts as a fresh insertion). Slots are FIFO
//! lists and cascading walks a slot in order, appending to the tails of
//! lower slots. Because the wheel cascades as soon as time reaches a slot,
//! an earlier-inserted timer with deadline `d` sits, at any moment, in the
//! same slot that a later insert with deadline `d` is appended to, so ties
//! never reorder. Deadlines at or before `now` (allowed, they fire on the
//! next `advance`) go to a separate due list, sorted by (deadline, insertion)
//! when fired; they all precede any timer in the wheel, whose deadlines are
//! all after `now`.
//!
//! # Finding the next slot and `next_deadline_ms`
//!
//! Each level keeps a 64-bit occupancy bitmap and the wheel a bitmap of
//! non-empty levels, so the earliest occupied slot is two `trailing_zeros`.
//! Each slot also records the minimum deadline inserted into it since it was
//! last empty. [`next_deadline_ms`](TimerWheel::next_deadline_ms) reads that
//! minimum of the earliest slot, in O(1). It is exact unless the timer
//! holding the minimum was removed or reset while others stayed in the slot;
//! then it is a lower bound: never later than the true earliest deadline and
//! never earlier than the slot's start, which is after `now`. Waking at such
//! a stale minimum is not wasted: `advance` then cascades that slot, and the
//! lower slots get exact minimums, so each slot causes at most one early
//! wakeup. Rescanning the slot on removal instead would make
//! `remove`/`reset` O(slot size), and idle timeouts reset round-robin would
//! hit that on every call.
//!
//! # Memory
//!
//! Timers live in a slab (a `Vec` with a free list) threaded into intrusive
//! doubly linked lists, so insert and remove are O(1) and nothing is
//! allocated per timer once the slab reached its high-water mark. Keys carry
//! a generation so stale keys (removed or fired timers, reused entries) are
//! detected; the generation is a wrapping `u32`, so a key held across 2^32
//! reuses of the same entry could alias, which no caller will reach.

use std::fmt;

/// Bits of the deadline consumed by one level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// `ceil(64 / SLOT_BITS)`: enough levels to place any `u64` deadline.
const LEVELS: usize = 11;
/// Number of wheel slots; the list at this index is the due list.
const WHEEL_SLOTS: usize = SLOTS * LEVELS;
/// List index of the due list (deadlines at or before `now` at insertion).
const DUE: usize = WHEEL_SLOTS;
/// Null link in the intrusive lists and the free list.
const NIL: u32 = u32::MAX;

/// Handle to an armed timer, returned by [`TimerWheel::insert`].
///
/// It names a slab entry plus that entry's generation, so a key whose timer
/// fired or was removed is recognised as stale even after the entry is
/// reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

/// One slab entry; live iff `value` is `Some`.
struct Entry<T> {
    value: Option<T>,
    deadline_ms: u64,
    /// Bumped when the entry is freed, invalidating outstanding keys.
    generation: u32,
    /// Index into `lists` of the list holding this entry (live entries only).
    list: u16,
    prev: u32,
    /// Next in its list, or next free entry when the entry is free.
    next: u32,
}

/// Head of one slot's FIFO list.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    /// Smallest deadline linked here since the list was last empty; a lower
    /// bound once the entry holding it is unlinked.
    min_deadline_ms: u64,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        min_deadline_ms: u64::MAX,
    };
}

/// Hierarchical hashed timer wheel with 1 ms resolution; see the module doc.
pub struct TimerWheel<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    /// `WHEEL_SLOTS` slot lists followed by the due list.
    lists: Box<[List]>,
    /// Bit `s` of `occupied[l]` is set iff slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    /// Bit `l` is set iff `occupied[l] != 0`.
    level_mask: u16,
    now_ms: u64,
    len: usize,
    /// Reused buffer for sorting the due list: (deadline, position, index).
    due_scratch: Vec<(u64, u32, u32)>,
    /// Slots emptied by `advance`, so tests can check that jumps are cheap.
    #[cfg(test)]
    slots_processed: u64,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("now_ms", &self.now_ms)
            .field("len", &self.len)
            .field("next_deadline_ms", &self.next_deadline_ms())
            .finish_non_exhaustive()
    }
}

impl<T> TimerWheel<T> {
    /// Creates an empty wheel whose time is 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Creates an empty wheel with room for `n` timers before the slab grows.
    pub fn with_capacity(n: usize) -> Self {
        TimerWheel {
            entries: Vec::with_capacity(n),
            free_head: NIL,
            lists: vec![List::EMPTY; WHEEL_SLOTS + 1].into_boxed_slice(),
            occupied: [0; LEVELS],
            level_mask: 0,
            now_ms: 0,
            len: 0,
            due_scratch: Vec::new(),
            #[cfg(test)]
            slots_processed: 0,
        }
    }

    /// The time passed to the last [`advance`](Self::advance) that moved the
    /// wheel forward (0 initially).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arms a timer for `deadline_ms`. A deadline at or before
    /// [`now_ms`](Self::now_ms) fires on the next `advance`. O(1); allocates
    /// only when the slab has no free entry and no spare capacity.
    ///
    /// # Panics
    ///
    /// If `u32::MAX` timers are armed at once (keys hold a `u32` index).
    pub fn insert(&mut self, deadline_ms: u64, value: T) -> TimerKey {
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let entry = &mut self.entries[index as usize];
            self.free_head = entry.next;
            entry.value = Some(value);
            entry.deadline_ms = deadline_ms;
            index
        } else {
            // NIL (u32::MAX) is the null link, so it can't be an index.
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel slab full: u32::MAX timers armed");
            self.entries.push(Entry {
                value: Some(value),
                deadline_ms,
                generation: 0,
                list: 0,
                prev: NIL,
                next: NIL,
            });
            index
        };
        self.len += 1;
        self.place(index);
        TimerKey {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Disarms the timer and returns its value; `None` if the key is stale
    /// (the timer fired or was removed). O(1).
    pub fn remove(&mut self, key: TimerKey) -> Option<T> {
        let index = self.live_index(key)?;
        self.unlink(index);
        self.release(index)
    }

    /// The value of an armed timer, e.g. to replace a waker in place; `None`
    /// if the key is stale.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        let index = self.live_index(key)?;
        self.entries[index as usize].value.as_mut()
    }

    /// Moves an armed timer to `deadline_ms` (which may be in the past),
    /// keeping its key. For tie ordering it counts as a fresh insertion.
    /// Returns false, changing nothing, if the key is stale. O(1).
    pub fn reset(&mut self, key: TimerKey, deadline_ms: u64) -> bool {
        let Some(index) = self.live_index(key) else {
            return false;
        };
        self.unlink(index);
        self.entries[index as usize].deadline_ms = deadline_ms;
        self.place(index);
        true
    }

    /// Earliest armed deadline, clamped to be no earlier than `now_ms()`.
    ///
    /// Exact unless the earliest timer of the earliest slot was removed or
    /// reset; then it is a lower bound (see the module doc). O(1).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        if self.lists[DUE].head != NIL {
            return Some(self.now_ms);
        }
        let (list, start_ms) = self.next_occupied_slot()?;
        let min_ms = self.lists[list].min_deadline_ms;
        debug_assert!(min_ms >= start_ms && start_ms > self.now_ms);
        Some(min_ms)
    }

    /// Moves time forward to `now_ms` and pushes every timer whose deadline
    /// is `<= now_ms` onto `fired`, in deadline order, ties in insertion
    /// order. Time never goes backwards: a `now_ms` below
    /// [`now_ms()`](Self::now_ms) is treated as `now_ms()`, so only timers
    /// already due fire.
    ///
    /// Cost: O(occupied slots passed + timers fired or cascaded).
    pub fn advance(&mut self, now_ms: u64, fired: &mut Vec<T>) {
        let target_ms = now_ms.max(self.now_ms);
        // Due-list deadlines are <= self.now_ms < every wheel deadline.
        self.fire_due(fired);
        while let Some((list, start_ms)) = self.next_occupied_slot() {
            if start_ms > target_ms {
                break;
            }
            // Internal time jumps to the slot start so that cascaded timers
            // are placed relative to it, keeping the placement invariant.
            self.now_ms = start_ms;
            self.process_slot(list, fired);
        }
        // Every remaining slot starts after target_ms and shares its
        // higher-level window with it, so placements stay valid.
        self.now_ms = target_ms;
    }

    /// Fires the due list in (deadline, insertion) order.
    fn fire_due(&mut self, fired: &mut Vec<T>) {
        let mut cursor = self.lists[DUE].head;
        if cursor == NIL {
            return;
        }
        self.lists[DUE] = List::EMPTY;
        let mut scratch = std::mem::take(&mut self.due_scratch);
        scratch.clear();
        let mut sorted = true;
        let mut position = 0u32;
        while cursor != NIL {
            let entry = &self.entries[cursor as usize];
            if let Some(&(last_ms, _, _)) = scratch.last() {
                sorted &= last_ms <= entry.deadline_ms;
            }
            scratch.push((entry.deadline_ms, position, cursor));
            position = position.wrapping_add(1);
            cursor = entry.next;
        }
        if !sorted {
            // Positions are distinct, so an unstable sort keeps ties in
            // insertion order, and unlike the stable sort it never allocates.
            scratch.sort_unstable();
        }
        for &(_, _, index) in &scratch {
            fired.extend(self.release(index));
        }
        self.due_scratch = scratch;
    }

    /// Empties one wheel slot whose start is `self.now_ms`: timers due now
    /// fire in list order, the rest cascade to lower levels.
    fn process_slot(&mut self, list: usize, fired: &mut Vec<T>) {
        #[cfg(test)]
        {
            self.slots_processed += 1;
        }
        let mut cursor = self.lists[list].head;
        self.lists[list] = List::EMPTY;
        self.clear_occupied(list);
        while cursor != NIL {
            let entry = &self.entries[cursor as usize];
            let next = entry.next;
            if entry.deadline_ms <= self.now_ms {
                fired.extend(self.release(cursor));
            } else {
                // Deadline is in now's slot of this level, so `place` puts
                // it at a strictly lower level, never back into `list`.
                self.place(cursor);
            }
            cursor = next;
        }
    }

    /// The earliest non-empty wheel slot and its start time.
    fn next_occupied_slot(&self) -> Option<(usize, u64)> {
        if self.level_mask == 0 {
            return None;
        }
        let level = self.level_mask.trailing_zeros() as usize;
        let slot = self.occupied[level].trailing_zeros() as usize;
        Some((
            level * SLOTS + slot,
            slot_start_ms(self.now_ms, level, slot),
        ))
    }

    /// Index of the live entry named by `key`, if any.
    fn live_index(&self, key: TimerKey) -> Option<u32> {
        let entry = self.entries.get(key.index as usize)?;
        (entry.generation == key.generation && entry.value.is_some()).then_some(key.index)
    }

    /// Links a live, unlinked entry at the tail of the list its deadline
    /// belongs to relative to `self.now_ms`.
    fn place(&mut self, index: u32) {
        let deadline_ms = self.entries[index as usize].deadline_ms;
        let list = if deadline_ms <= self.now_ms {
            DUE
        } else {
            let level = level_for(self.now_ms, deadline_ms);
            let slot = (deadline_ms >> (level as u32 * SLOT_BITS)) as usize & (SLOTS - 1);
            self.occupied[level] |= 1 << slot;
            self.level_mask |= 1 << level;
            level * SLOTS + slot
        };
        let tail = self.lists[list].tail;
        {
            let entry = &mut self.entries[index as usize];
            // `list` <= WHEEL_SLOTS = 704, which fits u16.
            entry.list = list as u16;
            entry.prev = tail;
            entry.next = NIL;
        }
        if tail == NIL {
            self.lists[list].head = index;
        } else {
            self.entries[tail as usize].next = index;
        }
        let head = &mut self.lists[list];
        head.tail = index;
        head.min_deadline_ms = head.min_deadline_ms.min(deadline_ms);
    }

    /// Unlinks a live entry from its list, clearing occupancy if it empties.
    fn unlink(&mut self, index: u32) {
        let (list, prev, next) = {
            let entry = &self.entries[index as usize];
            (entry.list as usize, entry.prev, entry.next)
        };
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if self.lists[list].head == NIL {
            self.lists[list] = List::EMPTY;
            if list != DUE {
                self.clear_occupied(list);
            }
        }
    }

    fn clear_occupied(&mut self, list: usize) {
        let level = list / SLOTS;
        self.occupied[level] &= !(1 << (list % SLOTS));
        if self.occupied[level] == 0 {
            self.level_mask &= !(1 << level);
        }
    }

    /// Frees an unlinked entry and returns its value (always `Some` for a
    /// live entry; `Option` so callers need no unwrap).
    fn release(&mut self, index: u32) -> Option<T> {
        let entry = &mut self.entries[index as usize];
        let value = entry.value.take();
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = self.free_head;
        self.free_head = index;
        self.len -= 1;
        value
    }
}

/// Level for a deadline after `now_ms`: that of the highest differing bit.
fn level_for(now_ms: u64, deadline_ms: u64) -> usize {
    debug_assert!(deadline_ms > now_ms);
    // The xor is non-zero because the deadline differs from now.
    ((deadline_ms ^ now_ms).ilog2() / SLOT_BITS) as usize
}

/// Start time of `slot` at `level` within `now_ms`'s window of that level.
fn slot_start_ms(now_ms: u64, level: usize, slot: usize) -> u64 {
    let shift = level as u32 * SLOT_BITS;
    let window_shift = shift + SLOT_BITS;
    // The top level's window is the whole u64 range (and a shift by >= 64
    // would overflow).
    let window_base_ms = if window_shift >= u64::BITS {
        0
    } else {
        (now_ms >> window_shift) << window_shift
    };
    window_base_ms + ((slot as u64) << shift)
}

#[cfg(test)]
#[path = "wheel_tests.rs"]
mod tests;
