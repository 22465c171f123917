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
        assert!(n <= 7);
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
