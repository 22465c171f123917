//! hyper 1.x over tokio-rustls: one `current_thread` tokio runtime per thread with its own
//! `SO_REUSEPORT` listener, rustls with the ring provider (as percore), TLS 1.3 and 1.2,
//! ALPN http/1.1, stateless session tickets. The same response bytes as the plaintext
//! tokio-hyper peer.
//!
//!   hyper-rustls --listen 127.0.0.1:8443 --threads 1   (PEM paths in TLS_CERT, TLS_KEY)

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use peer_common::{Args, BODY};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{self, ServerConfig},
};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from_static("13"));
    Ok(res)
}

fn config() -> Arc<ServerConfig> {
    let path = |var: &str| std::env::var(var).unwrap_or_else(|_| panic!("{var} (a PEM path) is not set"));
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(path("TLS_CERT")).expect("TLS_CERT"),
    ))
    .collect::<Result<Vec<_>, _>>()
    .expect("certificates");
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(path("TLS_KEY")).expect("TLS_KEY"),
    ))
    .expect("key")
    .expect("a private key");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    Arc::new(config)
}

fn main() {
    let args = Args::parse("hyper-rustls");
    let config = config();
    peer_common::run_threads(args.threads, move |_| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("tokio runtime");
        if let Err(e) = rt.block_on(serve(args.clone(), config.clone())) {
            eprintln!("hyper-rustls: {e}");
            std::process::exit(1);
        }
    });
}

async fn serve(args: Args, config: Arc<ServerConfig>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(peer_common::reuseport_listener(args.listen)?)?;
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let _ = http1::Builder::new()
                .title_case_headers(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(tls), service_fn(hello))
                .await;
        });
    }
}
