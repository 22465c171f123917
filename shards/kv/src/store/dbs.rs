//! One shard's part of the numbered databases (SELECT 0..15): a [`Store`] per database,
//! made on first use, so a shard that only ever sees database 0 holds one.

use super::Store;

/// How many databases there are (Redis's default `databases 16`).
pub const DATABASES: usize = 16;

/// The databases of one shard.
pub struct Databases {
    dbs: Vec<Option<Store>>,
    /// The shard's share of `--maxmemory`, over all its databases (`None`: no limit).
    max_bytes: Option<usize>,
    /// The server's live `maxmemory` (CONFIG SET) and its shard count, when this is a
    /// shard's store (not a scratch store).
    live: Option<(std::sync::Arc<crate::settings::Live>, usize)>,
}

impl Databases {
    pub fn new(max_bytes: Option<usize>) -> Self {
        Databases {
            dbs: (0..DATABASES).map(|_| None).collect(),
            max_bytes,
            live: None,
        }
    }

    /// A shard's databases, limited by the server's live `maxmemory` split over `shards`.
    pub fn with_live(live: std::sync::Arc<crate::settings::Live>, shards: usize) -> Self {
        Databases {
            live: Some((live, shards.max(1))),
            ..Databases::new(None)
        }
    }

    /// The server's live settings (a shard's databases only).
    pub fn live(&self) -> Option<&crate::settings::Live> {
        self.live.as_ref().map(|(l, _)| &**l)
    }

    /// Bytes of keys and values held, over every database.
    pub fn used_bytes(&self) -> usize {
        self.iter().map(|(_, db)| db.used_bytes()).sum()
    }

    /// Database `index` (below [`DATABASES`]; callers check what clients send).
    pub fn db(&mut self, index: usize) -> &mut Store {
        self.dbs[index].get_or_insert_with(|| Store::new(None))
    }

    /// Database `index` if it was ever used.
    pub fn existing(&self, index: usize) -> Option<&Store> {
        self.dbs[index].as_ref()
    }

    /// The databases in use, with their index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Store)> {
        self.dbs
            .iter()
            .enumerate()
            .filter_map(|(i, db)| db.as_ref().map(|db| (i, db)))
    }

    /// The databases in use, for a change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Store> {
        self.dbs.iter_mut().flatten()
    }

    /// Two distinct databases at once (MOVE, COPY ... DB).
    pub fn pair(&mut self, a: usize, b: usize) -> (&mut Store, &mut Store) {
        assert_ne!(a, b, "two distinct databases");
        self.db(a);
        self.db(b);
        let (low, high) = (a.min(b), a.max(b));
        let (left, right) = self.dbs.split_at_mut(high);
        let (x, y) = (
            left[low].as_mut().expect("made above"),
            right[0].as_mut().expect("made above"),
        );
        if a < b { (x, y) } else { (y, x) }
    }

    /// SWAPDB: the keys of `a` and `b` trade places.
    pub fn swap(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
    }

    /// True when a write that may grow memory must be refused with OOM.
    pub fn over_limit(&self) -> bool {
        self.max_bytes().is_some_and(|max| self.used_bytes() > max)
    }

    /// This shard's share of the memory limit.
    pub fn max_bytes(&self) -> Option<usize> {
        match &self.live {
            Some((live, shards)) => {
                let max = live.maxmemory();
                (max > 0).then(|| (max / *shards as u64) as usize)
            }
            None => self.max_bytes,
        }
    }
}
