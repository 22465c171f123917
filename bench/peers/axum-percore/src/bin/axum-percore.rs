//! The benchmark's axum Router (the one `axum-tokio` serves) on percore: one shard per
//! `--threads`, each running hyper's HTTP/1 on its own io_uring ring.
//!
//!   axum-percore --listen 127.0.0.1:8080 --threads 1

#[path = "../../../axum-tokio/src/lib.rs"]
mod router;

use peer_common::Args;
use percore::{Server, compat::HttpServer};

fn main() {
    let args = Args::parse("axum-percore");
    // What `axum::serve` does per connection: turn the Router's handlers into routes once,
    // instead of on every request (a Router that never had `with_state` converts each
    // handler per call: a boxed clone and a free per request).
    let app: axum::Router = router::router().with_state(());
    let server = HttpServer::new(Server::builder().shards(args.threads).handle_signals(true))
        .serve(args.listen, move || app.clone())
        .unwrap_or_else(|e| {
            eprintln!("axum-percore: {e}");
            std::process::exit(1)
        });
    if let Err(e) = server.join() {
        eprintln!("axum-percore: {e}");
        std::process::exit(1);
    }
}
