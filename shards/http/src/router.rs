//! Routes by method and path to handlers.
//!
//! **Paths** are exact (`/healthz`), or have parameters: `{name}` matches one segment
//! (`/users/{id}`), a trailing `{*name}` the rest of the path, at least one byte
//! (`/static/{*path}`); `{{` and `}}` are literal braces. An exact path wins over a pattern,
//! and patterns are matched on the path as sent; the values handed to the handler
//! ([`Request::param`]) are percent-decoded, and a request whose parameter does not decode
//! (a bad `%XX`, not UTF-8) gets `400`. Matching allocates nothing for exact paths and for
//! patterns with up to three parameters.
//!
//! **Methods**: `HEAD` is answered by the `GET` route (without the body) unless it has its
//! own. A known path asked with another method gets `405` with `Allow` listing the path's
//! methods; an unknown path goes to the [fallback](Router::fallback) if there is one, else
//! gets `404`. Both bodies can be replaced ([`Router::not_found`],
//! [`Router::method_not_allowed`]).
//!
//! **Registration errors** — a malformed pattern (`/users/{id`), two patterns that would
//! match the same paths (`/users/{id}` and `/users/{name}`), a method registered twice for a
//! path, a path without its leading `/`, a method that is not a token — are kept by the
//! router and reported, naming the route, by [`Router::check`];
//! [`service::serve`](crate::service::serve) refuses to start with them.
//!
//! **Handlers**, four kinds:
//! - **sync** (`route`): answers from the request alone, inside the read, with no task switch:
//!   the fast path. It returns anything [`IntoResponse`] — a `String` it computed, a
//!   `&'static str`, `(Status, body)`, `Json(..)` — which owns its body.
//! - **borrowing** (`route_ref`): a sync handler whose [`Response`] borrows from the request
//!   (an echo of its body, without a copy).
//! - **async** (`route_async`): gets an owned copy of the request and returns a future, which
//!   may await timers, the mesh or `percore::spawn_blocking`. The connection waits for it
//!   before it answers any later pipelined request, so responses stay in order.
//! - **streaming** (`route_stream`): like async, and the handler sends the body in parts
//!   through a [`ResponseWriter`] (chunked for HTTP/1.1 unless it gives a length), with
//!   backpressure from the client's reading.
//!
//! Each route is labelled "METHOD /path" for the stall detector: when the router dispatches a
//! request it names the route in its shard's label slot (one relaxed store; the loop clears
//! it when the iteration ends), so a shard stuck in a handler is reported with its route (in
//! the stall warning and in `percore_stalls_by_route_total{route=..}`). An async or streaming
//! handler's future runs over later iterations too: the service names its route again each
//! time it polls it (a wrapper spawned as it is, without an allocation of its own).
//!
//! CPU-heavy work belongs in `route_blocking` (or `route_offload`): it runs inline while it
//! is fast and moves to the blocking pool once a run overruns its budget (see [`Offload`]);
//! or in an async handler that awaits `percore::spawn_blocking(...)`. A plain sync handler
//! that computes for 200 ms stalls its shard (only its shard) for 200 ms.

mod owned;
mod table;

use std::{fmt, future::Future, pin::Pin, rc::Rc, sync::Arc, time::Duration};

pub use owned::{OwnedRequest, query_param};
use percore::task::label::{Label, LabelSlot, label_slot};
use table::RouteKey;

use crate::{
    Connection, HttpError, IntoResponse, Offload, OwnedResponse, PathParams, Request, Response,
    ResponseFraming, ResponseWriter, connection::Responder, write_response,
};

/// A sync handler, with what writes its value (see [`IntoResponse`]): it appends the response
/// to the output and returns its status.
pub type Handler = Rc<dyn Fn(&Request<'_>, &mut Vec<u8>, &[u8; 29], ResponseFraming) -> u16>;

/// A sync handler whose response may borrow from the request (`for<'r>`).
pub type RefHandler = Rc<dyn for<'r> Fn(&Request<'r>) -> Response<'r>>;

/// An async request handler.
pub type AsyncHandler = Rc<dyn Fn(OwnedRequest) -> Pin<Box<dyn Future<Output = OwnedResponse>>>>;

/// A streaming request handler: the request and the writer of its response.
pub type StreamHandler =
    Rc<dyn Fn(OwnedRequest, ResponseWriter) -> Pin<Box<dyn Future<Output = ()>>>>;

/// A handler's future that names its route in its shard's label slot each time it is polled
/// (the service spawns it as it is: the label costs no allocation).
pub(crate) struct Labelled<F> {
    router: Rc<Router>,
    label: Label,
    inner: F,
}

impl<F: Future + Unpin> Future for Labelled<F> {
    type Output = F::Output;

