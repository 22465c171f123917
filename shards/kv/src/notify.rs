//! Keyspace notifications (`notify-keyspace-events`): a write publishes, on pub/sub,
//! `__keyspace@<db>__:<key>` with the event as message and `__keyevent@<db>__:<event>`
//! with the key, as Redis does, when the flags ask for the key's class.
//!
//! Published from the key's owner shard, right after the command: delivered to this
//! shard's subscribers at once and to the other shards through the mesh (a message per
//! shard, in order; a shard whose inbox is full misses it, as a slow subscriber would).
//! The event is the command's name with Redis's spellings for the common ones (`set` for
//! SETEX/MSET, `incrby` for INCR, `expire` for PEXPIRE, `del` for UNLINK, `evicted`);
//! the class is the key's type after the write (generic when it is gone). Not sent:
//! `expired` events, `new` and key-miss events, and cross-shard commands' write-backs
//! (RENAME, SMOVE, ... across shards; MSET and DEL across shards do notify).

use std::{
    cell::OnceCell,
    sync::{Arc, atomic::Ordering},
};

use crate::{settings::Live, store::Value};

pub const KEYSPACE: u32 = 1;
pub const KEYEVENT: u32 = 2;
pub const GENERIC: u32 = 4;
pub const STRING: u32 = 8;
pub const LIST: u32 = 16;
pub const SET: u32 = 32;
pub const HASH: u32 = 64;
pub const ZSET: u32 = 128;
pub const EXPIRED: u32 = 256;
pub const EVICTED: u32 = 512;
pub const STREAM: u32 = 1024;
pub const KEYMISS: u32 = 2048;
pub const NEW: u32 = 4096;
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM;

const LETTERS: [(char, u32); 13] = [
    ('K', KEYSPACE),
    ('E', KEYEVENT),
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('m', KEYMISS),
    ('n', NEW),
];

/// The flags of a `notify-keyspace-events` value (`None`: a letter Redis does not know).
pub fn parse(text: &str) -> Option<u32> {
    let mut flags = 0;
    for c in text.chars() {
        flags |= match c {
            'A' => ALL,
            c => LETTERS.iter().find(|(l, _)| *l == c)?.1,
        };
    }
    Some(flags)
}

/// The value CONFIG GET shows for `flags` (Redis's spelling: `A` for all classes).
pub fn render(flags: u32) -> String {
    let mut text = String::new();
    if flags & ALL == ALL {
        text.push('A');
    }
    for (letter, bit) in LETTERS {
        if bit & ALL != 0 && flags & ALL == ALL {
            continue;
        }
        if flags & bit != 0 {
            text.push(letter);
        }
    }
    text
}

thread_local! {
    static LIVE: OnceCell<Arc<Live>> = const { OnceCell::new() };
}

/// At a shard's start: where its flags live.
pub fn init(live: &Arc<Live>) {
    LIVE.with(|l| {
        let _ = l.set(live.clone());
    });
}

fn flags() -> u32 {
    LIVE.with(|l| {
        l.get()
            .map_or(0, |live| live.notify.load(Ordering::Relaxed))
    })
}

/// Whether anything is to be published (one atomic load; usually false).
#[inline]
pub fn on() -> bool {
    flags() & (KEYSPACE | KEYEVENT) != 0
}

/// The class of a key by its value (generic when it is gone).
pub fn class_of(value: Option<&Value>) -> u32 {
    match value {
        Some(Value::Str(_)) => STRING,
        Some(Value::List(_)) => LIST,
        Some(Value::Set(_)) => SET,
        Some(Value::Hash(_)) => HASH,
        Some(Value::ZSet(_)) => ZSET,
        None => GENERIC,
    }
}

/// The event a write command's name gives.
pub fn event_of(command: &str) -> &str {
    match command {
        "setex" | "psetex" | "setnx" | "getset" | "mset" | "msetnx" | "set" => "set",
        "incr" | "decr" | "decrby" | "incrby" => "incrby",
        "unlink" | "getdel" | "del" => "del",
        "pexpire" | "expireat" | "pexpireat" | "expire" => "expire",
        "hmset" | "hset" | "hsetnx" => "hset",
        other => other,
    }
}

/// Publishes `event` on `key` of `db` when the flags ask for `class`.
pub fn keyspace(db: usize, event: &[u8], key: &[u8], class: u32) {
    let flags = flags();
    if flags & (KEYSPACE | KEYEVENT) == 0 || flags & class == 0 {
        return;
    }
    if flags & KEYSPACE != 0 {
        let mut channel = format!("__keyspace@{db}__:").into_bytes();
        channel.extend_from_slice(key);
        publish(channel, event.to_vec());
    }
    if flags & KEYEVENT != 0 {
        let mut channel = format!("__keyevent@{db}__:").into_bytes();
        channel.extend_from_slice(event);
        publish(channel, key.to_vec());
    }
}

/// Delivers on every shard: this one at once, the others through the mesh.
fn publish(channel: Vec<u8>, message: Vec<u8>) {
    let here = percore::mesh::shard_id();
    if let Some(state) = crate::shard::current() {
        state.pubsub.borrow().deliver(&channel, &message);
    }
    for target in (0..percore::mesh::shard_count()).filter(|&t| t != here) {
        let (channel, message) = (channel.clone(), message.clone());
        let _ = percore::mesh::try_send_to(target, move || {
            if let Some(state) = crate::shard::current() {
                state.pubsub.borrow().deliver(&channel, &message);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_render_as_redis_spells_them() {
        assert_eq!(parse("KEA"), Some(KEYSPACE | KEYEVENT | ALL));
        assert_eq!(render(parse("KEA").unwrap()), "AKE");
        assert_eq!(render(parse("Kl$").unwrap()), "K$l");
        assert_eq!(parse(""), Some(0));
        assert_eq!(parse("Kq"), None);
    }
}
