//! How many bytes an entry counts for, for `--maxmemory` and INFO memory. An estimate of
//! the heap the entry holds: key and value bytes plus a fixed overhead per key and per
//! element (allocation headers, map slots), close to what Redis reports for small values.

use super::{Entry, Value};

/// Fixed bytes per key: the map slot, the entry and two allocation headers.
pub const KEY_OVERHEAD: usize = 64;
/// Fixed bytes per hash field or list element.
pub const ELEMENT_OVERHEAD: usize = 32;

/// The bytes `key` and `entry` count for.
pub fn entry_size(key: &[u8], entry: &Entry) -> usize {
    KEY_OVERHEAD
        + key.len()
        + match &entry.value {
            Value::Str(s) => s.len(),
            Value::Hash(h) => h
                .iter()
                .map(|(f, v)| f.len() + v.len() + ELEMENT_OVERHEAD)
                .sum(),
            Value::List(l) => l.iter().map(|v| v.len() + ELEMENT_OVERHEAD).sum(),
        }
}
