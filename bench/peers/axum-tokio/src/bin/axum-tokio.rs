//! axum on tokio the thread-per-core way: one `current_thread` runtime per thread, each with
//! its own `SO_REUSEPORT` listener, served by `axum::serve`.
//!
//!   axum-tokio --listen 127.0.0.1:8080 --threads 1

use peer_common::Args;

fn main() {
    let args = Args::parse("axum-tokio");
    peer_common::run_threads(args.threads, move |_| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("tokio runtime");
        let served: std::io::Result<()> = rt.block_on(async {
            let std_listener = peer_common::reuseport_listener(args.listen)?;
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            axum::serve(listener, axum_tokio::router()).await
        });
        if let Err(e) = served {
            eprintln!("axum-tokio: {e}");
            std::process::exit(1);
        }
    });
}
