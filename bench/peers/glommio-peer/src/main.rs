//! glommio: one `LocalExecutor` per thread, each with its own `SO_REUSEPORT` listener
//! (glommio's `TcpListener::bind` sets it), and the same minimal hand-written responder as
//! raw-uring and monoio-peer: read, count request ends, write one response per request in a
//! single write. glommio registers 10 MiB of I/O memory per executor: that needs a locked
//! memory limit above it or CAP_IPC_LOCK (root here).
//!
//!   glommio-peer --listen 127.0.0.1:8080 --threads 1

use std::cell::RefCell;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::{
    LocalExecutorBuilder, Placement,
    net::{TcpListener, TcpStream},
};
use peer_common::{Args, RequestEnds, Response};

thread_local! {
    static RESPONSE: RefCell<Response> = RefCell::new(Response::new());
}

fn main() {
    let args = Args::parse("glommio-peer");
    peer_common::run_threads(args.threads, move |i| {
        let listen = args.listen;
        let ex = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("glommio-{i}"))
            .make()
            .expect("glommio executor");
        if let Err(e) = ex.run(serve(listen)) {
            eprintln!("glommio-peer: {e}");
            std::process::exit(1);
        }
    });
}

async fn serve(listen: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    loop {
        let stream = listener.accept().await?;
        stream.set_nodelay(true)?;
        glommio::spawn_local(respond(stream)).detach();
    }
}

async fn respond(mut stream: TcpStream) {
    let mut ends = RequestEnds::default();
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let requests = ends.feed(&buf[..n]);
        if requests == 0 {
            continue;
        }
        out.clear();
        RESPONSE.with_borrow_mut(|r| {
            r.refresh();
            r.append(&mut out, requests);
        });
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}
