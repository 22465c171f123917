//! Byte strings that keep short contents inline: the store's keys and string values.
//!
//! Why: every key used to be its own `Vec<u8>`, so a map probe that compared keys chased a
//! pointer to a separate heap block (a cache miss per probe on a large keyspace), and every
//! SET allocated and freed a key and a value. Kept inline, a short key sits in the map's
//! slot next to its entry, and short keys and values cost no allocation at all.
//!
//! [`SmallBytes`] holds up to `N` bytes in place and longer contents in a heap buffer `H`.
//! Contents of `N` bytes or fewer are always inline (every constructor and every growth
//! keeps that), so one content has one representation; equality and hashing still go
//! through the bytes, never the representation. `Hash` is `[u8]`'s and `Borrow<[u8]>` is
//! implemented, so a map keyed by these is looked up with a plain `&[u8]`.

use std::{
    borrow::Borrow,
    fmt,
    hash::{Hash, Hasher},
    ops::Deref,
};

/// Up to `N` bytes inline, longer contents in `H` (`Box<[u8]>` or `Vec<u8>`).
#[derive(Clone)]
pub enum SmallBytes<const N: usize, H> {
    /// `len <= N`; the bytes past `len` are zero and meaningless.
    Inline { len: u8, buf: [u8; N] },
    /// More than `N` bytes.
    Heap(H),
}

/// A key: 22 bytes inline, the whole value 24 bytes, the size of the `Vec<u8>` it replaces
/// (a tag byte, a length byte, the bytes). Keys never change, so a longer one is a
/// `Box<[u8]>`, 16 bytes, which keeps the enum at 24.
pub type Key = SmallBytes<22, Box<[u8]>>;

/// A string value: 30 bytes inline, 32 bytes in all. `Value` is 40 bytes for its hash and
/// list variants anyway, so the wider inline buffer costs no space. APPEND grows values in
/// place, so a longer one is a `Vec<u8>` (spare capacity keeps repeated appends amortised).
pub type Str = SmallBytes<30, Vec<u8>>;

impl<const N: usize, H> SmallBytes<N, H> {
    /// Checked at compile time where a `SmallBytes<N, _>` is built: the length is a `u8`.
    const FITS: () = assert!(
        N <= u8::MAX as usize,
        "inline capacity must fit a u8 length"
    );

    /// The bytes of `data` inline, when they fit.
    fn inline(data: &[u8]) -> Option<Self> {
        let () = Self::FITS;
        if data.len() > N {
            return None;
        }
        let mut buf = [0u8; N];
        buf[..data.len()].copy_from_slice(data);
        Some(SmallBytes::Inline {
            len: data.len() as u8,
            buf,
        })
    }

    /// True when the bytes are held in place (no heap buffer).
    pub fn is_inline(&self) -> bool {
        matches!(self, SmallBytes::Inline { .. })
    }
}

impl<const N: usize, H: Deref<Target = [u8]>> SmallBytes<N, H> {
    /// Bytes of heap this holds beyond itself (0 inline): the length of the heap buffer,
    /// not counting spare capacity or the allocator's header.
    pub fn heap_len(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Heap(h) => h.len(),
        }
    }
}

impl<const N: usize> SmallBytes<N, Vec<u8>> {
    /// Appends `more`, moving to the heap once the contents outgrow `N` bytes.
    pub fn extend_from_slice(&mut self, more: &[u8]) {
        match self {
            SmallBytes::Heap(v) => v.extend_from_slice(more),
            SmallBytes::Inline { len, buf } => {
                let old = usize::from(*len);
                let new = old + more.len();
                if new <= N {
                    buf[old..new].copy_from_slice(more);
                    *len = new as u8;
                } else {
                    let mut v = Vec::with_capacity(new);
                    v.extend_from_slice(&buf[..old]);
                    v.extend_from_slice(more);
                    *self = SmallBytes::Heap(v);
                }
            }
        }
    }
}

impl<const N: usize, H: Deref<Target = [u8]>> Deref for SmallBytes<N, H> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, buf } => &buf[..usize::from(*len)],
            SmallBytes::Heap(h) => h,
        }
    }
}

impl<const N: usize, H: Deref<Target = [u8]>> AsRef<[u8]> for SmallBytes<N, H> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl<const N: usize, H: Deref<Target = [u8]>> Borrow<[u8]> for SmallBytes<N, H> {
    fn borrow(&self) -> &[u8] {
        self
    }
}

/// `[u8]`'s hash exactly (length prefix, then the bytes), as `Borrow<[u8]>` requires: a map
/// hashes the `&[u8]` it is asked for and must land on the slot this was stored in.
impl<const N: usize, H: Deref<Target = [u8]>> Hash for SmallBytes<N, H> {
    #[inline]
    fn hash<S: Hasher>(&self, state: &mut S) {
        (**self).hash(state);
    }
}

impl<const N: usize, H: Deref<Target = [u8]>> PartialEq for SmallBytes<N, H> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<const N: usize, H: Deref<Target = [u8]>> Eq for SmallBytes<N, H> {}

