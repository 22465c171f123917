//! axum on tokio as most people run it: one multi-thread runtime (`--threads` workers), one
//! listener, `axum::serve`.
//!
//!   axum-tokio-mt --listen 127.0.0.1:8080 --threads 1

use peer_common::Args;

fn main() {
    let args = Args::parse("axum-tokio-mt");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_io()
        .build()
        .expect("tokio runtime");
    let served: std::io::Result<()> = rt.block_on(async {
        let std_listener = peer_common::reuseport_listener(args.listen)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        axum::serve(listener, axum_tokio::router()).await
    });
    if let Err(e) = served {
        eprintln!("axum-tokio-mt: {e}");
        std::process::exit(1);
    }
}
