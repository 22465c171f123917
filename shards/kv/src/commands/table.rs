//! The command table: each command's name, arity, flags, key positions (what COMMAND
//! reports, in Redis's shape) and how it is routed among shards.

/// Where a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// On the connection's shard, touching no key (PING, CLIENT, CONFIG, ...).
    Conn,
    /// On the owner of its one key, `args[1]`.
    Key,
    /// Keys from `args[1]`, every `step` arguments: split by owner, merged in order.
    Keys { step: usize },
    /// On every shard, merged (KEYS, SCAN, DBSIZE, FLUSHALL).
    All,
    /// Pub/sub: subscription state on the connection's shard, PUBLISH across shards.
    PubSub,
}

/// Every command percore kv knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Get,
    Set,
    Incr,
    Decr,
    IncrBy,
    DecrBy,
    Append,
    Strlen,
    GetDel,
    Mget,
    Mset,
    Del,
    Exists,
    Expire,
    PExpire,
    Ttl,
    PTtl,
    Persist,
    Type,
    Keys,
    Scan,
    DbSize,
    FlushAll,
    FlushDb,
    HSet,
    HGet,
    HDel,
    HGetAll,
    HIncrBy,
    LPush,
    RPush,
    LPop,
    RPop,
    LRange,
    LLen,
    Ping,
    Echo,
    Quit,
    Select,
    Info,
    Client,
    Command,
    Config,
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    Publish,
}

/// One command's entry.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub cmd: Cmd,
    /// Redis's arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub route: Route,
}

impl Spec {
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Writes that may grow memory: refused past `--maxmemory`.
    pub fn deny_oom(&self) -> bool {
        self.flags.contains(&"denyoom")
    }
}

const W: &[&str] = &["write", "denyoom", "fast"];
const WS: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly", "fast"];
const RSLOW: &[&str] = &["readonly"];
const WSLOW: &[&str] = &["write"];
const CONN: &[&str] = &["fast", "stale", "loading"];
const PUBSUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];

macro_rules! spec {
    ($name:literal, $cmd:ident, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $route:expr) => {
        Spec {
            name: $name,
            cmd: Cmd::$cmd,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            route: $route,
        }
    };
}

