//! Shared by the kv integration tests: a server on port 0 with two shards, a raw RESP
//! client that shows replies byte-exactly, connections placed on a chosen shard, and keys
//! owned by a chosen shard.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use percore::{Server, ServerHandle};
use percore_kv::{Config, hash::owner};

pub const SHARDS: usize = 2;

/// A running kv server; stopped when dropped.
pub struct KvServer {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
}

impl KvServer {
    pub fn start() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let handle = percore_kv::serve(
            Server::builder()
                .shards(SHARDS)
                .drain_timeout(Duration::from_secs(2)),
            "127.0.0.1:0".parse().unwrap(),
            config,
        )
        .expect("kv server starts");
        let addr = handle.listen_addr().expect("listening");
        KvServer {
            handle: Some(handle),
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr)
    }

    /// A raw connection served by `shard` (connections land where SO_REUSEPORT puts them:
    /// this reconnects until one lands there, a bounded number of times).
    pub fn raw_on(&self, shard: usize) -> Raw {
        for _ in 0..200 {
            let mut raw = self.raw();
            if raw.shard() == shard {
                return raw;
            }
        }
        panic!("no connection landed on shard {shard} in 200 tries");
    }

    /// A `redis` crate connection served by `shard`.
    pub fn redis_on(&self, shard: usize) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..200 {
            let mut con = client.get_connection().expect("connect");
            let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut con).unwrap();
            if shard_of(&info) == shard {
                return con;
            }
        }
        panic!("no connection landed on shard {shard} in 200 tries");
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop_within(Duration::from_millis(200));
            let _ = handle.join();
        }
    }
}

fn shard_of(client_info: &str) -> usize {
    client_info
        .split_whitespace()
        .find_map(|f| f.strip_prefix("shard="))
        .and_then(|s| s.parse().ok())
        .expect("CLIENT INFO names the shard")
}

/// A key that `shard` owns, made from `prefix` and a counter.
pub fn key_on(shard: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| owner(k.as_bytes(), SHARDS) == shard)
        .unwrap()
}

/// `n` distinct keys owned by `shard`.
pub fn keys_on(shard: usize, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| owner(k.as_bytes(), SHARDS) == shard)
        .take(n)
        .collect()
}

/// A raw RESP client: commands go out as multibulk, replies come back as their exact bytes.
pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn shard(&mut self) -> usize {
        let info = self.cmd(&["CLIENT", "INFO"]);
        shard_of(&info)
    }

    /// Encodes one command.
    pub fn encode(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        out
    }

    /// Closes both directions now (the server sees EOF, or a reset if replies then arrive).
    pub fn shutdown(&self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends one command and returns its reply's bytes.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.send_bytes(&Self::encode(args));
        self.reply()
    }

    /// Reads one whole reply (nested arrays included), as its exact text.
    pub fn reply(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a reply");
        assert!(n > 0, "connection closed before a reply");
        let mut text = line.clone();
        let count = line[1..].trim_end().parse::<i64>().unwrap_or(-1);
        match line.as_bytes()[0] {
            b'$' if count >= 0 => {
                let mut data = vec![0; count as usize + 2];
                self.reader.read_exact(&mut data).unwrap();
                text.push_str(&String::from_utf8_lossy(&data));
            }
            b'*' => {
                for _ in 0..count.max(0) {
                    text.push_str(&self.reply());
                }
            }
            _ => {}
        }
        text
    }

    /// Reads whatever is still coming; true when it ends in EOF or a reset (not a timeout).
    pub fn ends(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    }

    /// True when the server closed the connection (EOF within the read timeout).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

/// RESP text of a bulk string.
pub fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// RESP text of an array of bulk strings.
pub fn bulks(items: &[&str]) -> String {
    let mut text = format!("*{}\r\n", items.len());
    for i in items {
        text.push_str(&bulk(i));
    }
    text
}
