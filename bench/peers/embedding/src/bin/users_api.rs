//! examples/users_api.rs of percore-http on axum/tokio: the same routes, statuses and bodies.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    routing::get,
};
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

type Users = Arc<Mutex<BTreeMap<u64, User>>>;
type Error = (StatusCode, &'static str);

async fn list(State(users): State<Users>) -> Json<Vec<User>> {
    Json(users.lock().unwrap().values().cloned().collect())
}

async fn create(
    State(users): State<Users>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), Error> {
    let Json(new) = body.map_err(|_| (StatusCode::BAD_REQUEST, "bad JSON\n"))?;
    let mut users = users.lock().unwrap();
    let id = users.keys().next_back().map_or(1, |last| last + 1);
    let user = User { id, name: new.name };
    users.insert(id, user.clone());
    Ok((StatusCode::CREATED, Json(user)))
}

fn user_id(id: Result<Path<u64>, axum::extract::rejection::PathRejection>) -> Result<u64, Error> {
    id.map(|Path(id)| id)
        .map_err(|_| (StatusCode::BAD_REQUEST, "bad id\n"))
}

async fn get_user(
    State(users): State<Users>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<User>, Error> {
    let found = users.lock().unwrap().get(&user_id(id)?).cloned();
    found
        .map(Json)
        .ok_or((StatusCode::NOT_FOUND, "no such user\n"))
}

async fn delete_user(
    State(users): State<Users>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, Error> {
    let removed = users.lock().unwrap().remove(&user_id(id)?);
    removed
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or((StatusCode::NOT_FOUND, "no such user\n"))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let app = Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(get_user).delete(delete_user))
        .with_state(Users::default());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
