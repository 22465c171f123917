//! Routes by method and path to handlers. A handler is synchronous and answers from the
//! request alone (the fast path: it runs inside the read, with no task switch); its response
//! may borrow the request (for example echo its body).

use std::rc::Rc;

use crate::{Request, Response};

/// A request handler; `for<'r>`: the response may borrow from the request.
pub type Handler = Rc<dyn for<'r> Fn(&Request<'r>) -> Response<'r>>;

/// Method + path → handler. `HEAD` is answered by the `GET` route (without the body).
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<(&'static [u8], &'static [u8], Handler)>,
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
        Router::default()
    }

    /// Adds a route for `method` (e.g. `"GET"`) and the exact `path`.
    pub fn route(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: impl for<'r> Fn(&Request<'r>) -> Response<'r> + 'static,
    ) -> Self {
        self.routes
            .push((method.as_bytes(), path.as_bytes(), Rc::new(handler)));
        self
    }

    /// The response for `request`: its route's, 405 when the path exists under other
    /// methods, 404 otherwise.
    pub fn handle<'r>(&self, request: &Request<'r>) -> Response<'r> {
        let method = if request.is_head() {
            &b"GET"[..]
        } else {
            request.method()
        };
        let path = request.path();
        let mut path_known = false;
        for (route_method, route_path, handler) in &self.routes {
            if *route_path == path {
                if *route_method == method {
                    return handler(request);
                }
                path_known = true;
            }
        }
        if path_known {
            METHOD_NOT_ALLOWED
        } else {
            NOT_FOUND
        }
    }
}
