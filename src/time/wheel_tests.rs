//! Unit tests for [`super::TimerWheel`], kept apart so `wheel.rs` stays short.

use std::collections::BTreeMap;

use super::*;

const HOUR_MS: u64 = 3_600_000;
const YEAR_MS: u64 = 365 * 24 * HOUR_MS;

fn advance<T>(wheel: &mut TimerWheel<T>, now_ms: u64) -> Vec<T> {
    let mut fired = Vec::new();
    wheel.advance(now_ms, &mut fired);
    fired
}

#[test]
fn fires_in_deadline_order() {
    let mut wheel = TimerWheel::new();
    for deadline_ms in [500, 3, 70_000, 64, 63, 4096, 1, 65] {
        wheel.insert(deadline_ms, deadline_ms);
    }
    assert_eq!(wheel.len(), 8);
    assert_eq!(wheel.next_deadline_ms(), Some(1));
    assert_eq!(advance(&mut wheel, 0), Vec::<u64>::new());
    assert_eq!(advance(&mut wheel, 64), vec![1, 3, 63, 64]);
    assert_eq!(wheel.now_ms(), 64);
    assert_eq!(wheel.next_deadline_ms(), Some(65));
    assert_eq!(advance(&mut wheel, 100_000), vec![65, 500, 4096, 70_000]);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline_ms(), None);
}

#[test]
fn ties_fire_in_insertion_order() {
    let mut wheel = TimerWheel::new();
    // "a" waits at a high level and cascades; "b" and "c" are inserted
    // closer to the deadline, at lower levels, and must still come after.
    wheel.insert(5000, "a");
    advance(&mut wheel, 4000);
    wheel.insert(5000, "b");
    advance(&mut wheel, 4990);
    wheel.insert(5000, "c");
    let d = wheel.insert(5000, "d");
    wheel.insert(5000, "e");
    // A reset counts as a fresh insertion, even to the same deadline.
    assert!(wheel.reset(d, 5000));
    assert_eq!(advance(&mut wheel, 5000), vec!["a", "b", "c", "e", "d"]);
}

#[test]
fn remove_and_stale_keys() {
    let mut wheel = TimerWheel::with_capacity(4);
    let a = wheel.insert(10, 'a');
    let b = wheel.insert(20, 'b');
    assert_eq!(wheel.remove(a), Some('a'));
    assert_eq!(wheel.remove(a), None, "double remove");
    assert_eq!(wheel.get_mut(a), None);
    assert!(!wheel.reset(a, 5));
    // The freed entry is reused; the old key must not reach the new timer.
    let c = wheel.insert(30, 'c');
    assert_ne!(a, c);
    assert_eq!(wheel.remove(a), None);
    *wheel.get_mut(c).expect("c is armed") = 'C';
    assert_eq!(advance(&mut wheel, 25), vec!['b']);
    assert_eq!(wheel.remove(b), None, "fired key is stale");
    assert_eq!(wheel.get_mut(b), None);
    assert!(!wheel.reset(b, 100));
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.remove(c), Some('C'));
    assert!(wheel.is_empty());
    // Keys from another wheel or out of range never panic.
    let mut other: TimerWheel<char> = TimerWheel::new();
    assert_eq!(other.remove(c), None);
    assert!(!other.reset(c, 1));
    assert_eq!(advance(&mut wheel, 1000), Vec::<char>::new());
}

#[test]
fn reset_moves_armed_timers() {
    let mut wheel = TimerWheel::new();
    let a = wheel.insert(100, 'a');
    let b = wheel.insert(200_000, 'b');
    let c = wheel.insert(50, 'c');
    assert!(wheel.reset(a, 300_000)); // later, to another level
    assert!(wheel.reset(b, 10)); // earlier
    assert_eq!(wheel.next_deadline_ms(), Some(10));
    assert_eq!(advance(&mut wheel, 60), vec!['b', 'c']);
    assert!(!wheel.reset(c, 70), "fired");
    assert!(wheel.reset(a, 20)); // into the past: due on the next advance
    assert_eq!(wheel.next_deadline_ms(), Some(60));
    assert_eq!(advance(&mut wheel, 60), vec!['a']);
    assert!(wheel.is_empty());
}

#[test]
fn past_deadlines_fire_on_next_advance_in_order() {
    let mut wheel = TimerWheel::new();
    advance(&mut wheel, 1000);
    for deadline_ms in [500, 10, 1000, 5, 10] {
        wheel.insert(deadline_ms, deadline_ms);
    }
    wheel.insert(1001, 1001);
    assert_eq!(wheel.next_deadline_ms(), Some(1000), "never before now");
    // Going backwards doesn't move time but still fires what is due.
    assert_eq!(advance(&mut wheel, 3), vec![5, 10, 10, 500, 1000]);
    assert_eq!(wheel.now_ms(), 1000);
    assert_eq!(wheel.next_deadline_ms(), Some(1001));
    assert_eq!(advance(&mut wheel, 1001), vec![1001]);
}

