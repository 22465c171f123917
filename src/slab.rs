//! The one slab of the kernel: values in reusable slots, named by generational keys.
//!
//! Every table a shard keeps (tasks, connections, listeners, in-flight operations, drain
//! waiters, batches of mesh calls awaiting their reply) is a `Slab`. A [`Key`] is a slot index plus the slot's
//! generation; the generation moves on each time the slot is freed, so a key kept past its
//! value's removal (a late completion, a late wake-up) finds nothing instead of the slot's
//! next tenant. Generations wrap within [`GENERATION_BITS`] bits, the width the driver's
//! completion token has room for.
//!
//! Freed slots are reused last-freed-first (their memory is warm). Nothing is allocated once
//! the slab has grown to its working size.

#![forbid(unsafe_code)]

/// Bits of a key's generation (the driver's token carries 24).
pub(crate) const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// Names one value of a [`Slab`] for as long as it stays there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// Rebuilds a key from its parts (as carried in a completion token).
    pub(crate) fn from_parts(index: u32, generation: u32) -> Self {
        Key {
            index,
            generation: generation & GENERATION_MASK,
        }
    }

    pub(crate) fn index(self) -> u32 {
        self.index
    }

    pub(crate) fn generation(self) -> u32 {
        self.generation
    }
}

struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

/// Values in reusable slots; see the module docs.
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`; returns its key.
    #[inline(always)]
    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.insert_with(|_| value)
    }

    /// Stores the value `make` builds from its own key (a value that names itself).
    #[inline(always)]
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(Key) -> T) -> Key {
        let index = match self.free.pop() {
            Some(index) => index,
            None => self.grow(),
        };
        let entry = &mut self.entries[index as usize];
        debug_assert!(entry.value.is_none(), "a free slot holds a value");
        let key = Key {
            index,
            generation: entry.generation,
        };
        entry.value = Some(make(key));
        self.len += 1;
        key
    }

    /// A new, empty slot at the end (the slab grows to its working size once).
    #[cold]
    fn grow(&mut self) -> u32 {
        let index = u32::try_from(self.entries.len()).expect("slab index fits in u32");
        self.entries.push(Entry {
            generation: 0,
            value: None,
        });
        index
    }

    /// The value `key` names, if it is still there.
    #[inline]
    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let entry = self.entries.get(key.index as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.value.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let entry = self.entries.get_mut(key.index as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.value.as_mut()
    }

    /// Takes the value out and frees its slot; the key (and every copy of it) goes stale.
    #[inline(always)]
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let entry = self.entries.get_mut(key.index as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        let value = entry.value.take()?;
        entry.generation = (entry.generation + 1) & GENERATION_MASK;
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Values stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every value with its key, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let key = Key {
                    index: index as u32,
                    generation: entry.generation,
                };
                entry.value.as_ref().map(|value| (key, value))
            })
    }

    /// Every value with its key, mutably, in slot order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (Key, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(index, entry)| {
                let key = Key {
                    index: index as u32,
                    generation: entry.generation,
                };
                entry.value.as_mut().map(|value| (key, value))
            })
    }

    /// The keys of every value, in slot order (collected: the caller may then change the
    /// slab while it goes through them).
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.iter().map(|(key, _)| key).collect()
    }

    /// Removes every value, in slot order; every key goes stale.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let keys = self.keys();
        keys.into_iter()
            .filter_map(|key| self.remove(key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_key_goes_stale_and_its_slot_is_reused_under_a_new_generation() {
        let mut slab = Slab::default();
        let first = slab.insert("a");
        assert_eq!(slab.get(first), Some(&"a"));
        assert_eq!(slab.remove(first), Some("a"));
        assert_eq!(slab.get(first), None, "stale key");
        assert_eq!(slab.remove(first), None, "removing twice is a no-op");
        let second = slab.insert("b");
        assert_eq!(second.index(), first.index(), "the slot is reused");
        assert_ne!(second.generation(), first.generation());
        assert_eq!(
            slab.get(first),
            None,
            "the old key does not see the new tenant"
        );
        assert_eq!(slab.get(second), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        let mut slab = Slab::default();
        let mut key = slab.insert(0u8);
        for _ in 0..(1u32 << GENERATION_BITS) {
            slab.remove(key);
            key = slab.insert(0);
            assert!(key.generation() <= GENERATION_MASK);
        }
        assert_eq!(key.generation(), 0, "wrapped back to 0 after 2^24 reuses");
        assert_eq!(Key::from_parts(3, GENERATION_MASK + 2).generation(), 1);
    }

    #[test]
    fn insert_with_lets_a_value_know_its_key_and_drain_empties() {
        let mut slab = Slab::default();
        let a = slab.insert_with(|key| key);
        let b = slab.insert_with(|key| key);
        assert_eq!(slab.get(a), Some(&a));
        assert_eq!(slab.get(b), Some(&b));
        assert_eq!(slab.keys(), vec![a, b]);
        assert_eq!(slab.drain(), vec![a, b]);
        assert!(slab.is_empty());
        assert_eq!(slab.get(a), None);
    }
}
