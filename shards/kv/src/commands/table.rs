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
    /// Several keys (see [`key_positions`]) that must be seen together: on their owner
    /// when they share one, otherwise gathered from their owners, run, and written back.
    Multi,
    /// On every shard, merged (KEYS, SCAN, DBSIZE, FLUSHALL).
    All,
    /// Pub/sub: subscription state on the connection's shard, PUBLISH across shards.
    PubSub,
    /// A blocking list or sorted-set pop: waits for its keys (see `blocking`).
    Blocking,
}

/// Where a command's keys are, beyond `first_key`/`last_key`/`step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyCount {
    /// From the spec's positions.
    Fixed,
    /// A count of keys at this position, the keys right after it (LMPOP, SINTERCARD).
    NumKeysAt(usize),
    /// A destination key at 1, a count at 2, the keys after it (ZUNIONSTORE).
    DestNumKeys,
}

/// A command that runs on one database of one shard.
pub type StoreFn = fn(&mut Store, &[Vec<u8>], u64, &mut Vec<u8>);

/// Every command percore kv knows by what routing and the connection must know of it;
/// most run through their `Spec::run` function (`Cmd::Run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    Run,
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
    RandomKey,
    SwapDb,
    Move,
    Copy,
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
    Hello,
    Time,
    Debug,
    Function,
    Reset,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Save,
    SlowLog,
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    Publish,
    PubSubInfo,
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
    pub key_count: KeyCount,
    /// What runs the command on a store (`Cmd::Run`).
    pub run: Option<StoreFn>,
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

    /// This entry's index in [`COMMANDS`].
    pub fn index(&'static self) -> usize {
        (self as *const Spec as usize - COMMANDS.as_ptr() as usize) / std::mem::size_of::<Spec>()
    }
}

/// The argument positions of a command's keys, or `None` when its key count is malformed
/// (the command then runs on the connection's shard, which answers the error).
pub fn key_positions(spec: &Spec, args: &[Vec<u8>]) -> Option<Vec<usize>> {
    let counted = |at: usize| -> Option<Vec<usize>> {
        let n = crate::resp::parse_int(args.get(at)?)?;
        let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
        (at + n < args.len()).then(|| (at + 1..=at + n).collect())
    };
    match spec.key_count {
        KeyCount::NumKeysAt(at) => counted(at),
        KeyCount::DestNumKeys => counted(2).map(|mut keys| {
            keys.insert(0, 1);
            keys
        }),
        KeyCount::Fixed => {
            if spec.first_key <= 0 {
                return Some(Vec::new());
            }
            let last = if spec.last_key < 0 {
                args.len() as i32 + spec.last_key
            } else {
                spec.last_key.min(args.len() as i32 - 1)
            };
            Some(
                (spec.first_key..=last)
                    .step_by(spec.step.max(1) as usize)
                    .map(|i| i as usize)
                    .collect(),
            )
        }
    }
}

const W: &[&str] = &["write", "denyoom", "fast"];
const WS: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const R: &[&str] = &["readonly", "fast"];
const RSLOW: &[&str] = &["readonly"];
const WSLOW: &[&str] = &["write"];
const BLOCK: &[&str] = &["write", "blocking"];
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
            key_count: KeyCount::Fixed,
            run: None,
        }
    };
}

/// A command run by `$run` on its key's owner (one key at `args[1]`).
macro_rules! key {
    ($name:literal, $arity:expr, $flags:expr, $run:expr) => {
        Spec {
            name: $name,
            cmd: Cmd::Run,
            arity: $arity,
            flags: $flags,
            first_key: 1,
            last_key: 1,
            step: 1,
            route: Route::Key,
            key_count: KeyCount::Fixed,
            run: Some($run),
        }
    };
}

/// A command run by `$run` over several keys seen together.
macro_rules! multi {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $count:expr, $run:expr) => {
        Spec {
            name: $name,
            cmd: Cmd::Run,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            route: Route::Multi,
            key_count: $count,
            run: Some($run),
        }
    };
}

