//! tokio + hyper 1.x: one `current_thread` runtime per thread, each with its own
//! `SO_REUSEPORT` listener (thread-per-core the tokio way). hyper writes the Date header itself
//! (cached per second); title-case header names give the same bytes as every other peer.
//! `pipeline_flush` lets hyper batch the responses to pipelined requests into one write.
//!
//!   tokio-hyper --listen 127.0.0.1:8080 --threads 1

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use peer_common::{Args, BODY};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from_static("13"));
    Ok(res)
}

fn main() {
    let args = Args::parse("tokio-hyper");
    peer_common::run_threads(args.threads, move |_| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("tokio runtime");
        if let Err(e) = rt.block_on(serve(args.clone())) {
            eprintln!("tokio-hyper: {e}");
            std::process::exit(1);
        }
    });
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(peer_common::reuseport_listener(args.listen)?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .title_case_headers(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
