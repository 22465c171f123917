//! Drives `examples/users_api.rs` (issue 24): create, list, get, delete over real HTTP, with
//! 400 for a bad id or body, 404 for an unknown user or path, 405 with `Allow`.

#[allow(dead_code)]
#[path = "../examples/users_api.rs"]
mod users_api;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// One request on its own connection; (status, body).
fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_string(), body.to_string())
}

#[test]
fn the_users_api_example_serves_json_with_params_400_and_404() {
    let server = users_api::start(percore::Server::builder().shards(2), "127.0.0.1:0").unwrap();
    let addr = server.listen_addr().unwrap();

    let (status, head, body) = call(addr, "POST", "/users", r#"{"name":"ada"}"#);
    assert_eq!(status, 201, "{head}");
    assert!(head.contains("application/json"), "{head}");
    assert_eq!(body, r#"{"id":1,"name":"ada"}"#);
    assert_eq!(call(addr, "POST", "/users", r#"{"name":"bob"}"#).0, 201);

    assert_eq!(
        call(addr, "GET", "/users", "").2,
        r#"[{"id":1,"name":"ada"},{"id":2,"name":"bob"}]"#
    );
    assert_eq!(
        call(addr, "GET", "/users/2", "").2,
        r#"{"id":2,"name":"bob"}"#
    );
    assert_eq!(call(addr, "GET", "/users/9", "").0, 404);
    assert_eq!(call(addr, "GET", "/users/x", "").0, 400);
    assert_eq!(call(addr, "POST", "/users", "{not json").0, 400);
    assert_eq!(call(addr, "POST", "/users", r#"{"nom":"x"}"#).0, 400);
    assert_eq!(call(addr, "DELETE", "/users/1", "").0, 204);
    assert_eq!(call(addr, "DELETE", "/users/1", "").0, 404);
    assert_eq!(call(addr, "GET", "/nothing", "").0, 404);
    let (status, head, _) = call(addr, "PUT", "/users/2", "");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, DELETE, HEAD"), "{head}");

    server.stop_within(Duration::from_millis(500));
    server.join().unwrap();
}
