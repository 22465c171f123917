//! `TimeoutLayer`: a request timeout for tower stacks on a shard.
//!
//! `tower_http::timeout` and `tower::timeout` sleep with `tokio::time`, which needs a tokio
//! runtime and panics on a shard. This layer sleeps on the shard's timer wheel instead
//! (through [`SendSleep`], so the future stays `Send` and the layer fits inside an axum
//! `Router`). When the time runs out the inner future is dropped (with it the request and
//! whatever it was reading) and the client gets `408 Request Timeout`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::time::SendSleep;

/// Applies [`Timeout`] to a service.
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Requests taking longer than `timeout` (reading the body included) get `408`.
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// A service whose requests end with `408 Request Timeout` after a deadline.
#[derive(Clone, Copy, Debug)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Timeout<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        TimeoutFuture {
            inner: self.inner.call(req),
            // The iteration's clock reading: no clock read per request (it errs early by at
            // most the time the iteration has run, which a request timeout can bear).
            sleep: SendSleep::until(crate::time::now() + self.timeout),
        }
    }
}

pin_project! {
    /// The response future of [`Timeout`].
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        sleep: SendSleep,
    }
}

impl<F, ResB, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: Default,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => {
                let mut response = Response::new(ResB::default());
                *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
                Poll::Ready(Ok(response))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