    #[inline]
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        if let Some(slot) = &self.router.slot {
            slot.set(self.label);
        }
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// A registered route: its handler and its name for the stall detector.
#[derive(Clone)]
struct Route {
    kind: Kind,
    label: Label,
}

#[derive(Clone)]
enum Kind {
    Sync(Handler),
    Ref(RefHandler),
    Async(AsyncHandler),
    Stream(StreamHandler),
}

/// What the router found for a request.
pub enum Found<'a> {
    Sync(&'a Handler),
    Ref(&'a RefHandler),
    /// An async handler and its route's label (named again each time its future runs).
    Async(&'a AsyncHandler, Label),
    /// A streaming handler and its route's label.
    Stream(&'a StreamHandler, Label),
    /// No route for the path, and no fallback: the 404 response.
    NotFound(&'a OwnedResponse),
    /// The path is known, not with this method: the 405 response and its `Allow` value.
    MethodNotAllowed(&'a OwnedResponse, &'a str),
    /// A path parameter did not decode.
    BadRequest(HttpError),
}

/// A request's route and the path parameters it matched (`None` for an exact path).
pub struct Match<'a, 'p> {
    pub found: Found<'a>,
    pub params: Option<PathParams<'a, 'p>>,
}

/// A route the router refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// `METHOD /path` as registered.
    pub route: String,
    pub reason: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route \"{}\": {}", self.route, self.reason)
    }
}

impl std::error::Error for RouteError {}

/// Method + path → handler (see the module docs).
#[derive(Clone)]
pub struct Router {
    table: table::Table,
    fallback: Option<Route>,
    not_found: OwnedResponse,
    method_not_allowed: OwnedResponse,
    errors: Vec<RouteError>,
    /// The label slot of the shard that made the router (`None` off a shard).
    slot: Option<LabelSlot>,
    /// The offload state of every `route_blocking`/`route_offload` route, for
    /// [`offload_budget`](Self::offload_budget).
    offloads: Vec<Rc<Offload>>,
    /// The default budget given by `offload_budget`, for routes registered after it.
    offload_budget: Option<Duration>,
}

const TEXT: &[(&str, &str)] = &[("Content-Type", "text/plain")];

impl Default for Router {
    fn default() -> Self {
        Router {
            table: table::Table::default(),
            fallback: None,
            not_found: OwnedResponse {
                static_headers: TEXT,
                ..OwnedResponse::new(404, "not found\n")
            },
            method_not_allowed: OwnedResponse {
                static_headers: TEXT,
                ..OwnedResponse::new(405, "method not allowed\n")
            },
            errors: Vec::new(),
            slot: label_slot(),
            offloads: Vec::new(),
            offload_budget: None,
        }
    }
}

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds a sync route for `method` (e.g. `"GET"`) and `path` (see the module docs):
    /// `handler` returns anything [`IntoResponse`].
    pub fn route<F, R>(self, method: &str, path: &str, handler: F) -> Self
    where
        F: Fn(&Request<'_>) -> R + 'static,
        R: IntoResponse,
    {
        self.add(method, path, Kind::Sync(sync_handler(handler)))
    }

    /// Adds a sync route whose [`Response`] may borrow from the request (its body, say),
    /// written without a copy.
    pub fn route_ref(
        self,
        method: &str,
        path: &str,
        handler: impl for<'r> Fn(&Request<'r>) -> Response<'r> + 'static,
    ) -> Self {
        self.add(method, path, Kind::Ref(Rc::new(handler)))
    }

    /// Adds an async route (see the module docs).
    pub fn route_async<F, Fut>(self, method: &str, path: &str, handler: F) -> Self
    where
        F: Fn(OwnedRequest) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: IntoResponse,
    {
        self.add(method, path, Kind::Async(boxed_async(handler)))
    }

    /// Adds a sync route for CPU-heavy work, run where its history says ([`Offload`]:
    /// inline until a run overruns the budget, 5 ms unless
    /// [`offload_budget`](Self::offload_budget) says otherwise, then on the blocking pool).
    /// The handler gets an owned copy of the request, since it may run on another thread.
    pub fn route_blocking<F, R>(self, method: &str, path: &str, handler: F) -> Self
    where
        F: Fn(OwnedRequest) -> R + Send + Sync + 'static,
        R: IntoResponse + Send + 'static,
    {
        self.route_offload(method, path, Offload::adaptive(), handler)
    }

    /// [`route_blocking`](Self::route_blocking) with its policy given: its own budget
    /// (`Offload::adaptive().budget(..)`, which [`offload_budget`](Self::offload_budget)
    /// leaves alone), [`Offload::heavy`] or [`Offload::inline_only`].
    pub fn route_offload<F, R>(self, method: &str, path: &str, offload: Offload, handler: F) -> Self
    where
        F: Fn(OwnedRequest) -> R + Send + Sync + 'static,
        R: IntoResponse + Send + 'static,
    {
        let offload = Rc::new(offload.label(format!("{method} {path}")));
        let this = self.track_offload(&offload);
        let handler = Arc::new(handler);
        this.route_async(method, path, move |request| {
            let (offload, handler) = (offload.clone(), handler.clone());
            async move {
                let result = offload.run(move || handler(request).into_response()).await;
                result.unwrap_or_else(|error| {
                    OwnedResponse::new(500, format!("the handler failed: {error}\n"))
                })
            }
        })
    }

    /// The budget of every offloading route (`route_blocking`, and `route_offload` without
    /// a budget of its own), registered before or after this call: an inline run longer
    /// than this is an overrun and sends the route's next calls to the blocking pool
    /// (default [`DEFAULT_BUDGET`](crate::DEFAULT_BUDGET), 5 ms).
    pub fn offload_budget(mut self, budget: Duration) -> Self {
        self.offload_budget = Some(budget);
        for offload in &self.offloads {
            offload.default_budget(budget);
        }
        self
    }

    /// Puts `offload` under [`offload_budget`](Self::offload_budget), for a route that runs
    /// its work through an [`Offload`] of its own (the demo's `/work`).
    pub(crate) fn track_offload(mut self, offload: &Rc<Offload>) -> Self {
        if let Some(budget) = self.offload_budget {
            offload.default_budget(budget);
        }
        self.offloads.push(offload.clone());
        self
    }

    /// Adds a streaming route: `handler` gets an owned copy of the request and a
    /// [`ResponseWriter`], and sends the body in parts (see the module docs).
    pub fn route_stream<F, Fut>(self, method: &str, path: &str, handler: F) -> Self
    where
        F: Fn(OwnedRequest, ResponseWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let boxed: StreamHandler =
            Rc::new(move |request, writer| Box::pin(handler(request, writer)));
        self.add(method, path, Kind::Stream(boxed))
    }

    /// Answers every request whose path matches no route (any method) instead of the 404.
    pub fn fallback<F, R>(mut self, handler: F) -> Self
    where
        F: Fn(&Request<'_>) -> R + 'static,
        R: IntoResponse,
    {
        self.fallback = Some(Route {
            kind: Kind::Sync(sync_handler(handler)),
            label: Label::new("fallback"),
        });
        self
    }

    /// [`fallback`](Self::fallback) with an async handler.
    pub fn fallback_async<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(OwnedRequest) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: IntoResponse,
    {
        self.fallback = Some(Route {
            kind: Kind::Async(boxed_async(handler)),
            label: Label::new("fallback"),
        });
        self
    }

    /// The response for an unknown path (without a fallback); its status is always 404.
    pub fn not_found(mut self, response: impl IntoResponse) -> Self {
        self.not_found = response.into_response();
        self.not_found.status = 404;
        self
    }

    /// The response for a known path asked with another method; its status is always 405,
    /// and `Allow` is added.
    pub fn method_not_allowed(mut self, response: impl IntoResponse) -> Self {
        self.method_not_allowed = response.into_response();
        self.method_not_allowed.status = 405;
        self
    }

    /// The routes refused at registration, in order; `Ok` when there were none.
    pub fn check(&self) -> Result<(), RouteError> {
        match self.errors.first() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Every route refused at registration.
    pub fn errors(&self) -> &[RouteError] {
        &self.errors
    }

    fn add(mut self, method: &str, path: &str, kind: Kind) -> Self {
        let key = RouteKey { method, path };
        let label = Label::new(&format!("{method} {path}"));
        let route = Route { kind, label };
        if let Err(reason) = self.table.insert(key, route) {
            self.errors.push(RouteError {
                route: format!("{method} {path}"),
                reason,
            });
        }
        self
    }

    /// The route for `request`, and its path parameters.
    #[inline]
    pub fn find<'a, 'p>(&'a self, request: &Request<'p>) -> Match<'a, 'p> {
        let Some((routes, raw)) = self.table.lookup(request.path()) else {
            return self.unmatched();
        };
        let found = match routes.get(request.method()) {
            Some(route) => self.found(route),
            None => Found::MethodNotAllowed(&self.method_not_allowed, routes.allow()),
        };
        match raw {
            // Written field by field: a `None` built apart and moved in would copy the
            // whole (large) parameter block.
            None => Match {
                found,
                params: None,
            },
            Some(raw) => with_params(found, raw),
        }
    }

    /// `future`, a handler's for the route labelled `label`, naming the route in the shard's
    /// label slot each time it is polled.
    pub(crate) fn labelled<F: Future + Unpin>(
        self: &Rc<Self>,
        label: Label,
        future: F,
    ) -> Labelled<F> {
        Labelled {
            router: self.clone(),
            label,
            inner: future,
        }
    }

    /// The handler of `route`, named in the shard's label slot first.
    #[inline]
    fn found<'a>(&self, route: &'a Route) -> Found<'a> {
        if let Some(slot) = &self.slot {
            slot.set(route.label);
        }
        match &route.kind {
            Kind::Sync(handler) => Found::Sync(handler),
            Kind::Ref(handler) => Found::Ref(handler),
            Kind::Async(handler) => Found::Async(handler, route.label),
            Kind::Stream(handler) => Found::Stream(handler, route.label),
        }
    }

    #[cold]
    fn unmatched<'p>(&self) -> Match<'_, 'p> {
        let found = match &self.fallback {
            Some(route) => self.found(route),
            None => Found::NotFound(&self.not_found),
        };
        Match {
            found,
            params: None,
        }
    }

