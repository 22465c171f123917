//! [`OwnedRequest`]: a request copied out of the connection's buffers, for handlers that run
//! as tasks (async and streaming routes).

use crate::Request;

/// A request copied out of the connection's buffers, for async and streaming handlers.
#[derive(Clone, Debug, Default)]
pub struct OwnedRequest {
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    pub query: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The route's path parameters, percent-decoded, as `(name, value)`.
    pub params: Vec<(String, String)>,
    /// The client's address (the real one behind a trusted PROXY protocol proxy); `None`
    /// when the connection did not say (a request parsed without a socket).
    pub client_addr: Option<std::net::SocketAddr>,
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
            params: request
                .params()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            client_addr: request.client_addr(),
        }
    }

    /// The value of query parameter `name` (`a=1&b=2`), if present.
    pub fn query_param(&self, name: &str) -> Option<&[u8]> {
        query_param(self.query.as_deref()?, name)
    }

    /// The percent-decoded value of path parameter `name` (`/users/{id}` → `id`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value.as_slice())
    }
}

/// The value of parameter `name` in a query string.
pub fn query_param<'q>(query: &'q [u8], name: &str) -> Option<&'q [u8]> {
    query.split(|b| *b == b'&').find_map(|pair| {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        (kv.next()? == name.as_bytes()).then(|| kv.next().unwrap_or(b""))
    })
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
