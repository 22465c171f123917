//! Hashing: the store's fast map hasher (FxHash, as rustc uses) and the stable hash that
//! decides which shard owns a key. Both are fixed functions (no random keys), so a key has
//! the same owner in every process and on every run; the store is not exposed to untrusted
//! hash flooding beyond what the per-shard memory limit bounds.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// FxHash: a multiply-rotate hash, fast on short keys.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// Finished with murmur3's 64-bit avalanche: a plain Fx hash leaves its low bits
    /// depending only on the low bytes of each word, and the map indexes buckets by the low
    /// bits. Keys that differ only in their last bytes (`key:000000012345`, as
    /// redis-benchmark makes them) then all fell in a few buckets: lookups went O(n).
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The map hasher of the store.
pub type FxBuild = BuildHasherDefault<FxHasher>;

/// A `HashMap` with FxHash.
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;

/// A `HashSet` with [`FxHasher`].
pub type FxHashSet<T> = std::collections::HashSet<T, FxBuild>;

/// The shard that owns `key` among `shards` shards: the finished hash of its bytes modulo
/// the count. A key with a *hash tag* (Redis Cluster's rule: the bytes between the first
/// `{` and the first `}` after it, when not empty) is owned by its tag's shard, so keys
/// such as `user:{42}:name` and `user:{42}:mail` share an owner and a command over both
/// runs on that shard alone.
pub fn owner(key: &[u8], shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let key = hash_tag(key).unwrap_or(key);
    let mut hasher = FxHasher::default();
    hasher.write(key);
    hasher.write_usize(key.len());
    (hasher.finish() % shards as u64) as usize
}

/// The hash tag of `key`, if it has one.
#[inline]
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let len = key[open + 1..].iter().position(|&b| b == b'}')?;
    (len > 0).then(|| &key[open + 1..open + 1 + len])
}

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn keys_with_one_hash_tag_share_an_owner() {
        for shards in [2, 3, 8] {
            let tagged = owner(b"{user7}", shards);
            for key in ["a{user7}", "{user7}:b", "x{user7}{other}", "user7"] {
                assert_eq!(
                    owner(key.as_bytes(), shards),
                    owner(b"user7", shards),
                    "{key}"
                );
            }
            assert_eq!(tagged, owner(b"user7", shards));
        }
        // An empty tag is no tag: the whole key is hashed.
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| owner(format!("{{}}{i}").as_bytes(), 4))
            .collect();
        assert!(spread.len() > 1);
    }

    #[test]
    fn ownership_is_stable_and_spread() {
        // Fixed values: a change of the function would move every key (a stored layout).
        assert_eq!(owner(b"anything", 1), 0);
        let first: Vec<usize> = (0..8)
            .map(|i| owner(format!("key:{i}").as_bytes(), 2))
            .collect();
        let again: Vec<usize> = (0..8)
            .map(|i| owner(format!("key:{i}").as_bytes(), 2))
            .collect();
        assert_eq!(first, again);
        let on_zero = (0..10_000)
            .filter(|i| owner(format!("key:{i:012}").as_bytes(), 2) == 0)
            .count();
        assert!(
            (4_500..5_500).contains(&on_zero),
            "{on_zero} of 10000 on shard 0"
        );
        let mut per_shard = [0usize; 4];
        for i in 0..10_000 {
            per_shard[owner(format!("user:{i}").as_bytes(), 4)] += 1;
        }
        assert!(
            per_shard.iter().all(|&n| (2_000..3_000).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn keys_differing_in_their_last_bytes_spread_over_the_low_bits() {
        use std::hash::{BuildHasher, Hasher};
        // The map indexes buckets by the low bits: 4096 keys like redis-benchmark's must
        // fill most of 4096 buckets (a plain Fx hash put them in a handful).
        let build = super::FxBuild::default();
        let mut buckets = std::collections::HashSet::new();
        for i in 0..4096 {
            let mut h = build.build_hasher();
            h.write(format!("key:{i:012}").as_bytes());
            buckets.insert(h.finish() & 4095);
        }
        assert!(buckets.len() > 2_400, "{} buckets used", buckets.len());
    }
}