    /// Answers every complete request in `input` with this router's in-place routes, as
    /// [`Connection::serve`] does with a handler (async and streaming routes, which need a
    /// task, get 500 here: use [`service::serve`](crate::service::serve) for them). Returns
    /// how many bytes of `input` were consumed.
    pub fn serve(
        &self,
        conn: &mut Connection,
        input: &[u8],
        out: &mut Vec<u8>,
        date: &[u8; 29],
    ) -> usize {
        struct InPlace<'a>(&'a Router);
        impl Responder for InPlace<'_> {
            fn respond(
                &mut self,
                request: &Request<'_>,
                out: &mut Vec<u8>,
                date: &[u8; 29],
            ) -> bool {
                let matched = self.0.find(request);
                if answer_in_place(&matched, request, out, date).is_none() {
                    let error = HttpError::new(500, "async route called synchronously");
                    write_response(
                        out,
                        &Response::new(error.status, error.reason.as_bytes()),
                        date,
                        request.response_framing(),
                    );
                }
                true
            }
            fn refused(&mut self, _status: u16) {}
        }
        conn.serve_with(input, out, date, &mut InPlace(self))
    }
}

/// A pattern's match: its parameters decoded, or the 400 they earn.
fn with_params<'a, 'p>(found: Found<'a>, raw: matchit::Params<'a, 'p>) -> Match<'a, 'p> {
    match PathParams::new(raw) {
        Ok(params) => Match {
            found,
            params: Some(params),
        },
        Err(error) => Match {
            found: Found::BadRequest(error),
            params: None,
        },
    }
}

