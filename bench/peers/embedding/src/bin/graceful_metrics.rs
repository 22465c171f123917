//! examples/graceful_metrics.rs on axum/tokio: the line protocol on tokio, `/metrics` on
//! axum with the `prometheus` crate, and the graceful stop by hand (a signal, a shutdown
//! channel the connections watch, a tracker to wait for them, a drain deadline).

use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, Registry, TextEncoder};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tokio_util::task::TaskTracker;

#[derive(Clone)]
struct Metrics {
    served: IntCounter,
    in_flight: IntGauge,
    work: Histogram,
}

impl Metrics {
    fn register(registry: &Registry) -> Metrics {
        let served = IntCounter::new("app_requests_total", "Requests served.").unwrap();
        let in_flight = IntGauge::new("app_in_flight", "Requests in progress.").unwrap();
        let work = Histogram::with_opts(HistogramOpts::new(
            "app_work_seconds",
            "Time spent on WORK.",
        ))
        .unwrap();
        registry.register(Box::new(served.clone())).unwrap();
        registry.register(Box::new(in_flight.clone())).unwrap();
        registry.register(Box::new(work.clone())).unwrap();
        Metrics {
            served,
            in_flight,
            work,
        }
    }
}

async fn handle(stream: TcpStream, metrics: Metrics, mut stop: watch::Receiver<bool>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(64);
        tokio::select! {
            read = limited.read_line(&mut line) => match read {
                Ok(n) if n > 0 && line.ends_with('\n') => {}
                _ => return,
            },
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let reply = match line.trim().strip_prefix("WORK ").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms <= 5000 => {
                metrics.in_flight.inc();
                let started = Instant::now();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                metrics.work.observe(started.elapsed().as_secs_f64());
                metrics.in_flight.dec();
                "done\n"
            }
            _ => "ERR expected WORK ms (ms <= 5000)\n",
        };
        metrics.served.inc();
        if write.write_all(reply.as_bytes()).await.is_err() || *stop.borrow() {
            return;
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or("127.0.0.1:7300".into());
    let admin = args.next().unwrap_or("127.0.0.1:9300".into());
    let registry = Registry::new();
    let metrics = Metrics::register(&registry);
    let app = Router::new().route(
        "/metrics",
        get(move || async move {
            let mut out = Vec::new();
            TextEncoder::new()
                .encode(&registry.gather(), &mut out)
                .unwrap();
            out
        }),
    );
    let admin = TcpListener::bind(admin).await.unwrap();
    tokio::spawn(async move { axum::serve(admin, app).await.unwrap() });
    let listener = TcpListener::bind(addr).await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    let mut sigterm = signal(SignalKind::terminate()).unwrap();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => drop(tracker.spawn(handle(stream, metrics.clone(), stop_rx.clone()))),
                Err(e) => eprintln!("accept: {e}"),
            },
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(30), tracker.wait()).await;
}
