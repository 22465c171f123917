//! tokio + hyper for the heavy-request scenario (bench/scripts/steer_heavy.sh), written the
//! way a tokio user would: one multi-thread runtime (`--threads` workers, one listener),
//! and the CPU-heavy route moved off the workers with `tokio::task::spawn_blocking`.
//!
//!   GET /          -> "Hello, World!"
//!   GET /work?ms=N -> burns N ms of CPU (at most 10 s) on tokio's blocking pool, then answers.
//!
//!   tokio-work --listen 127.0.0.1:8080 --threads 2

use std::{
    convert::Infallible,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use peer_common::{Args, BODY};

/// Spins for `ms` milliseconds of wall time.
fn burn(ms: u64) -> u64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    ms
}

fn text(body: Bytes) -> Response<Full<Bytes>> {
    let length = body.len();
    let mut res = Response::new(Full::new(body));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(length));
    res
}

async fn route(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/work" {
        return Ok(text(Bytes::from_static(BODY)));
    }
    let ms = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms=")?.parse::<u64>().ok())
        .unwrap_or(0)
        .min(10_000);
    let burned = tokio::task::spawn_blocking(move || burn(ms))
        .await
        .unwrap_or(0);
    Ok(text(Bytes::from(format!("burned {burned} ms\n"))))
}

fn main() {
    let args = Args::parse("tokio-work");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_io()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(serve(args)) {
        eprintln!("tokio-work: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service_fn(route))
                .await;
        });
    }
}