#[test]
fn huge_jumps_skip_empty_ranges() {
    let mut wheel = TimerWheel::new();
    advance(&mut wheel, 17);
    wheel.insert(HOUR_MS, 1);
    wheel.insert(2 * YEAR_MS, 2);
    wheel.insert(1 << 40, 3);
    wheel.insert(u64::MAX - 1, 4);
    wheel.insert(u64::MAX, 5);
    assert_eq!(wheel.next_deadline_ms(), Some(HOUR_MS));
    assert_eq!(advance(&mut wheel, 3 * YEAR_MS), vec![1, 2]);
    assert!(wheel.slots_processed < 40, "{}", wheel.slots_processed);
    assert_eq!(wheel.next_deadline_ms(), Some(1 << 40));
    assert_eq!(advance(&mut wheel, u64::MAX - 1), vec![3, 4]);
    assert_eq!(wheel.next_deadline_ms(), Some(u64::MAX));
    assert_eq!(advance(&mut wheel, u64::MAX), vec![5]);
    assert!(wheel.slots_processed < 80, "{}", wheel.slots_processed);
    // An empty wheel jumps for free.
    let before = wheel.slots_processed;
    let mut idle: TimerWheel<()> = TimerWheel::new();
    advance(&mut idle, 10 * YEAR_MS);
    assert_eq!(idle.slots_processed, 0);
    assert_eq!(idle.now_ms(), 10 * YEAR_MS);
    assert_eq!(wheel.slots_processed, before);
}

#[test]
fn next_deadline_is_exact_or_a_lower_bound_after_removal() {
    let mut wheel = TimerWheel::new();
    // 10_000 and 10_500 share one 4096 ms slot at level 2.
    let first = wheel.insert(10_000, 1);
    wheel.insert(10_500, 2);
    wheel.insert(5_000, 3);
    assert_eq!(wheel.next_deadline_ms(), Some(5_000), "exact, not rounded");
    assert_eq!(advance(&mut wheel, 5_000), vec![3]);
    assert_eq!(wheel.next_deadline_ms(), Some(10_000));
    wheel.remove(first);
    let bound_ms = wheel.next_deadline_ms().expect("one timer armed");
    assert!(bound_ms > wheel.now_ms() && bound_ms <= 10_500);
    // Waking at the bound cascades the slot and makes it exact again.
    assert_eq!(advance(&mut wheel, bound_ms), Vec::<i32>::new());
    assert_eq!(wheel.next_deadline_ms(), Some(10_500));
}

#[test]
fn driving_by_next_deadline_has_few_empty_wakeups() {
    let mut wheel = TimerWheel::new();
    let mut keys = Vec::new();
    for i in 0..1000u64 {
        keys.push(wheel.insert(30_000 + i * 37, i));
    }
    // Remove every other timer, including the earliest ones, so slot
    // minimums go stale.
    for key in keys.iter().step_by(2) {
        wheel.remove(*key);
    }
    let (mut fired, mut empty_wakeups, mut all) = (Vec::new(), 0, Vec::new());
    while let Some(next_ms) = wheel.next_deadline_ms() {
        wheel.advance(next_ms, &mut fired);
        if fired.is_empty() {
            empty_wakeups += 1;
        }
        all.append(&mut fired);
    }
    let expected: Vec<u64> = (0..1000).filter(|i| i % 2 == 1).collect();
    assert_eq!(all, expected);
    // At most one early wakeup per stale slot above level 0.
    assert!(empty_wakeups <= 12, "{empty_wakeups}");
}

/// Seeded xorshift64 so failures reproduce without a rand crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_deadline_ms(rng: &mut XorShift, now_ms: u64) -> u64 {
    match rng.below(100) {
        0..10 => now_ms.saturating_sub(rng.below(1000)),
        10..50 => now_ms.saturating_add(rng.below(64)),
        50..75 => now_ms.saturating_add(rng.below(10_000)),
        75..90 => now_ms.saturating_add(rng.below(1 << 30)),
        90..98 => now_ms.saturating_add(rng.below(1 << 45)),
        _ => u64::MAX - rng.below(3),
    }
}

fn random_advance_ms(rng: &mut XorShift, now_ms: u64) -> u64 {
    match rng.below(1000) {
        0..600 => now_ms.saturating_add(rng.below(5)),
        600..900 => now_ms.saturating_add(rng.below(300)),
        900..980 => now_ms.saturating_add(rng.below(100_000)),
        980..990 => now_ms.saturating_sub(rng.below(50)),
        990..999 => now_ms.saturating_add(rng.below(1 << 33)),
        _ => now_ms.saturating_add(rng.below(1 << 50)),
    }
}

