//! Pub/sub across shards.
//!
//! Each shard keeps a [`Registry`] of the subscriptions of its own connections: channel →
//! subscribers, and the pattern subscriptions. A subscriber's messages go to its
//! [`Outbox`], which its connection task moves into the socket while the socket's unsent
//! output is under the high watermark. An outbox past its limit is marked overflowed and
//! its connection is closed (Redis's `client-output-buffer-limit pubsub`): a subscriber
//! that does not read costs bounded memory.
//!
//! PUBLISH runs on the shard that owns the channel (hash of its name), which delivers to its
//! own subscribers at once and sends the message to every other shard through the mesh.
//! Every message of a channel therefore leaves from one shard, and the mesh keeps the order
//! of messages from one shard to another: subscribers see a channel's messages in publish
//! order. The receiver count is the sum of each shard's.

use std::{
    cell::RefCell,
    future::poll_fn,
    rc::Rc,
    task::{Poll, Waker},
};

use crate::{glob, hash::FxHashMap, resp};

/// The messages waiting for one subscribed connection.
#[derive(Default)]
pub struct Outbox {
    pub buf: Vec<u8>,
    pub overflowed: bool,
    limit: usize,
    waker: Option<Waker>,
}

impl Outbox {
    pub fn new(limit: usize) -> Rc<RefCell<Outbox>> {
        Rc::new(RefCell::new(Outbox {
            limit,
            ..Outbox::default()
        }))
    }

    fn push(&mut self, frame: impl FnOnce(&mut Vec<u8>)) {
        if self.overflowed {
            return;
        }
        frame(&mut self.buf);
        if self.buf.len() > self.limit {
            self.overflowed = true;
            self.buf = Vec::new();
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// Completes when `outbox` has bytes to send or has overflowed.
pub async fn ready(outbox: &Rc<RefCell<Outbox>>) {
    poll_fn(|cx| {
        let mut o = outbox.borrow_mut();
        if !o.buf.is_empty() || o.overflowed {
            return Poll::Ready(());
        }
        o.waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// An outbox shared by its connection and the registry.
pub type SharedOutbox = Rc<RefCell<Outbox>>;

/// One shard's subscriptions.
#[derive(Default)]
pub struct Registry {
    channels: FxHashMap<Vec<u8>, Vec<(u64, SharedOutbox)>>,
    patterns: Vec<(Vec<u8>, u64, SharedOutbox)>,
}

impl Registry {
    pub fn subscribe(&mut self, channel: &[u8], id: u64, outbox: &Rc<RefCell<Outbox>>) {
        let subs = self.channels.entry(channel.to_vec()).or_default();
        if !subs.iter().any(|(sid, _)| *sid == id) {
            subs.push((id, outbox.clone()));
        }
    }

    pub fn unsubscribe(&mut self, channel: &[u8], id: u64) {
        if let Some(subs) = self.channels.get_mut(channel) {
            subs.retain(|(sid, _)| *sid != id);
            if subs.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    pub fn psubscribe(&mut self, pattern: &[u8], id: u64, outbox: &Rc<RefCell<Outbox>>) {
        if !self
            .patterns
            .iter()
            .any(|(p, sid, _)| *sid == id && p == pattern)
        {
            self.patterns.push((pattern.to_vec(), id, outbox.clone()));
        }
    }

    pub fn punsubscribe(&mut self, pattern: &[u8], id: u64) {
        self.patterns
            .retain(|(p, sid, _)| !(*sid == id && p == pattern));
    }

    /// Delivers a message to this shard's subscribers; returns how many received it.
    pub fn deliver(&self, channel: &[u8], message: &[u8]) -> usize {
        let mut receivers = 0;
        if let Some(subs) = self.channels.get(channel) {
            for (_, outbox) in subs {
                outbox.borrow_mut().push(|out| {
                    resp::array(out, 3);
                    resp::bulk(out, b"message");
                    resp::bulk(out, channel);
                    resp::bulk(out, message);
                });
                receivers += 1;
            }
        }
        for (pattern, _, outbox) in &self.patterns {
            if glob::matches(pattern, channel) {
                outbox.borrow_mut().push(|out| {
                    resp::array(out, 4);
                    resp::bulk(out, b"pmessage");
                    resp::bulk(out, pattern);
                    resp::bulk(out, channel);
                    resp::bulk(out, message);
                });
                receivers += 1;
            }
        }
        receivers
    }

    /// The channels with subscribers here matching `pattern` (all with `None`).
    pub fn channel_names(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` here.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, Vec::len)
    }

    /// The patterns subscribed to here, each once.
    pub fn pattern_names(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self.patterns.iter().map(|(p, _, _)| p.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Channels with at least one subscriber, and pattern subscriptions (for INFO).
    pub fn counts(&self) -> (usize, usize) {
        (self.channels.len(), self.patterns.len())
    }
}

/// A connection's own subscriptions, in the order it made them.
#[derive(Default)]
pub struct Subscriptions {
    pub channels: Vec<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub outbox: Option<Rc<RefCell<Outbox>>>,
}

impl Subscriptions {
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn active(&self) -> bool {
        self.count() > 0
    }
}

/// Writes a subscription reply: `[kind, name or nil, count]`.
pub fn write_ack(out: &mut Vec<u8>, kind: &[u8], name: Option<&[u8]>, count: usize) {
    resp::array(out, 3);
    resp::bulk(out, kind);
    match name {
        Some(name) => resp::bulk(out, name),
        None => resp::null(out),
    }
    resp::integer(out, count as i64);
}
