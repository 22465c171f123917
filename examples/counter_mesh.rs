//! A sharded counter over a line protocol: `INCR key` and `GET key` answer the key's count.
//! Each key lives on one shard (its hash modulo the shard count), in that shard's own map;
//! a connection on another shard reaches it through the mesh. Lines longer than 256 bytes
//! are refused and the connection closed.
//!
//! Length: 49 code lines (neither blank nor comment) against 48 for the same service on
//! tokio, one shared map behind a mutex (bench/peers/embedding/src/bin/counter.rs): 1.02x
//! (bench/scripts/embedding_loc.sh). The tokio one stops at once on SIGTERM; this one
//! drains (`handle_signals`), which the tokio one would need about 15 more lines for.
//!
//!     cargo run --example counter_mesh -- 127.0.0.1:7100
//!     printf 'INCR a\nINCR a\nGET a\n' | nc -q1 127.0.0.1 7100

use std::{
    cell::RefCell,
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
};

use percore::{Error, PerShard, Server, ServerBuilder, ServerHandle, TcpStream, mesh};

static COUNTS: PerShard<RefCell<HashMap<String, u64>>> = PerShard::new();

fn owner(key: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % mesh::shard_count() as u64) as usize
}

async fn handle(mut stream: TcpStream) {
    let mut line = String::new();
    while let Ok(n) = stream.read_line(&mut line, 256).await {
        let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
            _ if n == 0 => return,
            [cmd @ ("INCR" | "GET"), key] => {
                let (incr, key) = (cmd == "INCR", key.to_string());
                let count = mesh::submit_to(owner(&key), move || {
                    let counts = COUNTS.get_or_init(Default::default);
                    let mut counts = counts.borrow_mut();
                    let count = counts.entry(key).or_default();
                    *count += u64::from(incr);
                    *count
                })
                .await;
                count.map_or_else(|e| format!("ERR {e}\n"), |n| format!("{n}\n"))
            }
            _ => "ERR expected INCR key or GET key\n".to_string(),
        };
        line.clear();
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = stream.write_all(b"ERR line too long\n").await;
}

pub fn start(builder: ServerBuilder, addr: &str) -> Result<ServerHandle, Error> {
    let addr = addr
        .parse()
        .map_err(|e| Error::Config(format!("{addr}: {e}")))?;
    builder.serve(addr, handle)
}

fn main() -> Result<(), Error> {
    tracing_subscriber::fmt::init(); // percore logs through `tracing`: this prints them
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7100".into());
    start(Server::builder().handle_signals(true), &addr)?.join()
}
