//! hyper 1.x on percore, the smallest server: `GET /` (any path) → `Hello, World!`, one
//! shard per CPU (or `--shards N`), each running hyper's HTTP/1 on its own io_uring ring.
//!
//!   cargo run --release --example hyper_hello -- --listen 127.0.0.1:3000

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use percore::{Server, compat::HttpServer};

pub async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().expect("a valid default address");
    let mut builder = Server::builder().handle_signals(true);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--listen" => {
                listen = value
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--listen {value}: {e}")))
            }
            "--shards" => {
                let n = value
                    .parse()
                    .unwrap_or_else(|e| fail(&format!("--shards {value}: {e}")));
                builder = builder.shards(n);
            }
            _ => fail("usage: hyper_hello [--listen ADDR] [--shards N]"),
        }
    }
    let server = HttpServer::new(builder)
        .serve_hyper(listen, || service_fn(hello))
        .unwrap_or_else(|e| fail(&format!("cannot serve on {listen}: {e}")));
    eprintln!("hyper_hello: listening on http://{listen}");
    server
        .join()
        .unwrap_or_else(|e| fail(&format!("stopped with an error: {e}")));
}

fn fail(message: &str) -> ! {
    eprintln!("hyper_hello: {message}");
    std::process::exit(2)
}
