//! Connection and server commands: PING, ECHO, QUIT, SELECT, CLIENT, COMMAND, CONFIG and
//! INFO (which gathers every shard's figures through the mesh).
//!
//! This file holds the dispatch ([`connection_command`]) and the small commands (COMMAND,
//! HELLO, TIME, DEBUG, FUNCTION); the larger ones have their own files:
//! - `client`: CLIENT, on this connection and over every shard's connections;
//! - `config`: CONFIG GET, SET, RESETSTAT and the parameters read live;
//! - `info`: INFO, gathered from every shard;
//! - `slowlog`: SLOWLOG, merged from every shard's log.

mod client;
mod config;
mod info;
mod slowlog;

use self::{client::client, config::config};
pub use self::{client::client_fanout, info::info, slowlog::slowlog};
use crate::{
    commands::table::{COMMANDS, Cmd, NOT_INTEGER, Spec, lookup, wrong_arity},
    conn::{Conn, ping},
    params, resp,
    store::DATABASES,
};

/// A command about the connection or the server, answered on this shard.
pub fn connection_command(conn: &mut Conn, spec: &Spec, args: &[Vec<u8>], out: &mut Vec<u8>) {
    conn.count_command();
    match spec.cmd {
        Cmd::Ping if args.len() > 2 => resp::error(out, &wrong_arity("ping")),
        Cmd::Ping => ping(conn, args, out),
        Cmd::Echo => resp::bulk(out, &args[1]),
        Cmd::Quit => {
            resp::ok(out);
            conn.closing = true;
        }
        Cmd::Select => match crate::resp::parse_int(&args[1]) {
            Some(db) if (0..DATABASES as i64).contains(&db) => {
                conn.db = db as usize;
                resp::ok(out)
            }
            Some(_) => resp::error(out, "ERR DB index is out of range"),
            None => resp::error(out, NOT_INTEGER),
        },
        Cmd::Client => client(conn, args, out),
        Cmd::Command => command(args, out),
        Cmd::Config => config(conn, args, out),
        Cmd::Hello => hello(conn, args, out),
        Cmd::Time => time(out),
        Cmd::Debug => debug(args, out),
        Cmd::Function => function(args, out),
        Cmd::Multi if conn.multi.is_some() => resp::error(out, "ERR MULTI calls can not be nested"),
        Cmd::Multi => {
            conn.multi = Some(crate::conn::Multi::default());
            resp::ok(out)
        }
        Cmd::Discard => match conn.multi.take() {
            Some(_) => {
                unwatch(conn);
                resp::ok(out)
            }
            None => resp::error(out, "ERR DISCARD without MULTI"),
        },
        Cmd::Unwatch => {
            unwatch(conn);
            resp::ok(out)
        }
        Cmd::Reset => {
            unwatch(conn);
            conn.multi = None;
            conn.db = 0;
            conn.name = None;
            conn.resp = 2;
            resp::simple(out, "RESET");
        }
        _ => resp::error(out, "ERR internal: not a connection command"),
    }
    if matches!(
        spec.cmd,
        Cmd::Select | Cmd::Client | Cmd::Hello | Cmd::Reset
    ) {
        conn.publish_state();
    }
}

/// Drops the connection's watch, if any.
fn unwatch(conn: &mut Conn) {
    if let Some(watching) = conn.watching.take() {
        crate::watch::forget(conn, watching);
    }
}

fn unknown_subcommand(out: &mut Vec<u8>, sub: &[u8], command: &str) {
    resp::error(
        out,
        &format!(
            "ERR unknown subcommand '{}'. Try {command} HELP.",
            String::from_utf8_lossy(sub)
        ),
    );
}

/// One COMMAND entry, in Redis 7's 10-field shape.
fn command_entry(spec: &Spec, out: &mut Vec<u8>) {
    resp::array(out, 10);
    resp::bulk(out, spec.name.as_bytes());
    resp::integer(out, i64::from(spec.arity));
    resp::array(out, spec.flags.len());
    for flag in spec.flags {
        resp::simple(out, flag);
    }
    resp::integer(out, i64::from(spec.first_key));
    resp::integer(out, i64::from(spec.last_key));
    resp::integer(out, i64::from(spec.step));
    for _ in 0..4 {
        resp::array(out, 0); // ACL categories, tips, key specs, subcommands.
    }
}

