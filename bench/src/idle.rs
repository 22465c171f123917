//! `percore-bench idle`: opens many connections and holds them idle, so a script can read
//! the server's memory with them open. With `--ping` each connection first has one byte
//! echoed (so the server has received on it once) before going idle: idle after use is the
//! case where a per-connection receive buffer would show.

use std::{
    cell::{Cell, RefCell},
    net::SocketAddr,
    rc::Rc,
    sync::mpsc,
    time::{Duration, Instant},
};

use percore::{Server, TcpStream, shutdown_signal, time::timeout};

use crate::{measure, report::JsonObject};

#[derive(Clone, Debug)]
pub struct IdleConfig {
    pub target: SocketAddr,
    pub connections: usize,
    pub hold: Duration,
    pub shards: usize,
    /// Connects in flight at once, over all shards (more than the listen backlog only
    /// makes the kernel drop SYNs and retry them a second later).
    pub concurrency: usize,
    pub ping: bool,
    pub timeout: Duration,
}

/// What the connection phase achieved.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdleReport {
    pub requested: usize,
    pub opened: u64,
    pub failed: u64,
    pub connect_secs: f64,
}

impl IdleReport {
    pub fn to_text(&self) -> String {
        format!(
            "idle: holding {} of {} connections ({} failed) after {:.2} s",
            self.opened, self.requested, self.failed, self.connect_secs
        )
    }

    pub fn to_json(&self) -> String {
        JsonObject::default()
            .str("mode", "idle")
            .num("requested", self.requested as f64)
            .num("opened", self.opened as f64)
            .num("failed", self.failed as f64)
            .num("connect_secs", self.connect_secs)
            .finish()
    }
}

/// Opens the connections, calls `holding` once they are all open (or failed), holds them
/// for `cfg.hold`, then closes them.
pub fn run(cfg: IdleConfig, holding: impl FnOnce(&IdleReport)) -> Result<IdleReport, String> {
    if cfg.shards == 0 || cfg.concurrency == 0 {
        return Err("shards and concurrency must be at least 1".into());
    }
    let (tx, rx) = mpsc::channel::<(u64, u64)>();
    let started = Instant::now();
    let setup_cfg = cfg.clone();
    let handle = Server::builder()
        .shards(cfg.shards)
        .start(move |info| {
            let (cfg, tx) = (setup_cfg.clone(), tx.clone());
            Ok(async move {
                let held = Rc::new(RefCell::new(Vec::new()));
                let (opened, failed) = open_share(&cfg, info.id, info.count, &held).await;
                let _ = tx.send((opened, failed));
                // Hold until the main thread stops the shards.
                shutdown_signal().await;
                drop(held);
            })
        })
        .map_err(|e| format!("starting the client shards: {e}"))?;
    // Bounded: every connect and ping has a timeout, so this deadline is only a backstop.
    let deadline = Instant::now() + Duration::from_secs(600);
    let shares = measure::collect(&rx, cfg.shards, deadline);
    let report = IdleReport {
        requested: cfg.connections,
        opened: shares.iter().map(|s| s.0).sum(),
        failed: shares.iter().map(|s| s.1).sum(),
        connect_secs: started.elapsed().as_secs_f64(),
    };
    holding(&report);
    std::thread::sleep(cfg.hold);
    measure::stop(handle, Duration::from_secs(10))?;
    Ok(report)
}

/// Opens this shard's share (connection ids `shard, shard + shards, ...`) with a bounded
/// number of connects in flight; returns (opened, failed).
async fn open_share(
    cfg: &IdleConfig,
    shard: usize,
    shards: usize,
    held: &Rc<RefCell<Vec<TcpStream>>>,
) -> (u64, u64) {
    let ids: Rc<RefCell<Vec<usize>>> = Rc::new(RefCell::new(
        (shard..cfg.connections).step_by(shards).rev().collect(),
    ));
    let (opened, failed) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let workers = (cfg.concurrency / shards).max(1);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (ids, held, opened, failed) =
                (ids.clone(), held.clone(), opened.clone(), failed.clone());
            let (target, ping, limit) = (cfg.target, cfg.ping, cfg.timeout);
            percore::spawn(async move {
                loop {
                    let next = ids.borrow_mut().pop();
                    if next.is_none() {
                        break;
                    }
                    match open_one(target, ping, limit).await {
                        Some(stream) => {
                            held.borrow_mut().push(stream);
                            opened.set(opened.get() + 1);
                        }
                        None => failed.set(failed.get() + 1),
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    (opened.get(), failed.get())
}

/// One connection, optionally with one echoed byte; `None` on any failure.
async fn open_one(target: SocketAddr, ping: bool, limit: Duration) -> Option<TcpStream> {
    let mut stream = timeout(limit, TcpStream::connect(target))
        .await
        .ok()?
        .ok()?;
    if ping {
        stream.write_buffered(b"p").ok()?;
        let echoed = timeout(limit, stream.read_with(|data| (data.len(), data == b"p")))
            .await
            .ok()?
            .ok()??;
        if !echoed {
            return None;
        }
    }
    Some(stream)
}
