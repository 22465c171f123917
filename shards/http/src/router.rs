//! Routes by method and path to handlers.
//!
//! Two kinds of handler:
//! - **sync** (`route`): answers from the request alone, inside the read, with no task switch
//!   and no allocation: the fast path. Its response may borrow the request (echo its body).
//! - **async** (`route_async`): gets an owned copy of the request and returns a future, which
//!   may await timers, the mesh or `percore::spawn_blocking`. The connection waits for it
//!   before it answers any later pipelined request, so responses stay in order.
//!
//! - **streaming** (`route_stream`): like async, and the handler sends the body in parts
//!   through a [`ResponseWriter`] (chunked for HTTP/1.1 unless it gives a length), with
//!   backpressure from the client's reading.
//!
//! Each route is labelled "METHOD /path" for the stall detector: the router names the route
//! in its shard's label slot when it dispatches a request (and an async or streaming
//! handler's future names it again each time it runs), so a shard stuck in a handler is
//! reported with its route. One relaxed store per dispatch; see `percore::task::label`.
//!
//! CPU-heavy work belongs in an async handler that awaits `percore::spawn_blocking(...)`:
//! the work runs on the blocking pool and the shard goes on serving its other connections.
//! A sync handler that computes for 200 ms stalls its shard (only its shard) for 200 ms.

use std::{
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use percore::task::label::{Label, LabelSlot, label_slot};

use crate::{Request, Response, ResponseWriter};

/// A sync request handler; `for<'r>`: the response may borrow from the request.
pub type Handler = Rc<dyn for<'r> Fn(&Request<'r>) -> Response<'r>>;

/// An async request handler.
pub type AsyncHandler = Rc<dyn Fn(OwnedRequest) -> Pin<Box<dyn Future<Output = OwnedResponse>>>>;

/// A streaming request handler: the request and the writer of its response.
pub type StreamHandler =
    Rc<dyn Fn(OwnedRequest, ResponseWriter) -> Pin<Box<dyn Future<Output = ()>>>>;

/// A request copied out of the connection's buffers, for async handlers.
#[derive(Clone, Debug, Default)]
pub struct OwnedRequest {
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    pub query: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl OwnedRequest {
    pub fn from_request(request: &Request<'_>) -> Self {
        OwnedRequest {
            method: request.method().to_vec(),
            path: request.path().to_vec(),
            query: request.query().map(<[u8]>::to_vec),
            headers: request
                .headers()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
            body: request.body().to_vec(),
        }
    }

    /// The value of query parameter `name` (`a=1&b=2`), if present.
    pub fn query_param(&self, name: &str) -> Option<&[u8]> {
        query_param(self.query.as_deref()?, name)
    }
}

/// The value of parameter `name` in a query string.
pub fn query_param<'q>(query: &'q [u8], name: &str) -> Option<&'q [u8]> {
    query.split(|b| *b == b'&').find_map(|pair| {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        (kv.next()? == name.as_bytes()).then(|| kv.next().unwrap_or(b""))
    })
}

/// The response of an async handler.
#[derive(Clone, Debug)]
pub struct OwnedResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl OwnedResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        OwnedResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Clone)]
enum Route {
    Sync(Handler),
    Async(AsyncHandler),
    Stream(StreamHandler),
}

/// What the router found for a request.
pub enum Found<'a> {
    Sync(&'a Handler),
    Async(&'a AsyncHandler),
    Stream(&'a StreamHandler),
    Fixed(Response<'static>),
}

/// Method + path → handler. `HEAD` is answered by the `GET` route (without the body).
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<(&'static [u8], &'static [u8], Route, Label)>,
    /// The label slot of the shard that made the router (`None` off a shard).
    slot: Option<LabelSlot>,
}

/// A handler's future that names its route in the shard's label slot each time it runs
/// (boxed inside: pinning a field needs no unsafe code that way).
struct Labelled<F> {
    slot: Option<LabelSlot>,
    label: Label,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Labelled<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Some(slot) = &self.slot {
            slot.set(self.label);
        }
        self.inner.as_mut().poll(cx)
    }
}

fn label(method: &str, path: &str) -> Label {
    Label::new(&format!("{method} {path}"))
}

const NOT_FOUND: Response<'static> = Response {
    status: 404,
    headers: &[("Content-Type", "text/plain")],
    body: b"not found\n",
};
const METHOD_NOT_ALLOWED: Response<'static> = Response {
    status: 405,
    headers: &[("Content-Type", "text/plain")],
    body: b"method not allowed\n",
};

