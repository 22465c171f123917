//! The route table: exact paths in a small sorted list, patterns with parameters in a radix
//! tree (`matchit`), each path with its methods. Built once per shard; looked up per request
//! without allocating (up to three parameters).

use super::Route;
use crate::chars::{self, same_bytes};

/// A route as registered: `method` and `path`.
#[derive(Clone, Copy)]
pub(super) struct RouteKey<'a> {
    pub(super) method: &'a str,
    pub(super) path: &'a str,
}

/// The methods of one path and its `Allow` value.
#[derive(Clone)]
pub(super) struct PathRoutes {
    pattern: Box<str>,
    methods: Vec<(Box<[u8]>, Route)>,
    allow: String,
}

impl PathRoutes {
    /// The route for `method`; `HEAD` falls back to the `GET` route.
    #[inline]
    pub(super) fn get(&self, method: &[u8]) -> Option<&Route> {
        let exact = self.methods.iter().find(|(m, _)| same_bytes(m, method));
        match exact {
            Some((_, route)) => Some(route),
            None if method == b"HEAD" => self.get(b"GET"),
            None => None,
        }
    }

    pub(super) fn allow(&self) -> &str {
        &self.allow
    }

    fn add(&mut self, method: &str, route: Route) -> Result<(), String> {
        if self.methods.iter().any(|(m, _)| **m == *method.as_bytes()) {
            return Err(format!("{method} {} is registered twice", self.pattern));
        }
        self.methods.push((method.as_bytes().into(), route));
        let mut names: Vec<&str> = self
            .methods
            .iter()
            .map(|(m, _)| std::str::from_utf8(m).unwrap_or("?"))
            .collect();
        if names.contains(&"GET") && !names.contains(&"HEAD") {
            names.push("HEAD");
        }
        self.allow = names.join(", ");
        Ok(())
    }
}

/// Up to this many exact paths are searched in order; past it, by binary search.
const LINEAR_MAX: usize = 16;

#[derive(Clone, Default)]
pub(super) struct Table {
    /// Exact paths (no parameter), sorted, with their index in `paths`.
    exact: Vec<(Box<[u8]>, usize)>,
    /// Patterns with parameters → index in `paths`.
    tree: matchit::Router<usize>,
    paths: Vec<PathRoutes>,
}

impl Table {
    /// Adds a route; the error says what is wrong with it.
    pub(super) fn insert(&mut self, key: RouteKey<'_>, route: Route) -> Result<(), String> {
        let RouteKey { method, path } = key;
        if method.is_empty() || !method.bytes().all(chars::is_tchar) {
            return Err("the method must be a token such as GET".into());
        }
        if !path.starts_with('/') {
            return Err("the path must start with '/'".into());
        }
        let index = match self.paths.iter().position(|p| *p.pattern == *path) {
            Some(index) => index,
            None => self.insert_path(path)?,
        };
        self.paths[index].add(method, route)
    }

    fn insert_path(&mut self, path: &str) -> Result<usize, String> {
        let index = self.paths.len();
        if path.contains(['{', '}']) {
            self.tree.insert(path, index).map_err(insert_error)?;
        } else {
            let at = self
                .exact
                .binary_search_by(|(p, _)| (**p).cmp(path.as_bytes()))
                .unwrap_or_else(|at| at);
            self.exact.insert(at, (path.as_bytes().into(), index));
        }
        self.paths.push(PathRoutes {
            pattern: path.into(),
            methods: Vec::new(),
            allow: String::new(),
        });
        Ok(index)
    }

    /// The routes of `path` and the parameters it matched.
    #[inline]
    pub(super) fn lookup<'t, 'p>(
        &'t self,
        path: &'p [u8],
    ) -> Option<(&'t PathRoutes, Option<matchit::Params<'t, 'p>>)> {
        let exact = if self.exact.len() <= LINEAR_MAX {
            self.exact
                .iter()
                .find(|(p, _)| same_bytes(p, path))
                .map(|(_, i)| *i)
        } else {
            self.exact
                .binary_search_by(|(p, _)| (**p).cmp(path))
                .ok()
                .map(|at| self.exact[at].1)
        };
        if let Some(index) = exact {
            return Some((&self.paths[index], None));
        }
        self.lookup_pattern(path)
    }

    fn lookup_pattern<'t, 'p>(
        &'t self,
        path: &'p [u8],
    ) -> Option<(&'t PathRoutes, Option<matchit::Params<'t, 'p>>)> {
        // The parser admits only ASCII in a target.
        let path = std::str::from_utf8(path).ok()?;
        let matched = self.tree.at(path).ok()?;
        Some((&self.paths[*matched.value], Some(matched.params)))
    }
}

/// `matchit`'s reason in the router's words.
fn insert_error(error: matchit::InsertError) -> String {
    match error {
        matchit::InsertError::Conflict { with } => {
            format!("conflicts with \"{with}\": both would match the same paths")
        }
        matchit::InsertError::InvalidParamSegment => {
            "only one parameter is allowed per path segment".into()
        }
        matchit::InsertError::InvalidParam => "malformed parameter: write {name} or a last \
             {*name}, with a name and matching braces ({{ and }} for literal braces)"
            .into(),
        matchit::InsertError::InvalidCatchAll => {
            "a {*name} parameter must be the last segment".into()
        }
        other => other.to_string(),
    }
}
