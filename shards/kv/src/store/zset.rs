//! A sorted set: members with scores, ordered by (score, member), with ranks in O(log n).
//!
//! The order lives in a treap (a binary search tree whose nodes also carry a random
//! priority, kept as a heap, which keeps the expected depth O(log n)) stored in an arena:
//! nodes are indices into one `Vec`, freed slots are reused. Every node counts the nodes of
//! its subtree, so the rank of an element, the element at a rank, and how many elements
//! come before a score or a member bound are each one walk from the root. A map from
//! member to score answers ZSCORE in O(1) and finds the node to remove.

use std::cmp::Ordering;

use crate::hash::FxHashMap;

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq)]
struct Node {
    score: f64,
    member: Vec<u8>,
    priority: u32,
    left: u32,
    right: u32,
    size: u32,
}

/// A sorted set.
#[derive(Clone, Debug, Default)]
pub struct ZSet {
    scores: FxHashMap<Vec<u8>, f64>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    seed: u32,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.scores == other.scores
    }
}

impl Eq for ZSet {}

/// The order of elements: by score, then by member bytes.
fn order(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

impl ZSet {
    pub fn new() -> Self {
        ZSet {
            root: NIL,
            seed: 0x9e37_79b9,
            ..ZSet::default()
        }
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Members and scores in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, f64)> {
        self.scores.iter().map(|(m, s)| (m, *s))
    }

    fn size(&self, node: u32) -> u32 {
        if node == NIL {
            0
        } else {
            self.nodes[node as usize].size
        }
    }

    fn update(&mut self, node: u32) {
        let n = &self.nodes[node as usize];
        let size = 1 + self.size(n.left) + self.size(n.right);
        self.nodes[node as usize].size = size;
    }

    fn next_priority(&mut self) -> u32 {
        // xorshift32: any spread of priorities keeps the treap balanced in expectation.
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed = x;
        x
    }

    /// Sets `member`'s score; true when the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        let added = match self.scores.get(member).copied() {
            Some(old) if old == score => return false,
            Some(old) => {
                self.root = self.remove_node(self.root, old, member);
                false
            }
            None => true,
        };
        self.scores.insert(member.to_vec(), score);
        let node = Node {
            score,
            member: member.to_vec(),
            priority: self.next_priority(),
            left: NIL,
            right: NIL,
            size: 1,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (left, right) = self.split(self.root, score, member);
        let joined = self.merge(left, index);
        self.root = self.merge(joined, right);
        added
    }

    /// Removes `member`; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let Some(score) = self.scores.remove(member) else {
            return false;
        };
        self.root = self.remove_node(self.root, score, member);
        true
    }

    /// Splits `node`'s tree into the elements before (score, member) and the rest.
    fn split(&mut self, node: u32, score: f64, member: &[u8]) -> (u32, u32) {
        if node == NIL {
            return (NIL, NIL);
        }
        let n = &self.nodes[node as usize];
        if order(n.score, &n.member, score, member) == Ordering::Less {
            let (l, r) = self.split(n.right, score, member);
            self.nodes[node as usize].right = l;
            self.update(node);
            (node, r)
        } else {
            let (l, r) = self.split(n.left, score, member);
            self.nodes[node as usize].left = r;
            self.update(node);
            (l, node)
        }
    }

    /// Joins two trees, every element of `a` before every element of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let right = self.nodes[a as usize].right;
            let merged = self.merge(right, b);
            self.nodes[a as usize].right = merged;
            self.update(a);
            a
        } else {
            let left = self.nodes[b as usize].left;
            let merged = self.merge(a, left);
            self.nodes[b as usize].left = merged;
            self.update(b);
            b
        }
    }

    fn remove_node(&mut self, node: u32, score: f64, member: &[u8]) -> u32 {
        if node == NIL {
            return NIL;
        }
        let n = &self.nodes[node as usize];
        match order(score, member, n.score, &n.member) {
            Ordering::Equal => {
                let (l, r) = (n.left, n.right);
                self.nodes[node as usize].member = Vec::new();
                self.free.push(node);
                self.merge(l, r)
            }
            Ordering::Less => {
                let left = self.remove_node(n.left, score, member);
                self.nodes[node as usize].left = left;
                self.update(node);
                node
            }
            Ordering::Greater => {
                let right = self.remove_node(n.right, score, member);
                self.nodes[node as usize].right = right;
                self.update(node);
                node
            }
        }
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.count_before(|s, m| order(s, m, score, member) == Ordering::Less))
    }

    /// How many elements satisfy `before`, which must hold for a prefix of the order.
    pub fn count_before(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let (mut node, mut count) = (self.root, 0);
        while node != NIL {
            let n = &self.nodes[node as usize];
            if before(n.score, &n.member) {
                count += self.size(n.left) as usize + 1;
                node = n.right;
            } else {
                node = n.left;
            }
        }
        count
    }

    /// The element at 0-based `rank` in ascending order.
    pub fn at(&self, rank: usize) -> Option<(&[u8], f64)> {
        let mut node = self.root;
        let mut rank = rank as u32;
        while node != NIL {
            let n = &self.nodes[node as usize];
            let left = self.size(n.left);
            match rank.cmp(&left) {
                Ordering::Less => node = n.left,
                Ordering::Equal => return Some((&n.member, n.score)),
                Ordering::Greater => {
                    rank -= left + 1;
                    node = n.right;
                }
            }
        }
        None
    }

    /// The elements of ranks `start..end` (ascending), in ascending order.
    pub fn range(&self, start: usize, end: usize) -> Vec<(Vec<u8>, f64)> {
        let mut found = Vec::with_capacity(end.saturating_sub(start));
        self.collect(self.root, 0, start, end, &mut found);
        found
    }

    /// In-order walk of the part of `node`'s tree (whose first rank is `offset`) that
    /// falls in `start..end`.
    fn collect(
        &self,
        node: u32,
        offset: usize,
        start: usize,
        end: usize,
        found: &mut Vec<(Vec<u8>, f64)>,
    ) {
        if node == NIL || start >= end {
            return;
        }
        let n = &self.nodes[node as usize];
        let size = n.size as usize;
        if offset >= end || offset + size <= start {
            return;
        }
        let here = offset + self.size(n.left) as usize;
        self.collect(n.left, offset, start, end, found);
        if (start..end).contains(&here) {
            found.push((n.member.clone(), n.score));
        }
        self.collect(n.right, here + 1, start, end, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_score_then_member_through_inserts_updates_and_removals() {
        let mut z = ZSet::new();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut seed = 7u64;
        for step in 0..3000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let member = format!("m{}", (seed >> 33) % 300).into_bytes();
            let score = ((seed >> 20) % 50) as f64;
            if step % 3 == 0 {
                assert_eq!(z.remove(&member), model.iter().any(|(_, m)| *m == member));
                model.retain(|(_, m)| *m != member);
            } else {
                let new = !model.iter().any(|(_, m)| *m == member);
                assert_eq!(z.insert(&member, score), new);
                model.retain(|(_, m)| *m != member);
                model.push((score, member));
            }
        }
        model.sort_by(|a, b| order(a.0, &a.1, b.0, &b.1));
        assert_eq!(z.len(), model.len());
        for (i, (score, member)) in model.iter().enumerate() {
            assert_eq!(z.rank(member), Some(i));
            assert_eq!(z.at(i), Some((&member[..], *score)));
        }
        let all = z.range(0, z.len());
        assert_eq!(all.len(), model.len());
        assert!(
            all.iter()
                .zip(&model)
                .all(|(a, b)| a.0 == b.1 && a.1 == b.0)
        );
        let below_10 = model.iter().filter(|(s, _)| *s < 10.0).count();
        assert_eq!(z.count_before(|s, _| s < 10.0), below_10);
    }
}
