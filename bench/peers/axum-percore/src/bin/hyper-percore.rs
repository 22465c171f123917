//! A hyper `service_fn` on percore's compat layer (the `tokio-hyper` peer's service): the
//! price of hyper on percore next to percore's own HTTP service.
//!
//!   hyper-percore --listen 127.0.0.1:8080 --threads 1

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, service::service_fn};
use peer_common::{Args, BODY};
use percore::{Server, compat::HttpServer};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from_static("13"));
    Ok(res)
}

fn main() {
    let args = Args::parse("hyper-percore");
    let server = HttpServer::new(Server::builder().shards(args.threads).handle_signals(true))
        .serve_hyper(args.listen, || service_fn(hello))
        .unwrap_or_else(|e| {
            eprintln!("hyper-percore: {e}");
            std::process::exit(1)
        });
    if let Err(e) = server.join() {
        eprintln!("hyper-percore: {e}");
        std::process::exit(1);
    }
}