/// Runs random operations against a `BTreeMap` keyed by (deadline, seq)
/// and checks every fired sequence, `len` and `next_deadline_ms`.
fn check_against_model(seed: u64, ops: usize, removals: bool) {
    let mut rng = XorShift(seed);
    let mut wheel = TimerWheel::new();
    let mut model: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    // Armed timers: key, model key.
    let mut live: Vec<(TimerKey, (u64, u64))> = Vec::new();
    let mut stale: Vec<TimerKey> = Vec::new();
    let (mut seq, mut next_id) = (0u64, 0u64);
    for op in 0..ops {
        let now_ms = wheel.now_ms();
        let choice = rng.below(100);
        if choice < 45 {
            let deadline_ms = random_deadline_ms(&mut rng, now_ms);
            let key = wheel.insert(deadline_ms, next_id);
            model.insert((deadline_ms, seq), next_id);
            live.push((key, (deadline_ms, seq)));
            seq += 1;
            next_id += 1;
        } else if choice < 70 {
            let target_ms = random_advance_ms(&mut rng, now_ms);
            let effective_ms = target_ms.max(now_ms);
            let mut expected = Vec::new();
            while let Some(entry) = model.first_entry() {
                if entry.key().0 > effective_ms {
                    break;
                }
                expected.push(entry.remove());
            }
            let fired = advance(&mut wheel, target_ms);
            assert_eq!(
                fired, expected,
                "seed {seed} op {op}: advance to {target_ms}"
            );
            assert_eq!(wheel.now_ms(), effective_ms);
            let (gone, kept) = live.into_iter().partition(|(_, k)| k.0 <= effective_ms);
            live = kept;
            stale.extend(gone.into_iter().map(|(key, _)| key));
        } else if choice < 80 && !live.is_empty() {
            let i = rng.below(live.len() as u64) as usize;
            let (key, model_key) = live[i];
            let value = wheel.get_mut(key).expect("live key");
            assert_eq!(Some(&*value), model.get(&model_key));
            *value = next_id;
            model.insert(model_key, next_id);
            next_id += 1;
        } else if removals && choice < 90 && !live.is_empty() {
            let i = rng.below(live.len() as u64) as usize;
            let (key, model_key) = live.swap_remove(i);
            assert_eq!(wheel.remove(key), model.remove(&model_key));
            stale.push(key);
        } else if removals && !live.is_empty() {
            let i = rng.below(live.len() as u64) as usize;
            let (key, old_model_key) = live[i];
            let deadline_ms = random_deadline_ms(&mut rng, now_ms);
            assert!(wheel.reset(key, deadline_ms));
            let value = model.remove(&old_model_key).expect("live in model");
            model.insert((deadline_ms, seq), value);
            live[i].1 = (deadline_ms, seq);
            seq += 1;
        } else if let Some(&key) = stale.get(rng.below(stale.len() as u64 + 1) as usize) {
            assert_eq!(wheel.remove(key), None);
            assert_eq!(wheel.get_mut(key), None);
            assert!(!wheel.reset(key, now_ms));
        }

        assert_eq!(wheel.len(), model.len(), "seed {seed} op {op}");
        let now_ms = wheel.now_ms();
        let exact_ms = model.keys().next().map(|&(d, _)| d.max(now_ms));
        let got_ms = wheel.next_deadline_ms();
        if removals {
            assert_eq!(got_ms.is_some(), exact_ms.is_some(), "seed {seed} op {op}");
            if let (Some(got_ms), Some(exact_ms)) = (got_ms, exact_ms) {
                assert!(
                    now_ms <= got_ms && got_ms <= exact_ms,
                    "seed {seed} op {op}: now {now_ms} got {got_ms} exact {exact_ms}"
                );
            }
        } else {
            assert_eq!(got_ms, exact_ms, "seed {seed} op {op}");
        }
    }
    // Drain: everything left fires, in order.
    let expected: Vec<u64> = model.into_values().collect();
    assert_eq!(
        advance(&mut wheel, u64::MAX),
        expected,
        "seed {seed}: drain"
    );
    assert!(wheel.is_empty());
}

#[test]
fn random_ops_match_model_without_removals() {
    for seed in 1..=20u64 {
        check_against_model(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 5_000, false);
    }
}

#[test]
fn random_ops_match_model_with_removals_and_resets() {
    for seed in 1..=20u64 {
        check_against_model(seed.wrapping_mul(0x2545_F491_4F6C_DD1D), 5_000, true);
    }
}
