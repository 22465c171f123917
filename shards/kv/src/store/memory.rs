//! How many bytes an entry counts for, for `--maxmemory` and INFO memory.
//!
//! An estimate, not the allocator's count: the length of the key, the lengths of the
//! value's bytes (string, hash fields and values, list elements), a fixed overhead per key
//! and one per element, close to what Redis reports for small values.
//!
//! It counts lengths whatever the representation: a key of up to 22 bytes or a string of up
//! to 30 bytes lives inline in the map's slot ([`super::bytes`]) and holds no heap block of
//! its own, yet counts its length as a heap-held one does. So `--maxmemory` keeps meaning
//! the same amount of data for every size (a 22- and a 23-byte key differ by one byte here,
//! not by an allocation) and the same as before keys and strings went inline. What it does
//! not count, for any entry: the map's spare slots (up to 1/8 of the table, and half of it
//! just after a growth), spare capacity of a grown string, and the allocator's rounding.
//! A slot itself is 80 bytes (a 24-byte [`super::Key`] and a 56-byte [`Entry`]) plus a
//! control byte, more than `KEY_OVERHEAD`: the estimate errs low for small entries.

use super::{Entry, Value};

/// Fixed bytes per key (unchanged since keys held two allocations; see the module docs).
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
            Value::Set(s) => s.iter().map(|v| v.len() + ELEMENT_OVERHEAD).sum(),
            Value::ZSet(z) => z.iter().map(|(m, _)| m.len() + 8 + ELEMENT_OVERHEAD).sum(),
        }
}
