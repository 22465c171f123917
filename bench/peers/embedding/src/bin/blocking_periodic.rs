//! examples/blocking_periodic.rs on tokio: `spawn_blocking` for the CPU work, one periodic
//! task for the process (tokio has no per-shard tasks), atomics for the shared stats.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

const TICK: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Stats {
    served: AtomicU64,
    ticks: AtomicU64,
    per_tick: AtomicU64,
}

fn count_primes(below: u64) -> usize {
    (2..below)
        .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .count()
}

async fn handle(stream: TcpStream, stats: Arc<Stats>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(64).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') && line.len() == 64 => break,
            Ok(_) => {}
        }
        let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["PRIMES", n] => match n.parse::<u64>() {
                Ok(n) if n <= 10_000_000 => {
                    match tokio::task::spawn_blocking(move || count_primes(n)).await {
                        Ok(count) => format!("{count}\n"),
                        Err(e) => format!("ERR {e}\n"),
                    }
                }
                _ => "ERR n must be a number up to 10000000\n".to_string(),
            },
            ["STATS"] => format!(
                "ticks {} per_tick {}\n",
                stats.ticks.load(Relaxed),
                stats.per_tick.load(Relaxed)
            ),
            _ => "ERR expected PRIMES n or STATS\n".to_string(),
        };
        stats.served.fetch_add(1, Relaxed);
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = write.write_all(b"ERR line too long\n").await;
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7200".into());
    let listener = TcpListener::bind(addr).await.unwrap();
    let stats = Arc::new(Stats::default());
    let ticker = stats.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(TICK);
        loop {
            ticks.tick().await;
            ticker.ticks.fetch_add(1, Relaxed);
            let served = ticker.served.swap(0, Relaxed);
            ticker.per_tick.store(served, Relaxed);
            tracing::debug!(requests = served, "tick");
        }
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => drop(tokio::spawn(handle(stream, stats.clone()))),
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
