use super::*;

fn string(s: &str, expires_at_ms: Option<u64>) -> Entry {
    Entry {
        value: Value::Str(s.as_bytes().to_vec()),
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