impl Router {
    pub fn new() -> Self {
        Router {
            routes: Vec::new(),
            slot: label_slot(),
        }
    }

    /// Adds a sync route for `method` (e.g. `"GET"`) and the exact `path`.
    pub fn route(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: impl for<'r> Fn(&Request<'r>) -> Response<'r> + 'static,
    ) -> Self {
        self.routes.push((
            method.as_bytes(),
            path.as_bytes(),
            Route::Sync(Rc::new(handler)),
            label(method, path),
        ));
        self
    }

    /// Adds an async route (see the module docs).
    pub fn route_async<F, Fut>(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: F,
    ) -> Self
    where
        F: Fn(OwnedRequest) -> Fut + 'static,
        Fut: Future<Output = OwnedResponse> + 'static,
    {
        let (slot, label) = (self.slot.clone(), label(method, path));
        let boxed: AsyncHandler = Rc::new(move |request| {
            Box::pin(Labelled {
                slot: slot.clone(),
                label,
                inner: Box::pin(handler(request)),
            })
        });
        self.routes.push((
            method.as_bytes(),
            path.as_bytes(),
            Route::Async(boxed),
            label,
        ));
        self
    }

    /// Adds a streaming route: `handler` gets an owned copy of the request and a
    /// [`ResponseWriter`], and sends the body in parts (see the module docs).
    pub fn route_stream<F, Fut>(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: F,
    ) -> Self
    where
        F: Fn(OwnedRequest, ResponseWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (slot, label) = (self.slot.clone(), label(method, path));
        let boxed: StreamHandler = Rc::new(move |request, writer| {
            Box::pin(Labelled {
                slot: slot.clone(),
                label,
                inner: Box::pin(handler(request, writer)),
            })
        });
        self.routes.push((
            method.as_bytes(),
            path.as_bytes(),
            Route::Stream(boxed),
            label,
        ));
        self
    }

    /// The handler for `request`, or the 404/405 response when there is none.
    pub fn find(&self, request: &Request<'_>) -> Found<'_> {
        let method = if request.is_head() {
            &b"GET"[..]
        } else {
            request.method()
        };
        let path = request.path();
        let mut path_known = false;
        for (route_method, route_path, route, label) in &self.routes {
            if *route_path == path {
                if *route_method == method {
                    if let Some(slot) = &self.slot {
                        slot.set(*label);
                    }
                    return match route {
                        Route::Sync(handler) => Found::Sync(handler),
                        Route::Async(handler) => Found::Async(handler),
                        Route::Stream(handler) => Found::Stream(handler),
                    };
                }
                path_known = true;
            }
        }
        Found::Fixed(if path_known {
            METHOD_NOT_ALLOWED
        } else {
            NOT_FOUND
        })
    }

    /// The response of a sync route (async routes answer 500 here: use [`find`](Self::find)).
    pub fn handle<'r>(&self, request: &Request<'r>) -> Response<'r> {
        match self.find(request) {
            Found::Sync(handler) => handler(request),
            Found::Fixed(response) => response,
            Found::Async(_) | Found::Stream(_) => {
                Response::new(500, b"async route called synchronously\n")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_parameters_are_found_by_name() {
        assert_eq!(query_param(b"ms=200&offload=1", "ms"), Some(&b"200"[..]));
        assert_eq!(query_param(b"ms=200&offload=1", "offload"), Some(&b"1"[..]));
        assert_eq!(query_param(b"flag&x=1", "flag"), Some(&b""[..]));
        assert_eq!(query_param(b"ms=200", "m"), None);
    }
}
