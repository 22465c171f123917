//! The service wrappers between hyper and the user's code: a tower service (an axum
//! `Router`) as a hyper service, and the guard every request passes through, which turns a
//! handler panic into a `500` (naming the fix when the panic came from a tokio runtime API
//! called on a shard) and counts responses by status class.

use std::{
    any::Any,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

use crate::metrics::{Counter, counter};

/// A tower [`Service`](tower_service::Service) (an axum `Router`, a tower stack) as a hyper
/// service: each request gets a clone of the service, waits for `poll_ready`, then `call`s
/// it (tower's contract; for a `Router` the clone is a reference-count increment and it is
/// always ready).
#[derive(Clone, Debug)]
pub struct TowerToHyper<S>(pub S);

impl<S, R> hyper::service::Service<R> for TowerToHyper<S>
where
    S: tower_service::Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Oneshot<S, R>;

    fn call(&self, req: R) -> Self::Future {
        Oneshot::NotReady {
            svc: self.0.clone(),
            req: Some(req),
        }
    }
}

pin_project! {
    /// `poll_ready`, then `call`, then the call's future.
    #[project = OneshotProj]
    pub enum Oneshot<S: tower_service::Service<R>, R> {
        NotReady { svc: S, req: Option<R> },
        Called { #[pin] fut: S::Future },
    }
}

impl<S, R> Future for Oneshot<S, R>
where
    S: tower_service::Service<R>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                OneshotProj::NotReady { svc, req } => {
                    ready!(svc.poll_ready(cx))?;
                    let req = req.take().expect("a request is called once");
                    let fut = svc.call(req);
                    self.set(Oneshot::Called { fut });
                }
                OneshotProj::Called { fut } => return fut.poll(cx),
            }
        }
    }
}

/// The body of a guarded response: the service's own, or the guard's `500`.
pub type GuardedBody<B> = Either<B, Full<Bytes>>;

/// Per-shard counters of the compat server (Prometheus names under `percore_compat_`).
pub(crate) struct Counters {
    classes: [Counter; 5],
    pub(crate) panics: Counter,
    pub(crate) rejected: Counter,
}

impl Counters {
    /// Registers this shard's counters (on the shard).
    pub(crate) fn register() -> Self {
        let class = |c: &'static str| {
            counter(
                "percore_compat_http_responses_total",
                "Responses of the hyper/axum server, by status class.",
                &[("class", c)],
            )
        };
        Counters {
            classes: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
            panics: counter(
                "percore_compat_http_panics_total",
                "Requests whose handler panicked (answered 500).",
                &[],
            ),
            rejected: counter(
                "percore_compat_http_rejected_total",
                "Connections refused with 503 at the per-shard connection cap.",
                &[],
            ),
        }
    }

    fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.classes[class].inc();
    }
}

/// Wraps the user's hyper service: panics become `500`, responses are counted.
pub(crate) struct Guard<H> {
    pub(crate) inner: H,
    pub(crate) counters: Rc<Counters>,
}

impl<H: Clone> Clone for Guard<H> {
    fn clone(&self) -> Self {
        Guard {
            inner: self.inner.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<H, ReqB, B> hyper::service::Service<Request<ReqB>> for Guard<H>
where
    H: hyper::service::Service<Request<ReqB>, Response = Response<B>>,
{
    type Response = Response<GuardedBody<B>>;
    type Error = H::Error;
    type Future = Guarded<H::Future>;

    fn call(&self, req: Request<ReqB>) -> Self::Future {
        let counters = self.counters.clone();
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => Guarded::Running { fut, counters },
            Err(payload) => Guarded::Panicked {
                response: Some(panic_response(&counters, payload)),
            },
        }
    }
}

pin_project! {
    /// A guarded request in progress.
    #[project = GuardedProj]
    pub enum Guarded<F> {
        Running { #[pin] fut: F, counters: Rc<Counters> },
        Panicked { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F, B, E> Future for Guarded<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<GuardedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardedProj::Running { fut, counters } => {
                match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(Ok(response))) => {
                        counters.count(response.status());
                        Poll::Ready(Ok(response.map(Either::Left)))
                    }
                    Ok(Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
                    Err(payload) => {
                        let response = panic_response(counters, payload);
                        Poll::Ready(Ok(response.map(Either::Right)))
                    }
                }
            }
            GuardedProj::Panicked { response } => {
                let response = response
                    .take()
                    .expect("a guarded future is polled to its end once");
                Poll::Ready(Ok(response.map(Either::Right)))
            }
        }
    }
}

/// What a handler panic turns into: a logged error (with the fix when it is the known
/// mistake) and a `500`.
fn panic_response(counters: &Counters, payload: Box<dyn Any + Send>) -> Response<Full<Bytes>> {
    counters.panics.inc();
    counters.count(StatusCode::INTERNAL_SERVER_ERROR);
    let message = payload_message(&*payload);
    let body = match tokio_runtime_hint(&message) {
        Some(hint) => {
            tracing::error!("handler panicked: {message}; {hint}");
            format!("500 Internal Server Error: {hint}\n")
        }
        None => {
            tracing::error!("handler panicked: {message}");
            "500 Internal Server Error\n".to_owned()
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// The fix for the one panic users of axum on percore will meet: tokio's "no runtime"
/// (`tokio::spawn`, `tokio::time::sleep`, `tokio::net` called on a shard).
pub fn tokio_runtime_hint(panic_message: &str) -> Option<&'static str> {
    let from_tokio =
        panic_message.contains("Tokio 1.x runtime") || panic_message.contains("no reactor running");
    from_tokio.then_some(
        "a tokio runtime API (tokio::spawn, tokio::time, tokio::net) was called on a percore \
         shard, where no tokio runtime runs: use percore::spawn, percore::time (sleep, timeout, SendSleep) \
         or percore::compat::TimeoutLayer instead",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_fix_for_tokio_runtime_panics() {
        let spawn =
            "there is no reactor running, must be called from the context of a Tokio 1.x runtime";
        let hint = tokio_runtime_hint(spawn).expect("tokio's message is recognised");
        assert!(hint.contains("percore::spawn"), "{hint}");
        assert_eq!(tokio_runtime_hint("index out of bounds"), None);
    }

    #[test]
    fn payload_messages() {
        assert_eq!(payload_message(&"boom"), "boom");
        assert_eq!(payload_message(&String::from("bang")), "bang");
        assert_eq!(payload_message(&7_u32), "a non-string panic payload");
    }
}
