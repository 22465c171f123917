//! examples/counter_mesh.rs on tokio: one map behind a mutex, shared by every connection.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

type Counts = Arc<Mutex<HashMap<String, u64>>>;

async fn handle(stream: TcpStream, counts: Counts) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(256).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') && line.len() == 256 => break,
            Ok(_) => {}
        }
        let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
            [cmd @ ("INCR" | "GET"), key] => {
                let mut counts = counts.lock().unwrap();
                let count = counts.entry(key.to_string()).or_default();
                *count += u64::from(cmd == "INCR");
                format!("{count}\n")
            }
            _ => "ERR expected INCR key or GET key\n".to_string(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
    let _ = write.write_all(b"ERR line too long\n").await;
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:7100".into());
    let listener = TcpListener::bind(addr).await.unwrap();
    let counts = Counts::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => drop(tokio::spawn(handle(stream, counts.clone()))),
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
