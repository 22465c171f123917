//! monoio (io_uring driver): one runtime per thread, each with its own `SO_REUSEPORT`
//! listener, and the same minimal hand-written responder as raw-uring and glommio-peer: read,
//! count request ends, write one response per request in a single write.
//!
//!   monoio-peer --listen 127.0.0.1:8080 --threads 1

use std::cell::RefCell;

use monoio::{
    io::{AsyncReadRent, AsyncWriteRentExt},
    net::{TcpListener, TcpStream},
};
use peer_common::{Args, RequestEnds, Response};

thread_local! {
    static RESPONSE: RefCell<Response> = RefCell::new(Response::new());
}

fn main() {
    let args = Args::parse("monoio-peer");
    peer_common::run_threads(args.threads, move |_| {
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(1024)
            .build()
            .expect("monoio runtime");
        if let Err(e) = rt.block_on(serve(args.clone())) {
            eprintln!("monoio-peer: {e}");
            std::process::exit(1);
        }
    });
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::from_std(peer_common::reuseport_listener(args.listen)?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        monoio::spawn(respond(stream));
    }
}

async fn respond(mut stream: TcpStream) {
    let mut ends = RequestEnds::default();
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let requests = ends.feed(&buf[..n]);
        buf.clear();
        if requests == 0 {
            continue;
        }
        out.clear();
        RESPONSE.with_borrow_mut(|r| {
            r.refresh();
            r.append(&mut out, requests);
        });
        let (res, o) = stream.write_all(out).await;
        out = o;
        if res.is_err() {
            return;
        }
    }
}