fn command(args: &[Vec<u8>], out: &mut Vec<u8>) {
    let Some(sub) = args.get(1) else {
        resp::array(out, COMMANDS.len());
        for spec in COMMANDS {
            command_entry(spec, out);
        }
        return;
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" => resp::integer(out, COMMANDS.len() as i64),
        // No documentation: an empty map (as a flat RESP2 array), which redis-cli accepts.
        b"DOCS" => resp::array(out, 0),
        b"INFO" => {
            resp::array(out, args.len() - 2);
            for name in &args[2..] {
                match lookup(name) {
                    Some(spec) => command_entry(spec, out),
                    None => resp::null_array(out),
                }
            }
        }
        b"LIST" => {
            resp::array(out, COMMANDS.len());
            for spec in COMMANDS {
                resp::bulk(out, spec.name.as_bytes());
            }
        }
        _ => unknown_subcommand(out, sub, "COMMAND"),
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: switches the connection to RESP2 or
/// RESP3 and answers the server's description (a map).
fn hello(conn: &mut Conn, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut version = conn.resp;
    if let Some(arg) = args.get(1) {
        match crate::resp::parse_int(arg) {
            Some(v @ (2 | 3)) => version = v as u8,
            Some(_) => return resp::error(out, "NOPROTO unsupported protocol version"),
            None => {
                return resp::error(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                );
            }
        }
    }
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"SETNAME" if i + 1 < args.len() => {
                conn.name = (!args[i + 1].is_empty()).then(|| args[i + 1].clone());
                i += 2;
            }
            b"AUTH" if i + 2 < args.len() => {
                return resp::error(
                    out,
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                );
            }
            _ => {
                return resp::error(
                    out,
                    &format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&args[i])
                    ),
                );
            }
        }
    }
    conn.resp = version;
    conn.speak();
    resp::map(out, 7);
    for (field, value) in [("server", "redis"), ("version", "7.0.0")] {
        resp::bulk(out, field.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::integer(out, i64::from(version));
    resp::bulk(out, b"id");
    resp::integer(out, conn.id as i64);
    for (field, value) in [("mode", "standalone"), ("role", "master")] {
        resp::bulk(out, field.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"modules");
    resp::array(out, 0);
}

/// TIME: Unix seconds and microseconds.
fn time(out: &mut Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    resp::array(out, 2);
    resp::bulk_int(out, now.as_secs() as i64);
    resp::bulk_int(out, i64::from(now.subsec_micros()));
}

/// DEBUG: the subcommands clients and test suites use that mean something here.
/// RELOAD saves and loads nothing (there is no persistence, so the data after it is the
/// data before); SET-ACTIVE-EXPIRE turns the active expiry sweep off and on.
fn debug(args: &[Vec<u8>], out: &mut Vec<u8>) {
    let sub = args[1].to_ascii_uppercase();
    match (sub.as_slice(), args.len()) {
        (b"SET-ACTIVE-EXPIRE", 3) => match args[2].as_slice() {
            b"0" | b"1" => {
                params::set_active_expire(args[2] == b"1");
                resp::ok(out)
            }
            _ => resp::error(out, NOT_INTEGER),
        },
        (b"RELOAD", _) | (b"QUICKLIST-PACKED-THRESHOLD", 3) | (b"CHANGE-REPL-ID", 2) => {
            resp::ok(out)
        }
        (b"SLEEP", 3) if args[2] == b"0" => resp::ok(out),
        _ => resp::error(
            out,
            &format!(
                "ERR unknown subcommand '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&args[1])
            ),
        ),
    }
}

/// FUNCTION FLUSH (there are no functions: nothing to flush).
fn function(args: &[Vec<u8>], out: &mut Vec<u8>) {
    match args[1].to_ascii_uppercase().as_slice() {
        b"FLUSH" if args.len() <= 3 => resp::ok(out),
        _ => unknown_subcommand(out, &args[1], "FUNCTION"),
    }
}
