//! What a shard is running, named cheaply: a [`Label`] is a small number standing for an
//! interned name ("GET /work"), and each shard has one slot the service sets when it
//! dispatches a handler. The stall detector reads the slot from its own thread to name the
//! route or task of a stalled iteration; the shard clears it when its iteration ends.
//!
//! Setting a label is one relaxed store to a word only the shard writes: no lock, no
//! read-modify-write, no cache line another shard writes. Interning takes a lock and is
//! meant for setup (a router interns its routes once per shard).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU32, Ordering},
};

use super::{CORE, remote::ShardRemote};

/// An interned name of a route or task (see the module docs). `Label::NONE` names nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Label(u32);

/// The interned names; index 0 is "no label".
static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

impl Label {
    /// No label: the shard runs something that did not name itself.
    pub const NONE: Label = Label(0);

    /// The label for `name`, interned on first use (the same name gives the same label).
    /// Takes a process-wide lock: call it at setup, not per request.
    pub fn new(name: &str) -> Label {
        let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = names.iter().position(|n| *n == name) {
            return Label(i as u32 + 1);
        }
        // Leaked once per distinct name: labels are a small, fixed set (routes, task kinds).
        names.push(Box::leak(name.to_owned().into_boxed_str()));
        Label(names.len() as u32)
    }

    #[cfg(test)]
    pub(crate) fn id(self) -> u32 {
        self.0
    }

    /// The label's name; `None` for [`Label::NONE`].
    pub fn name(self) -> Option<&'static str> {
        name_of(self.0)
    }
}

pub(crate) fn name_of(id: u32) -> Option<&'static str> {
    let index = id.checked_sub(1)? as usize;
    NAMES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(index)
        .copied()
}

/// The current shard's label slot, kept by a connection so that setting a label costs no
/// thread-local look-up. `None` off a shard.
pub fn label_slot() -> Option<LabelSlot> {
    CORE.with(|core| LabelSlot(core.remote.clone()))
}

/// Names what the current shard runs until its loop iteration ends (a no-op off a shard).
pub fn set_label(label: Label) {
    CORE.with(|core| core.remote.set_label(label.0));
}

/// One shard's label slot (see [`label_slot`]).
#[derive(Clone)]
pub struct LabelSlot(Arc<ShardRemote>);

impl LabelSlot {
    /// Names what the shard runs now, until its loop iteration ends.
    #[inline]
    pub fn set(&self, label: Label) {
        self.0.set_label(label.0);
    }
}

/// The slot itself, kept in [`ShardRemote`]: written by the shard, read by the detector.
#[derive(Default)]
pub(crate) struct LabelCell(AtomicU32);

impl LabelCell {
    #[inline]
    pub(crate) fn set(&self, id: u32) {
        self.0.store(id, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::Label;

    #[test]
    fn the_same_name_gives_the_same_label() {
        let a = Label::new("GET /label-test-a");
        let b = Label::new("GET /label-test-b");
        assert_ne!(a, b);
        assert_eq!(Label::new("GET /label-test-a"), a);
        assert_eq!(a.name(), Some("GET /label-test-a"));
        assert_eq!(Label::NONE.name(), None);
    }
}
