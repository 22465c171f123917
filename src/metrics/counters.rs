//! Counters a service registers on its shard (HTTP requests by status class, RESP commands
//! by name...). Each is a plain shard-local cell: incrementing costs one add, and the
//! registry is read only when metrics are gathered.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use crate::task::local::ShardLocal;

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<Registry>>>> = const { RefCell::new(None) };
}

/// The service counters of the shard this thread runs.
pub(crate) static REGISTRY: ShardLocal<RefCell<Registry>> = ShardLocal::new(&CURRENT);

/// A shard-local counter; cloning shares the same count.
#[derive(Clone, Debug)]
pub struct Counter(Rc<Cell<u64>>);

impl Counter {
    pub fn inc(&self) {
        self.0.set(self.0.get() + 1);
    }

    pub fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// One registered counter of the current shard.
pub(crate) struct Registered {
    name: &'static str,
    help: &'static str,
    labels: String,
    value: Counter,
}

/// A counter's value at a snapshot, with its Prometheus name, help and rendered labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSample {
    pub name: &'static str,
    pub help: &'static str,
    /// `key="value"` pairs joined by commas (already escaped).
    pub labels: String,
    pub value: u64,
}

#[derive(Default)]
pub(crate) struct Registry {
    counters: Vec<Registered>,
}

impl Registry {
    pub(crate) fn snapshot(&self) -> Vec<ServiceSample> {
        self.counters
            .iter()
            .map(|c| ServiceSample {
                name: c.name,
                help: c.help,
                labels: c.labels.clone(),
                value: c.value.get(),
            })
            .collect()
    }
}

/// Registers a counter on the current shard, exported as `name{labels..., shard="N"}`.
/// Registering the same name and labels again returns the existing counter.
pub fn counter(name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Counter {
    let rendered = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect::<Vec<_>>()
        .join(",");
    let registry = REGISTRY.current();
    let mut registry = registry.borrow_mut();
    if let Some(existing) = registry
        .counters
        .iter()
        .find(|c| c.name == name && c.labels == rendered)
    {
        return existing.value.clone();
    }
    let value = Counter(Rc::new(Cell::new(0)));
    registry.counters.push(Registered {
        name,
        help,
        labels: rendered,
        value: value.clone(),
    });
    value
}

/// Escapes a label value as the Prometheus text format requires.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