/// The table, the most frequent commands first (lookup is a linear scan).
pub static COMMANDS: &[Spec] = &[
    spec!("get", Get, 2, R, 1, 1, 1, Route::Key),
    spec!("set", Set, -3, W, 1, 1, 1, Route::Key),
    spec!("incr", Incr, 2, W, 1, 1, 1, Route::Key),
    spec!("lpush", LPush, -3, W, 1, 1, 1, Route::Key),
    spec!("rpush", RPush, -3, W, 1, 1, 1, Route::Key),
    spec!("lpop", LPop, -2, WS, 1, 1, 1, Route::Key),
    spec!("rpop", RPop, -2, WS, 1, 1, 1, Route::Key),
    spec!("mset", Mset, -3, W, 1, -1, 2, Route::Keys { step: 2 }),
    spec!("mget", Mget, -2, R, 1, -1, 1, Route::Keys { step: 1 }),
    spec!("hset", HSet, -4, W, 1, 1, 1, Route::Key),
    spec!("hget", HGet, 3, R, 1, 1, 1, Route::Key),
    spec!("lrange", LRange, 4, RSLOW, 1, 1, 1, Route::Key),
    spec!("ping", Ping, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("decr", Decr, 2, W, 1, 1, 1, Route::Key),
    spec!("incrby", IncrBy, 3, W, 1, 1, 1, Route::Key),
    spec!("decrby", DecrBy, 3, W, 1, 1, 1, Route::Key),
    spec!("append", Append, 3, W, 1, 1, 1, Route::Key),
    spec!("strlen", Strlen, 2, R, 1, 1, 1, Route::Key),
    spec!("getdel", GetDel, 2, WS, 1, 1, 1, Route::Key),
    spec!("del", Del, -2, WSLOW, 1, -1, 1, Route::Keys { step: 1 }),
    spec!("exists", Exists, -2, R, 1, -1, 1, Route::Keys { step: 1 }),
    spec!("expire", Expire, -3, WS, 1, 1, 1, Route::Key),
    spec!("pexpire", PExpire, -3, WS, 1, 1, 1, Route::Key),
    spec!("ttl", Ttl, 2, R, 1, 1, 1, Route::Key),
    spec!("pttl", PTtl, 2, R, 1, 1, 1, Route::Key),
    spec!("persist", Persist, 2, WS, 1, 1, 1, Route::Key),
    spec!("type", Type, 2, R, 1, 1, 1, Route::Key),
    spec!("keys", Keys, 2, RSLOW, 0, 0, 0, Route::All),
    spec!("scan", Scan, -2, RSLOW, 0, 0, 0, Route::All),
    spec!("dbsize", DbSize, 1, R, 0, 0, 0, Route::All),
    spec!("flushall", FlushAll, -1, WSLOW, 0, 0, 0, Route::All),
    spec!("flushdb", FlushDb, -1, WSLOW, 0, 0, 0, Route::All),
    spec!("hdel", HDel, -3, WS, 1, 1, 1, Route::Key),
    spec!("hgetall", HGetAll, 2, RSLOW, 1, 1, 1, Route::Key),
    spec!("hincrby", HIncrBy, 4, W, 1, 1, 1, Route::Key),
    spec!("llen", LLen, 2, R, 1, 1, 1, Route::Key),
    spec!("echo", Echo, 2, CONN, 0, 0, 0, Route::Conn),
    spec!("quit", Quit, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("select", Select, 2, CONN, 0, 0, 0, Route::Conn),
    spec!("info", Info, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("client", Client, -2, CONN, 0, 0, 0, Route::Conn),
    spec!("command", Command, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("config", Config, -2, CONN, 0, 0, 0, Route::Conn),
    spec!("subscribe", Subscribe, -2, PUBSUB, 0, 0, 0, Route::PubSub),
    spec!(
        "unsubscribe",
        Unsubscribe,
        -1,
        PUBSUB,
        0,
        0,
        0,
        Route::PubSub
    ),
    spec!("psubscribe", PSubscribe, -2, PUBSUB, 0, 0, 0, Route::PubSub),
    spec!(
        "punsubscribe",
        PUnsubscribe,
        -1,
        PUBSUB,
        0,
        0,
        0,
        Route::PubSub
    ),
    spec!("publish", Publish, 3, PUBSUB, 0, 0, 0, Route::PubSub),
];

/// The command named `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS.iter().find(|spec| {
        spec.name.len() == name.len() && spec.name.as_bytes().eq_ignore_ascii_case(name)
    })
}

/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' ` (Redis 7's wording:
/// arguments quoted, each followed by a space, up to 128 bytes of them).
pub fn unknown_command(args: &[Vec<u8>]) -> String {
    let mut listed = String::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(&arg[..arg.len().min(room)]);
        listed.push_str(&format!("'{text}' "));
    }
    let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]);
    format!("ERR unknown command '{name}', with args beginning with: {listed}")
}

/// `ERR wrong number of arguments for 'get' command`.
pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_checks_arity() {
        let get = lookup(b"GeT").unwrap();
        assert_eq!(get.cmd, Cmd::Get);
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let set = lookup(b"SET").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(7) && !set.arity_ok(2));
        assert!(lookup(b"nope").is_none());
        assert!(lookup(b"ge").is_none());
    }

    #[test]
    fn unknown_command_is_worded_as_redis() {
        let args = vec![b"foo".to_vec(), b"a".to_vec(), b"b".to_vec()];
        assert_eq!(
            unknown_command(&args),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            unknown_command(&[b"foo".to_vec()]),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }
}
