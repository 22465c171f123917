//! A JSON users API with path parameters: `GET /users`, `POST /users` (`{"name": ...}`),
//! `GET /users/{id}`, `DELETE /users/{id}`; a bad id or body gets 400, an unknown user 404.
//!
//! Length: 58 code lines (neither blank nor comment) against 69 for the same service on
//! axum/tokio (bench/peers/embedding/src/bin/users_api.rs): 0.84x
//! (bench/scripts/embedding_loc.sh).
//!
//!     cargo run -p percore-http --features serde --example users_api -- 127.0.0.1:8080
//!     curl -d '{"name":"ada"}' localhost:8080/users; curl localhost:8080/users/1

use std::{collections::BTreeMap, sync::Mutex};

use percore::{Error, Server, ServerBuilder, ServerHandle};
use percore_http::{Json, Limits, Request, Router, Status, service};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

static USERS: Mutex<BTreeMap<u64, User>> = Mutex::new(BTreeMap::new());

type Reply = Result<Json<User>, (Status, &'static str)>;

fn user_id(req: &Request) -> Result<u64, (Status, &'static str)> {
    req.param("id")
        .and_then(|id| id.parse().ok())
        .ok_or((Status::BAD_REQUEST, "bad id\n"))
}

fn create(req: &Request) -> Result<(Status, Json<User>), (Status, &'static str)> {
    let new: NewUser =
        serde_json::from_slice(req.body()).map_err(|_| (Status::BAD_REQUEST, "bad JSON\n"))?;
    let mut users = USERS.lock().unwrap();
    let id = users.keys().next_back().map_or(1, |last| last + 1);
    let user = User { id, name: new.name };
    users.insert(id, user.clone());
    Ok((Status::CREATED, Json(user)))
}

fn get(req: &Request) -> Reply {
    let found = USERS.lock().unwrap().get(&user_id(req)?).cloned();
    found.map(Json).ok_or((Status::NOT_FOUND, "no such user\n"))
}

fn delete(req: &Request) -> Result<(Status, &'static str), (Status, &'static str)> {
    let removed = USERS.lock().unwrap().remove(&user_id(req)?);
    removed
        .map(|_| (Status::NO_CONTENT, ""))
        .ok_or((Status::NOT_FOUND, "no such user\n"))
}

pub fn start(builder: ServerBuilder, addr: &str) -> Result<ServerHandle, Error> {
    let addr = addr
        .parse()
        .map_err(|e| Error::Config(format!("{addr}: {e}")))?;
    service::serve(builder, addr, Limits::default(), || {
        Router::new()
            .route("GET", "/users", |_| {
                Json(USERS.lock().unwrap().values().cloned().collect::<Vec<_>>())
            })
            .route("POST", "/users", create)
            .route("GET", "/users/{id}", get)
            .route("DELETE", "/users/{id}", delete)
    })
}

fn main() -> Result<(), Error> {
    tracing_subscriber::fmt::init(); // percore logs through `tracing`: this prints them
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    start(Server::builder().handle_signals(true), &addr)?.join()
}
