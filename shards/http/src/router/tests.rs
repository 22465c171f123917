use super::*;
use crate::{Limits, Status};

const DATE: &[u8; 29] = b"Thu, 01 Jan 1970 00:00:00 GMT";

/// The status, the head and the body of each response `router` gives to `input`.
fn answers(router: &Router, input: &str) -> Vec<(u16, String, String)> {
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    let consumed = router.serve(&mut conn, input.as_bytes(), &mut out, DATE);
    assert_eq!(consumed, input.len(), "input left unconsumed");
    let mut rest = &out[..];
    let mut found = Vec::new();
    while !rest.is_empty() {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8(rest[..end].to_vec()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        let length = if head.contains("HEAD-REQUEST") {
            0
        } else {
            length
        };
        let body = String::from_utf8(rest[end..end + length].to_vec()).unwrap();
        found.push((head[9..12].parse().unwrap(), head, body));
        rest = &rest[end + length..];
    }
    found
}

fn get(router: &Router, path: &str) -> (u16, String, String) {
    let mut all = answers(router, &format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn users() -> Router {
    Router::new()
        .route("GET", "/users/{id}", |req| {
            format!("user {}", req.param("id").unwrap())
        })
        .route("GET", "/users/me", |_| "me")
        .route("DELETE", "/users/{id}", |req| {
            (Status::NO_CONTENT, req.param("id").unwrap().to_owned())
        })
        .route("GET", "/users/{id}/posts/{post}", |req| {
            format!(
                "{}:{}",
                req.param("id").unwrap(),
                req.param("post").unwrap()
            )
        })
        .route("GET", "/static/{*path}", |req| {
            req.param("path").unwrap().to_owned()
        })
}

#[test]
fn parameters_and_wildcards_match_and_exact_paths_win() {
    let router = users();
    assert!(router.check().is_ok());
    assert_eq!(get(&router, "/users/42").2, "user 42");
    assert_eq!(get(&router, "/users/me").2, "me");
    assert_eq!(get(&router, "/users/7/posts/9").2, "7:9");
    assert_eq!(get(&router, "/static/css/site.css").2, "css/site.css");
    assert_eq!(get(&router, "/users/42?x=1").2, "user 42");
    // A segment parameter matches one segment, not none and not two.
    assert_eq!(get(&router, "/users/").0, 404);
    assert_eq!(get(&router, "/users/1/2").0, 404);
    // The wildcard needs at least one byte.
    assert_eq!(get(&router, "/static/").0, 404);
    assert_eq!(get(&router, "/nowhere").0, 404);
}

#[test]
fn parameters_are_percent_decoded_and_bad_escapes_get_400() {
    let router = users();
    assert_eq!(get(&router, "/users/caf%C3%A9").2, "user café");
    assert_eq!(get(&router, "/users/a%20b+c").2, "user a b+c");
    // An encoded slash stays inside its segment.
    assert_eq!(get(&router, "/users/a%2Fb").2, "user a/b");
    assert_eq!(get(&router, "/static/a%2Fb/c%20d").2, "a/b/c d");
    // A bad escape, or bytes that are not UTF-8, is the client's error; the connection
    // goes on (the request was well framed).
    let input = "GET /users/%zz HTTP/1.1\r\nHost: a\r\n\r\n\
                 GET /users/%FF HTTP/1.1\r\nHost: a\r\n\r\n\
                 GET /users/1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let all = answers(&router, input);
    let statuses: Vec<u16> = all.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [400, 400, 200]);
    assert!(!all[0].1.contains("Connection: close"));
}

#[test]
fn a_known_path_with_another_method_gets_405_with_allow() {
    let router = users();
    let all = answers(
        &router,
        "PUT /users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(all[0].0, 405);
    assert!(
        all[0].1.contains("\r\nAllow: GET, DELETE, HEAD\r\n"),
        "{}",
        all[0].1
    );
    assert_eq!(all[0].2, "method not allowed\n");
    let all = answers(
        &router,
        "POST /users/me HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        all[0].1.contains("\r\nAllow: GET, HEAD\r\n"),
        "{}",
        all[0].1
    );
    // DELETE is routed by method on the same pattern.
    let all = answers(&router, "DELETE /users/5 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(all[0].0, 204);
}

#[test]
fn head_is_answered_by_the_get_route_without_a_body() {
    let router = users();
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    let input = b"HEAD /users/42 HTTP/1.1\r\nHost: a\r\n\r\n";
    router.serve(&mut conn, input, &mut out, DATE);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Content-Length: 7\r\n"));
    assert!(out.ends_with("\r\n\r\n"));
}

#[test]
fn the_fallback_answers_unknown_paths_and_bodies_can_be_replaced() {
    let router = users()
        .fallback(|req| {
            let path = String::from_utf8_lossy(req.path()).into_owned();
            (Status::NOT_FOUND, format!("nothing at {path}"))
        })
        .method_not_allowed((Status(999), "use another method"));
    let (status, _, body) = get(&router, "/elsewhere");
    assert_eq!((status, body.as_str()), (404, "nothing at /elsewhere"));
    let all = answers(
        &router,
        "PUT /users/me HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(all[0].0, 405);
    assert!(all[0].1.contains("Allow: GET, HEAD"));
    assert_eq!(all[0].2, "use another method");

    let router = users().not_found(crate::Response {
        status: 200,
        headers: &[("Content-Type", "application/json")],
        body: br#"{"error":"not found"}"#,
    });
    let (status, head, body) = get(&router, "/elsewhere");
    assert_eq!(status, 404);
    assert!(head.contains("Content-Type: application/json"));
    assert_eq!(body, r#"{"error":"not found"}"#);
}

#[test]
fn sync_routes_return_bodies_they_computed() {
    let router = Router::new()
        .route("GET", "/sum", |req| {
            let n: u64 = req
                .query()
                .and_then(|q| std::str::from_utf8(q).ok()?.parse().ok())
                .unwrap_or(0);
            format!("{}", (1..=n).sum::<u64>())
        })
        .route("GET", "/bytes", |_| vec![b'x'; 3])
        .route("POST", "/len", |req| {
            OwnedResponse::new(201, req.body().len().to_string()).header("X-Len", "yes")
        })
        .route_ref("POST", "/echo", |req| crate::Response::new(200, req.body()));
    assert_eq!(get(&router, "/sum?10").2, "55");
    assert_eq!(get(&router, "/bytes").2, "xxx");
    let input = "POST /len HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd\
                 POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
    let all = answers(&router, input);
    assert_eq!(all[0].0, 201);
    assert!(all[0].1.contains("X-Len: yes"));
    assert_eq!(all[0].2, "4");
    assert_eq!(all[1].2, "hi");
}

#[test]
fn conflicting_and_malformed_routes_are_refused_naming_the_route() {
    let ok = |_: &Request<'_>| "ok";
    let cases: &[(&str, &str, &str)] = &[
        ("/users/{id", "GET /users/{id", "malformed parameter"),
        ("/users/id}", "GET /users/id}", "malformed parameter"),
        (
            "/files/{*rest}/x",
            "GET /files/{*rest}/x",
            "must be the last segment",
        ),
        ("/a/{x}{y}", "GET /a/{x}{y}", "one parameter"),
        ("users", "GET users", "must start with '/'"),
    ];
    for (path, route, reason) in cases {
        let router = Router::new().route("GET", path, ok);
        let error = router.check().unwrap_err();
        assert_eq!(error.route, *route);
        assert!(error.reason.contains(reason), "{error}");
        assert!(error.to_string().contains(route), "{error}");
    }
    let router = Router::new()
        .route("GET", "/users/{id}", ok)
        .route("GET", "/users/{name}", ok);
    let error = router.check().unwrap_err();
    assert_eq!(error.route, "GET /users/{name}");
    assert!(error.reason.contains("/users/{id}"), "{error}");

    let router = Router::new()
        .route("GET", "/twice", ok)
        .route("GET", "/twice", ok)
        .route("G T", "/x", ok);
    let errors: Vec<String> = router.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("registered twice"), "{errors:?}");
    assert!(errors[1].contains("token"), "{errors:?}");
    // The routes that were accepted still work.
    assert_eq!(get(&router, "/twice").2, "ok");
}

#[test]
fn many_exact_paths_are_found_by_binary_search() {
    let mut router = Router::new();
    for i in 0..40 {
        router = router.route("GET", &format!("/p{i}"), move |_| format!("{i}"));
    }
    for i in [0, 17, 39] {
        assert_eq!(get(&router, &format!("/p{i}")).2, i.to_string());
    }
    assert_eq!(get(&router, "/p40").0, 404);
}

#[test]
fn offload_budget_reaches_blocking_routes_registered_before_and_after_but_not_own_budgets() {
    use std::time::Duration;
    let ms = Duration::from_millis;
    let router = Router::new()
        .route_blocking("GET", "/before", |_| "b")
        .route_offload("GET", "/own", Offload::adaptive().budget(ms(50)), |_| "o")
        .offload_budget(ms(1))
        .route_blocking("GET", "/after", |_| "a");
    let budgets: Vec<Duration> = router.offloads.iter().map(|o| o.current_budget()).collect();
    assert_eq!(budgets, [ms(1), ms(50), ms(1)]);
    // Without the call, the default.
    let router = Router::new().route_blocking("GET", "/x", |_| "x");
    assert_eq!(router.offloads[0].current_budget(), crate::DEFAULT_BUDGET);
}