/// A blocking pop: `$run` is its non-blocking form, tried first and whenever a key is fed.
macro_rules! blocking {
    ($name:literal, $arity:expr, $first:expr, $last:expr, $count:expr, $run:expr) => {
        Spec {
            name: $name,
            cmd: Cmd::Run,
            arity: $arity,
            flags: BLOCK,
            first_key: $first,
            last_key: $last,
            step: 1,
            route: Route::Blocking,
            key_count: $count,
            run: Some($run),
        }
    };
}

use super::{
    bits as b, hashes as h, keys as k, lcs as lc, lists as l, sets as s, strings as st,
    zpops as zp, zsetops as zo, zsets as z,
};
use crate::store::Store;
use KeyCount::{DestNumKeys, Fixed, NumKeysAt};

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
    spec!("unlink", Del, -2, WS, 1, -1, 1, Route::Keys { step: 1 }),
    spec!("exists", Exists, -2, R, 1, -1, 1, Route::Keys { step: 1 }),
    spec!("touch", Exists, -2, R, 1, -1, 1, Route::Keys { step: 1 }),
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
    spec!("randomkey", RandomKey, 1, RSLOW, 0, 0, 0, Route::All),
    spec!("swapdb", SwapDb, 3, WS, 0, 0, 0, Route::All),
    spec!("move", Move, 3, WS, 1, 1, 1, Route::Key),
    spec!("copy", Copy, -3, WD, 1, 2, 1, Route::Multi),
    spec!("hdel", HDel, -3, WS, 1, 1, 1, Route::Key),
    spec!("hgetall", HGetAll, 2, RSLOW, 1, 1, 1, Route::Key),
    spec!("hincrby", HIncrBy, 4, W, 1, 1, 1, Route::Key),
    spec!("llen", LLen, 2, R, 1, 1, 1, Route::Key),
    // Strings.
    key!("setnx", 3, W, st::setnx),
    key!("setex", 4, WD, st::setex),
    key!("psetex", 4, WD, st::psetex),
    key!("getset", 3, W, st::getset),
    key!("getex", -2, WS, st::getex),
    key!("getrange", 4, RSLOW, st::getrange),
    key!("substr", 4, RSLOW, st::getrange),
    key!("setrange", 4, WD, st::setrange),
    key!("incrbyfloat", 3, W, st::incrbyfloat),
    key!("setbit", 4, WD, b::setbit),
    key!("getbit", 3, R, b::getbit),
    key!("bitcount", -2, RSLOW, b::bitcount),
    multi!("msetnx", -3, WD, 1, -1, 2, Fixed, st::msetnx),
    multi!("lcs", -3, RSLOW, 1, 2, 1, Fixed, lc::lcs),
    // Keys.
    multi!("rename", 3, WSLOW, 1, 2, 1, Fixed, k::rename),
    multi!("renamenx", 3, WS, 1, 2, 1, Fixed, k::renamenx),
    key!("expireat", -3, WS, k::expireat),
    key!("pexpireat", -3, WS, k::pexpireat),
    key!("expiretime", 2, R, k::expiretime),
    key!("pexpiretime", 2, R, k::pexpiretime),
    Spec {
        name: "object",
        cmd: Cmd::Run,
        arity: -2,
        flags: RSLOW,
        first_key: 2,
        last_key: 2,
        step: 1,
        route: Route::Multi,
        key_count: Fixed,
        run: Some(k::object),
    },
    Spec {
        name: "memory",
        cmd: Cmd::Run,
        arity: -2,
        flags: RSLOW,
        first_key: 2,
        last_key: 2,
        step: 1,
        route: Route::Multi,
        key_count: Fixed,
        run: Some(k::memory),
    },
    // Hashes.
    key!("hmset", -4, W, h::hmset),
    key!("hsetnx", 4, W, h::hsetnx),
    key!("hmget", -3, R, h::hmget),
    key!("hlen", 2, R, h::hlen),
    key!("hexists", 3, R, h::hexists),
    key!("hkeys", 2, RSLOW, h::hkeys),
    key!("hvals", 2, RSLOW, h::hvals),
    key!("hstrlen", 3, R, h::hstrlen),
    key!("hincrbyfloat", 4, W, h::hincrbyfloat),
    key!("hrandfield", -2, RSLOW, h::hrandfield),
    key!("hscan", -3, RSLOW, h::hscan),
    // Lists.
    key!("lpushx", -3, W, l::lpushx),
    key!("rpushx", -3, W, l::rpushx),
    key!("lindex", 3, RSLOW, l::lindex),
    key!("lset", 4, WD, l::lset),
    key!("lrem", 4, WSLOW, l::lrem),
    key!("ltrim", 4, WSLOW, l::ltrim),
    key!("linsert", 5, WD, l::linsert),
    key!("lpos", -3, RSLOW, l::lpos),
    multi!("lmove", 5, WD, 1, 2, 1, Fixed, l::lmove),
    multi!("rpoplpush", 3, WD, 1, 2, 1, Fixed, l::rpoplpush),
    multi!("lmpop", -4, WSLOW, 0, 0, 0, NumKeysAt(1), l::lmpop),
    blocking!("blpop", -3, 1, -2, Fixed, l::blpop),
    blocking!("brpop", -3, 1, -2, Fixed, l::brpop),
    blocking!("brpoplpush", 4, 1, 2, Fixed, l::brpoplpush),
    blocking!("blmove", 6, 1, 2, Fixed, l::blmove),
    blocking!("blmpop", -5, 0, 0, NumKeysAt(2), l::blmpop),
    // Sets.
    key!("sadd", -3, W, s::sadd),
    key!("srem", -3, WS, s::srem),
    key!("smembers", 2, RSLOW, s::smembers),
    key!("sismember", 3, R, s::sismember),
    key!("smismember", -3, R, s::smismember),
    key!("scard", 2, R, s::scard),
    key!("spop", -2, WS, s::spop),
    key!("srandmember", -2, RSLOW, s::srandmember),
    key!("sscan", -3, RSLOW, s::sscan),
    multi!("smove", 4, WS, 1, 2, 1, Fixed, s::smove),
    multi!("sinter", -2, RSLOW, 1, -1, 1, Fixed, s::sinter),
    multi!("sunion", -2, RSLOW, 1, -1, 1, Fixed, s::sunion),
    multi!("sdiff", -2, RSLOW, 1, -1, 1, Fixed, s::sdiff),
    multi!("sinterstore", -3, WD, 1, -1, 1, Fixed, s::sinterstore),
    multi!("sunionstore", -3, WD, 1, -1, 1, Fixed, s::sunionstore),
    multi!("sdiffstore", -3, WD, 1, -1, 1, Fixed, s::sdiffstore),
    multi!(
        "sintercard",
        -3,
        RSLOW,
        0,
        0,
        0,
        NumKeysAt(1),
        s::sintercard
    ),
    // Sorted sets.
    key!("zadd", -4, W, z::zadd),
    key!("zincrby", 4, W, z::zincrby),
    key!("zrem", -3, WS, z::zrem),
    key!("zcard", 2, R, z::zcard),
    key!("zscore", 3, R, z::zscore),
    key!("zmscore", -3, R, z::zmscore),
    key!("zrank", 3, R, z::zrank),
    key!("zrevrank", 3, R, z::zrevrank),
    key!("zcount", 4, R, z::zcount),
    key!("zlexcount", 4, R, z::zlexcount),
    key!("zrange", -4, RSLOW, z::zrange),
    key!("zrevrange", -4, RSLOW, z::zrevrange),
    key!("zrangebyscore", -4, RSLOW, z::zrangebyscore),
    key!("zrevrangebyscore", -4, RSLOW, z::zrevrangebyscore),
    key!("zrangebylex", -4, RSLOW, z::zrangebylex),
    key!("zrevrangebylex", -4, RSLOW, z::zrevrangebylex),
    key!("zremrangebyrank", 4, WSLOW, z::zremrangebyrank),
    key!("zremrangebyscore", 4, WSLOW, z::zremrangebyscore),
    key!("zremrangebylex", 4, WSLOW, z::zremrangebylex),
    key!("zpopmin", -2, WS, zp::zpopmin),
    key!("zpopmax", -2, WS, zp::zpopmax),
    key!("zrandmember", -2, RSLOW, z::zrandmember),
    key!("zscan", -3, RSLOW, z::zscan),
    multi!("zrangestore", -5, WD, 1, 2, 1, Fixed, z::zrangestore),
    multi!("zunionstore", -4, WD, 0, 0, 0, DestNumKeys, zo::zunionstore),
    multi!("zinterstore", -4, WD, 0, 0, 0, DestNumKeys, zo::zinterstore),
    multi!("zdiffstore", -4, WD, 0, 0, 0, DestNumKeys, zo::zdiffstore),
    multi!("zunion", -3, RSLOW, 0, 0, 0, NumKeysAt(1), zo::zunion),
    multi!("zinter", -3, RSLOW, 0, 0, 0, NumKeysAt(1), zo::zinter),
    multi!("zdiff", -3, RSLOW, 0, 0, 0, NumKeysAt(1), zo::zdiff),
    multi!(
        "zintercard",
        -3,
        RSLOW,
        0,
        0,
        0,
        NumKeysAt(1),
        zo::zintercard
    ),
    multi!("zmpop", -4, WSLOW, 0, 0, 0, NumKeysAt(1), zp::zmpop),
    blocking!("bzpopmin", -3, 1, -2, Fixed, zp::bzpopmin),
    blocking!("bzpopmax", -3, 1, -2, Fixed, zp::bzpopmax),
    blocking!("bzmpop", -5, 0, 0, NumKeysAt(2), zp::bzmpop),
    // Connection and server.
    spec!("echo", Echo, 2, CONN, 0, 0, 0, Route::Conn),
    spec!("quit", Quit, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("select", Select, 2, CONN, 0, 0, 0, Route::Conn),
    spec!("info", Info, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("client", Client, -2, CONN, 0, 0, 0, Route::Conn),
    spec!("command", Command, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("config", Config, -2, CONN, 0, 0, 0, Route::Conn),
    spec!("hello", Hello, -1, CONN, 0, 0, 0, Route::Conn),
    spec!("time", Time, 1, CONN, 0, 0, 0, Route::Conn),
    spec!("debug", Debug, -2, CONN, 0, 0, 0, Route::Conn),
    spec!("function", Function, -2, CONN, 0, 0, 0, Route::Conn),
    spec!("reset", Reset, 1, CONN, 0, 0, 0, Route::Conn),
    spec!("multi", Multi, 1, CONN, 0, 0, 0, Route::Conn),
    spec!("exec", Exec, 1, CONN, 0, 0, 0, Route::Conn),
    spec!("discard", Discard, 1, CONN, 0, 0, 0, Route::Conn),
    spec!("watch", Watch, -2, CONN, 1, -1, 1, Route::Conn),
    spec!("unwatch", Unwatch, 1, CONN, 0, 0, 0, Route::Conn),
    spec!(
        "save",
        Save,
        1,
        &["admin", "noscript"],
        0,
        0,
        0,
        Route::Conn
    ),
    spec!(
        "bgsave",
        Save,
        -1,
        &["admin", "noscript"],
        0,
        0,
        0,
        Route::Conn
    ),
    spec!(
        "bgrewriteaof",
        Save,
        1,
        &["admin", "noscript"],
        0,
        0,
        0,
        Route::Conn
    ),
    spec!(
        "slowlog",
        SlowLog,
        -2,
        &["admin", "random", "loading", "stale"],
        0,
        0,
        0,
        Route::All
    ),
    spec!(
        "lastsave",
        Save,
        1,
        &["fast", "loading", "stale"],
        0,
        0,
        0,
        Route::Conn
    ),
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
    spec!("pubsub", PubSubInfo, -2, PUBSUB, 0, 0, 0, Route::All),
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
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
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
