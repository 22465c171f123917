//! CPU work on the blocking pool and a per-shard periodic task, over a line protocol:
//! `PRIMES n` counts the primes below `n` (at most 10 000 000) on the blocking pool, so the
//! shard goes on serving meanwhile; `STATS` answers this shard's periodic report. Each shard
//! runs a periodic task (started by the init hook, cancelled when the server stops) that
//! turns the requests counted since its last tick into the shard's rate.
//!
//! Length: 71 code lines (neither blank nor comment) against 82 for the same service on
//! tokio, one periodic task for the process (bench/peers/embedding/src/bin/blocking_periodic.rs):
//! 0.87x (bench/scripts/embedding_loc.sh).
//!
//!     cargo run --example blocking_periodic -- 127.0.0.1:7200
//!     printf 'PRIMES 1000000\nSTATS\n' | nc -q1 127.0.0.1 7200

use std::{cell::Cell, time::Duration};

use percore::{
    Error, PerShard, Server, ServerBuilder, ServerHandle, TcpStream, spawn, spawn_blocking,
};

const TICK: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Stats {
    served: Cell<u64>,
    ticks: Cell<u64>,
    per_tick: Cell<u64>,
}

static STATS: PerShard<Stats> = PerShard::new();

fn count_primes(below: u64) -> usize {
    (2..below)
        .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .count()
}

async fn handle(mut stream: TcpStream) {
    let mut line = String::new();
    while let Ok(n) = stream.read_line(&mut line, 64).await {
        let stats = STATS.get();
        let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
            _ if n == 0 => return,
            ["PRIMES", n] => match n.parse::<u64>() {
                Ok(n) if n <= 10_000_000 => match spawn_blocking(move || count_primes(n)).await {
                    Ok(count) => format!("{count}\n"),
                    Err(e) => format!("ERR {e}\n"),
                },
                _ => "ERR n must be a number up to 10000000\n".to_string(),
            },
            ["STATS"] => format!(
                "ticks {} per_tick {} shard {}\n",
                stats.ticks.get(),
                stats.per_tick.get(),
                percore::mesh::shard_id()
            ),
            _ => "ERR expected PRIMES n or STATS\n".to_string(),
        };
        stats.served.set(stats.served.get() + 1);
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
    let builder = builder.on_shard_start(|shard| {
        STATS.set(Stats::default());
        spawn(async move {
            let mut ticks = percore::interval(TICK);
            loop {
                ticks.tick().await;
                let stats = STATS.get();
                stats.ticks.set(stats.ticks.get() + 1);
                stats.per_tick.set(stats.served.replace(0));
                tracing::debug!(shard = shard.id, requests = stats.per_tick.get(), "tick");
            }
        });
        Ok(())
    });
    builder.serve(addr, handle)
}

fn main() -> Result<(), Error> {
    tracing_subscriber::fmt::init(); // percore logs through `tracing`: this prints them
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7200".into());
    start(Server::builder().handle_signals(true), &addr)?.join()
}
