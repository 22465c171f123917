use super::*;

fn string(s: &str, expires_at_ms: Option<u64>) -> Entry {
    Entry {
        value: Value::Str(s.as_bytes().into()),
        expires_at_ms,
    }
}

#[test]
fn expired_keys_vanish_on_access_and_are_counted() {
    let mut store = Store::new(None);
    store.insert(b"a", string("1", Some(1_000)));
    store.insert(b"b", string("2", None));
    assert_eq!(store.expires(), 1);
    assert!(store.get(b"a", 999).is_some());
    assert!(store.get(b"a", 1_000).is_none());
    assert_eq!(store.len(), 1);
    assert_eq!(store.expires(), 0);
    assert_eq!(store.stats.expired_keys, 1);
}

#[test]
fn the_sweep_removes_expired_keys_within_its_budget() {
    let mut store = Store::new(None);
    for i in 0..100 {
        let at = if i % 2 == 0 { Some(10) } else { None };
        store.insert(format!("k{i}").as_bytes(), string("v", at));
    }
    assert_eq!(store.sweep(5, 1_000), 0, "nothing due yet");
    let mut removed = 0;
    let mut rounds = 0;
    while store.expires() > 0 {
        let n = store.sweep(10, 7);
        // A sweep takes at least one whole segment (up to SPLIT_AT keys; the service's
        // budget is larger), here the only one.
        assert!(n <= 7.max(SPLIT_AT));
        removed += n;
        rounds += 1;
        assert!(rounds < 100, "the sweep must make progress");
    }
    assert_eq!(removed, 50);
    assert_eq!(store.len(), 50);
}

#[test]
fn used_bytes_follow_inserts_and_removes() {
    let mut store = Store::new(Some(200));
    assert!(!store.over_limit());
    store.insert(b"key", string("value", None));
    let one = store.used_bytes();
    assert_eq!(one, memory::KEY_OVERHEAD + 3 + 5);
    store.insert(b"key", string("v", Some(5)));
    assert_eq!(store.used_bytes(), memory::KEY_OVERHEAD + 3 + 1);
    store.insert(b"big", string(&"x".repeat(200), None));
    assert!(store.over_limit());
    store.remove(b"big");
    store.remove(b"key");
    assert_eq!(store.used_bytes(), 0);
    assert_eq!(store.expires(), 0);
}