impl<const N: usize, H: Deref<Target = [u8]>> PartialEq<[u8]> for SmallBytes<N, H> {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl<const N: usize, H: Deref<Target = [u8]>> fmt::Debug for SmallBytes<N, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Copies short contents inline; longer ones are copied into one heap buffer.
impl<const N: usize, H: for<'a> From<&'a [u8]>> From<&[u8]> for SmallBytes<N, H> {
    fn from(data: &[u8]) -> Self {
        Self::inline(data).unwrap_or_else(|| SmallBytes::Heap(H::from(data)))
    }
}

/// Short contents are copied inline and the vector freed; a longer vector becomes the heap
/// buffer without a copy (for `Box<[u8]>`, unless it has spare capacity to shed).
impl<const N: usize, H: From<Vec<u8>>> From<Vec<u8>> for SmallBytes<N, H> {
    fn from(data: Vec<u8>) -> Self {
        Self::inline(&data).unwrap_or_else(|| SmallBytes::Heap(H::from(data)))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;
    use crate::hash::{FxBuild, FxHashMap};

    fn of_len(n: usize) -> Vec<u8> {
        (0..n).map(|i| b'a' + (i % 26) as u8).collect()
    }

    #[test]
    fn sizes_are_as_documented() {
        // The point of the type: a key costs no more than the Vec<u8> it replaces, and a
        // string value does not grow `Value`.
        assert_eq!(size_of::<Key>(), size_of::<Vec<u8>>());
        assert_eq!(size_of::<Str>(), 32);
        assert_eq!(size_of::<super::super::Value>(), 40);
        assert_eq!(size_of::<super::super::Entry>(), 56, "as memory.rs says");
    }

    #[test]
    fn contents_up_to_the_capacity_are_inline_and_longer_ones_on_the_heap() {
        for n in [0, 1, 21, 22] {
            let k = Key::from(of_len(n).as_slice());
            assert!(k.is_inline(), "{n} bytes");
            assert_eq!(&*k, of_len(n).as_slice());
            assert_eq!(k.heap_len(), 0);
            assert!(Key::from(of_len(n)).is_inline(), "{n} bytes from a Vec");
        }
        for n in [23, 24, 100] {
            let k = Key::from(of_len(n).as_slice());
            assert!(!k.is_inline(), "{n} bytes");
            assert_eq!(&*k, of_len(n).as_slice());
            assert_eq!(k.heap_len(), n);
            assert!(!Key::from(of_len(n)).is_inline(), "{n} bytes from a Vec");
        }
        assert!(Str::from(of_len(30).as_slice()).is_inline());
        assert!(!Str::from(of_len(31).as_slice()).is_inline());
    }

    #[test]
    fn the_hash_is_that_of_the_slice() {
        let build = FxBuild::default();
        for n in [0, 1, 8, 21, 22, 23, 24, 64] {
            let bytes = of_len(n);
            let key = Key::from(bytes.as_slice());
            let value = Str::from(bytes.as_slice());
            assert_eq!(
                build.hash_one(&key),
                build.hash_one(bytes.as_slice()),
                "{n}"
            );
            assert_eq!(
                build.hash_one(&value),
                build.hash_one(bytes.as_slice()),
                "{n}"
            );
        }
    }

    #[test]
    fn a_map_of_keys_is_looked_up_by_slices_across_the_boundary() {
        let mut map: FxHashMap<Key, usize> = FxHashMap::default();
        for n in 0..40 {
            map.insert(Key::from(of_len(n)), n);
        }
        for n in 0..40 {
            assert_eq!(map.get(of_len(n).as_slice()), Some(&n), "{n} bytes");
        }
        // Same length, different last byte: inline and heap keys compare all bytes.
        for n in [22, 23] {
            let mut other = of_len(n);
            *other.last_mut().unwrap() = b'!';
            assert_eq!(map.get(other.as_slice()), None, "{n} bytes");
        }
        assert_eq!(map.remove(of_len(23).as_slice()), Some(23));
        assert_eq!(map.remove(of_len(22).as_slice()), Some(22));
        assert_eq!(map.len(), 38);
    }

    #[test]
    fn equality_is_by_contents() {
        assert_eq!(Key::from(&b"abc"[..]), Key::from(b"abc".to_vec()));
        assert_ne!(Key::from(&b"abc"[..]), Key::from(&b"abd"[..]));
        assert_ne!(Key::from(&b"ab"[..]), Key::from(&b"ab\0"[..]));
        assert_eq!(Key::from(of_len(40)), Key::from(of_len(40).as_slice()));
        assert_eq!(
            format!("{:?}", Key::from(&b"ab"[..])),
            format!("{:?}", b"ab")
        );
    }

    #[test]
    fn appending_moves_to_the_heap_past_the_capacity() {
        let mut s = Str::from(&b"0123456789"[..]);
        s.extend_from_slice(b"0123456789");
        s.extend_from_slice(b"0123456789");
        assert!(s.is_inline(), "30 bytes fit");
        s.extend_from_slice(b"x");
        assert!(!s.is_inline(), "31 bytes do not");
        s.extend_from_slice(b"yz");
        assert_eq!(&*s, b"012345678901234567890123456789xyz".as_slice());
        let mut empty = Str::from(Vec::new());
        empty.extend_from_slice(b"");
        assert!(empty.is_empty() && empty.is_inline());
    }
}
