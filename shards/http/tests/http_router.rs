//! Routing over real sockets: path parameters (percent-decoded) in sync and async handlers,
//! a wildcard, 405 with `Allow`, the fallback, a JSON body, and a server that refuses to
//! start with a conflicting route.

mod server_support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use percore::Server;
use percore_http::{Limits, OwnedRequest, OwnedResponse, Router, Status, service};
use server_support::{start, stop};

fn router() -> Router {
    Router::new()
        .route("GET", "/users/{id}", |req| {
            match req.param("id").unwrap().parse::<u32>() {
                Ok(id) => Ok(format!(r#"{{"id":{id}}}"#)),
                Err(_) => Err((Status::BAD_REQUEST, "id must be a number\n")),
            }
        })
        .route("DELETE", "/users/{id}", |_| (Status::NO_CONTENT, ""))
        .route_async("GET", "/names/{name}", greet)
        .route("GET", "/files/{*path}", |req| {
            format!("file {}", req.param("path").unwrap())
        })
        .fallback(|req| {
            let path = String::from_utf8_lossy(req.path()).into_owned();
            (Status::NOT_FOUND, format!("no route for {path}\n"))
        })
}

async fn greet(request: OwnedRequest) -> OwnedResponse {
    let name = request.param("name").unwrap_or("?").to_owned();
    percore::time::sleep(Duration::from_millis(1)).await;
    OwnedResponse::new(200, format!("hello, {name}")).header("X-Name-Len", name.len().to_string())
}

/// Sends `requests` on one connection (the last one with `Connection: close`) and returns
/// each response's status, head and body, in order.
fn ask(addr: SocketAddr, requests: &str) -> Vec<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(requests.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let mut rest = &bytes[..];
    let mut found = Vec::new();
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end + 4]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        let body = String::from_utf8_lossy(&rest[end + 4..end + 4 + length]).into_owned();
        found.push((head[9..12].parse().unwrap(), head, body));
        rest = &rest[end + 4 + length..];
    }
    assert!(rest.is_empty(), "trailing bytes: {rest:?}");
    found
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n")
}

#[test]
fn routes_with_parameters_over_loopback() {
    let (server, addr) = start(Limits::default(), router);
    let requests = [
        get("/users/42"),
        get("/users/forty"),
        get("/names/Zo%C3%AB%20K"),
        get("/files/css/a%20b.css"),
        get("/users/%zz"),
        "PUT /users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".to_string(),
        "DELETE /users/1 HTTP/1.1\r\nHost: a\r\n\r\n".to_string(),
        "GET /elsewhere HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_string(),
    ]
    .concat();
    let answers = ask(addr, &requests);
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 400, 200, 200, 400, 405, 204, 404]);
    assert_eq!(answers[0].2, r#"{"id":42}"#);
    assert_eq!(answers[1].2, "id must be a number\n");
    // The async handler got the decoded parameter, in order with the sync answers.
    assert_eq!(answers[2].2, "hello, Zoë K");
    assert!(
        answers[2].1.contains("X-Name-Len: 6\r\n"),
        "{}",
        answers[2].1
    );
    assert_eq!(answers[3].2, "file css/a b.css");
    assert!(
        answers[5].1.contains("\r\nAllow: GET, DELETE, HEAD\r\n"),
        "{}",
        answers[5].1
    );
    assert_eq!(answers[7].2, "no route for /elsewhere\n");
    stop(server);
}

fn conflicting() -> Router {
    router().route("GET", "/users/{name}", |_| "never")
}

#[test]
fn a_conflicting_route_stops_the_server_from_starting() {
    let result = service::serve(
        Server::builder().shards(1),
        "127.0.0.1:0".parse().unwrap(),
        Limits::default(),
        conflicting,
    );
    let Err(error) = result else {
        panic!("a server started with conflicting routes");
    };
    let message = error.to_string();
    assert!(message.contains("GET /users/{name}"), "{message}");
    assert!(message.contains("/users/{id}"), "{message}");
    assert_eq!(error.exit_code(), 2);
}

#[cfg(feature = "serde")]
#[test]
fn json_bodies_over_loopback() {
    fn json_router() -> Router {
        #[derive(serde::Serialize)]
        struct User {
            id: u32,
            name: String,
        }
        Router::new().route("GET", "/users/{id}", |req| {
            let id = req.param("id").unwrap().parse().unwrap_or(0);
            percore_http::Json(User {
                id,
                name: format!("user{id}"),
            })
        })
    }
    let (server, addr) = start(Limits::default(), json_router);
    let answers = ask(
        addr,
        "GET /users/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(answers[0].1.contains("Content-Type: application/json"));
    assert_eq!(answers[0].2, r#"{"id":3,"name":"user3"}"#);
    stop(server);
}