/// Runs one command through the shard's command table and returns the reply's text.
fn run(store: &mut Store, args: &[&[u8]]) -> String {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    let spec = crate::commands::table::lookup(&args[0]).expect("known command");
    let mut out = Vec::new();
    crate::commands::run(store, spec, &args, 0, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn keys_and_values_across_the_inline_size_behave_alike() {
    let mut store = Store::new(None);
    // Keys of 22 (inline) and 23 bytes (heap) that share a prefix, values around 30 bytes.
    let short = vec![b'k'; 22];
    let long = vec![b'k'; 23];
    for key in [&short, &long] {
        let value = vec![b'v'; 29];
        assert_eq!(run(&mut store, &[b"SET", key, &value]), "+OK\r\n");
        // 29 + 1 stays inline, + 2 moves the value to the heap.
        assert_eq!(run(&mut store, &[b"APPEND", key, b"a"]), ":30\r\n");
        assert_eq!(run(&mut store, &[b"APPEND", key, b"bc"]), ":32\r\n");
        let want = format!("$32\r\n{}abc\r\n", "v".repeat(29));
        assert_eq!(run(&mut store, &[b"GET", key]), want);
        assert_eq!(run(&mut store, &[b"STRLEN", key]), ":32\r\n");
    }
    assert_eq!(store.len(), 2);
    // Both lengths count, whatever their representation.
    assert_eq!(
        store.used_bytes(),
        2 * memory::KEY_OVERHEAD + 22 + 23 + 2 * 32
    );
    assert!(store.get(&long[..22], 0).is_some(), "the 22-byte key");
    assert!(store.get(&[b'k'; 24], 0).is_none());
    assert_eq!(run(&mut store, &[b"DEL", &long, &short]), ":2\r\n");
    assert_eq!(store.used_bytes(), 0);
}

/// Every key SCAN returns from `store`, following the cursor from 0 with `count`, and the
/// number of calls it took. `between` runs between every two calls.
fn scan_all(
    store: &mut Store,
    count: usize,
    mut between: impl FnMut(&mut Store),
) -> (Vec<Vec<Vec<u8>>>, usize) {
    let mut per_call = Vec::new();
    let mut cursor = 0;
    loop {
        let (keys, next) = store.scan(cursor, count, 0, |_, _| true);
        per_call.push(keys);
        // Every call moves on by at least one slot.
        assert!(
            per_call.len() <= SLOTS,
            "SCAN must finish within {SLOTS} calls"
        );
        if next == 0 {
            return (per_call, cursor);
        }
        assert!(
            next > cursor,
            "the cursor moves forward: {cursor} -> {next}"
        );
        cursor = next;
        between(store);
    }
}

#[test]
fn scan_returns_every_stable_key_exactly_once_while_the_map_grows() {
    let mut store = Store::new(None);
    let stable: Vec<String> = (0..10_000).map(|i| format!("stable:{i}")).collect();
    for k in &stable {
        store.insert(k.as_bytes(), string("v", None));
    }
    // Between every two calls: 2000 new keys in, the 1500 oldest of the new ones out. The
    // shard grows by 500 keys a call, through several doublings of its maps and many
    // segment splits, and churns (a rehash or a removal reorders a map's iteration: SCAN
    // by position then repeats and skips keys).
    let (mut inserted, mut removed) = (0, 0);
    let mut seen = std::collections::HashMap::<Vec<u8>, usize>::new();
    let mut cursor = 0;
    for call in 0.. {
        // Every call moves on by at least one slot.
        assert!(call < SLOTS, "SCAN must finish within {SLOTS} calls");
        let (keys, next) = store.scan(cursor, 10, 0, |_, _| true);
        for key in keys.into_iter().filter(|k| k.starts_with(b"stable:")) {
            let n = seen.entry(key).or_default();
            *n += 1;
            assert_eq!(*n, 1, "a stable key returned again in call {call}");
        }
        if next == 0 {
            break;
        }
        cursor = next;
        for _ in 0..2_000 {
            store.insert(format!("new:{inserted}").as_bytes(), string("v", None));
            inserted += 1;
        }
        for _ in 0..1_500 {
            assert!(store.remove(format!("new:{removed}").as_bytes()).is_some());
            removed += 1;
        }
    }
    let segments_before = 10_000 / SPLIT_AT;
    assert!(
        store.segments.len() > 3 * segments_before,
        "{} segments",
        store.segments.len()
    );
    assert!(
        inserted - removed > 20_000,
        "the shard grew by {} keys only",
        inserted - removed
    );
    let missed = stable.iter().filter(|k| !seen.contains_key(k.as_bytes()));
    assert_eq!(missed.count(), 0, "stable keys missed");
}

#[test]
fn a_scan_call_looks_at_about_count_keys_not_at_the_whole_shard() {
    let mut store = Store::new(None);
    let n = 200_000;
    for i in 0..n {
        store.insert(format!("key:{i:012}").as_bytes(), string("v", None));
    }
    let (first, next) = store.scan(0, 10, 0, |_, _| true);
    assert!(next > 0 && !first.is_empty());
    let (per_call, last_cursor) = scan_all(&mut store, 10, |_| {});
    // Everything once, in about one call per segment (a segment holds SPLIT_AT / 2 to
    // SPLIT_AT keys, more than COUNT), each call returning (= looking at, with no filter)
    // at most COUNT + one segment's worth of keys: never a walk over the keys before the
    // cursor, nor over the whole shard.
    let returned: usize = per_call.iter().map(Vec::len).sum();
    let largest = per_call.iter().map(Vec::len).max().unwrap();
    assert_eq!(returned, n);
    let calls = per_call.len();
    assert!(
        (n / SPLIT_AT..=4 * n / SPLIT_AT).contains(&calls),
        "{calls} calls for {n} keys"
    );
    assert!(largest <= 10 + SPLIT_AT, "a call returned {largest} keys");
    assert!(last_cursor < SLOTS);
    // A cursor past the last slot: nothing, and this shard is done.
    assert_eq!(store.scan(SLOTS, 10, 0, |_, _| true), (vec![], 0));
    assert_eq!(store.scan(usize::MAX, 10, 0, |_, _| true), (vec![], 0));
}

#[test]
fn the_sweep_covers_a_large_shard_in_bounded_ticks() {
    let mut store = Store::new(None);
    let n = 20_000;
    for i in 0..n {
        let at = if i % 4 == 0 { Some(10) } else { None };
        store.insert(format!("key:{i}").as_bytes(), string("v", at));
    }
    let budget = 1_000;
    // One lap over the shard takes about n / budget ticks (each examines at most `budget`
    // keys, give or take a segment); two laps are plenty.
    for _ in 0..2 * n / budget {
        let removed = store.sweep(10, budget);
        assert!(removed <= budget);
    }
    assert_eq!(store.expires(), 0);
    assert_eq!(store.len(), n - n / 4);
}

#[test]
fn a_cursor_from_before_a_flush_still_works() {
    let mut store = Store::new(None);
    for i in 0..5_000 {
        store.insert(format!("a:{i}").as_bytes(), string("v", None));
    }
    let (_, cursor) = store.scan(0, 10, 0, |_, _| true);
    assert!(cursor > 0);
    // FLUSHALL merges the segments back into one: the cursor now points inside it.
    store.clear();
    for i in 0..100 {
        store.insert(format!("b:{i}").as_bytes(), string("v", None));
    }
    let (keys, next) = store.scan(cursor, 1_000, 0, |_, _| true);
    assert_eq!(next, 0);
    let (all, _) = store.scan(0, 1_000, 0, |_, _| true);
    assert_eq!(all.len(), 100);
    // The keys of the slots from the cursor on: fewer than all, none twice.
    assert!(keys.len() < 100);
    assert!(keys.iter().all(|k| slot_of(k) >= cursor));
}