fn sync_handler<F, R>(handler: F) -> Handler
where
    F: Fn(&Request<'_>) -> R + 'static,
    R: IntoResponse,
{
    Rc::new(move |request, out, date, framing| handler(request).write_response(out, date, framing))
}

fn boxed_async<F, Fut>(handler: F) -> AsyncHandler
where
    F: Fn(OwnedRequest) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: IntoResponse,
{
    Rc::new(move |request| {
        let future = handler(request);
        Box::pin(async move { future.await.into_response() })
    })
}

/// Writes the response of a route answered in place (sync, borrowing, 404, 405, 400) with
/// the matched parameters visible to the handler; returns its status, or `None` for a route
/// that needs a task (async, streaming). A panic in the handler happens before anything is
/// written.
#[inline]
pub(crate) fn answer_in_place(
    matched: &Match<'_, '_>,
    request: &Request<'_>,
    out: &mut Vec<u8>,
    date: &[u8; 29],
) -> Option<u16> {
    let framing = request.response_framing();
    let with_params;
    let request = match &matched.params {
        None => request,
        Some(params) => {
            with_params = request.with_params(params);
            &with_params
        }
    };
    match matched.found {
        Found::Sync(handler) => Some(handler(request, out, date, framing)),
        Found::Ref(handler) => {
            let response = handler(request);
            write_response(out, &response, date, framing);
            Some(response.status)
        }
        Found::NotFound(response) => {
            response.write(out, date, framing);
            Some(response.status)
        }
        Found::MethodNotAllowed(response, allow) => {
            // Not the hot path: a copy with the path's `Allow` added.
            let mut response = (*response).clone();
            response.headers.push(("Allow", allow.to_owned()));
            response.write(out, date, framing);
            Some(response.status)
        }
        Found::BadRequest(error) => {
            // The request itself was well framed: an answer, not a refusal that closes.
            let response = Response {
                status: error.status,
                headers: TEXT,
                body: error.reason.as_bytes(),
            };
            write_response(out, &response, date, framing);
            Some(error.status)
        }
        Found::Async(..) | Found::Stream(..) => None,
    }
}

#[cfg(test)]
mod tests;
