//! [`PerShard`]: the public home of an application's per-shard state.

use std::{
    any::Any,
    cell::RefCell,
    collections::HashMap,
    marker::PhantomData,
    rc::Rc,
    sync::atomic::{AtomicUsize, Ordering},
};

use super::CORE;

/// Hands each `PerShard` static its key on first use (0 means "no key yet").
static NEXT_KEY: AtomicUsize = AtomicUsize::new(1);

/// The values of every [`PerShard`] on one shard, kept by the shard's executor and dropped
/// when the shard ends (after its tasks).
#[derive(Default)]
pub(crate) struct PerShardValues(RefCell<HashMap<usize, Rc<dyn Any>>>);

impl PerShardValues {
    pub(crate) fn clear(&self) {
        let values = std::mem::take(&mut *self.0.borrow_mut());
        drop(values);
    }
}

/// State that each shard holds a value of its own: a counter table, a cache, a client
/// pool. Declare it as a `static`; every shard sees only its own value, so the value need
/// not be `Send` or `Sync` (`Rc`, `RefCell`, `Cell` are the usual contents), and no lock
/// or atomic is paid to reach it.
///
/// This is where per-shard state lives. An `Rc` or `RefCell` captured by the closure
/// given to `serve`/`start` fails with "cannot be sent between threads safely", because
/// that closure is shared by every shard thread; a `PerShard` static is reached from inside
/// the shard instead. Set it in the init hook ([`ServerBuilder::on_shard_start`]) or let
/// the first use build it ([`get_or_init`](Self::get_or_init)). A plain `thread_local!`
/// works too (a shard is one thread); `PerShard` adds a clear panic off a shard and drops
/// the value when the shard stops.
///
/// ```no_run
/// use std::{cell::Cell, net::SocketAddr};
/// use percore::{PerShard, Server, TcpStream};
///
/// static SERVED: PerShard<Cell<u64>> = PerShard::new();
///
/// async fn handle(_stream: TcpStream) {
///     SERVED.with(|n| n.set(n.get() + 1));
/// }
///
/// let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
/// let server = Server::builder()
///     .on_shard_start(|_shard| {
///         SERVED.set(Cell::new(0));
///         Ok(())
///     })
///     .serve(addr, handle)
///     .unwrap();
/// # server.stop();
/// ```
///
/// Not the kernel's internal `ShardLocal` (each layer's own state): that one is private.
///
/// [`ServerBuilder::on_shard_start`]: crate::ServerBuilder::on_shard_start
pub struct PerShard<T: 'static> {
    key: AtomicUsize,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> Default for PerShard<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> PerShard<T> {
    /// A per-shard slot with no value on any shard yet.
    pub const fn new() -> Self {
        PerShard {
            key: AtomicUsize::new(0),
            _value: PhantomData,
        }
    }

    fn key(&self) -> usize {
        let key = self.key.load(Ordering::Acquire);
        if key != 0 {
            return key;
        }
        let fresh = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        match self
            .key
            .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh,
            Err(existing) => existing,
        }
    }

    /// Sets the current shard's value (replacing an earlier one).
    ///
    /// # Panics
    /// Off a shard.
    #[track_caller]
    pub fn set(&self, value: T) {
        let key = self.key();
        let previous = CORE.with_current(|core| {
            core.per_shard
                .0
                .borrow_mut()
                .insert(key, Rc::new(value) as Rc<dyn Any>)
        });
        drop(previous);
    }

    /// The current shard's value, if it has one; `None` off a shard too.
    pub fn try_get(&self) -> Option<Rc<T>> {
        let key = self.key();
        CORE.with(|core| core.per_shard.0.borrow().get(&key).cloned())
            .flatten()
            .and_then(|value| value.downcast::<T>().ok())
    }

    /// The current shard's value.
    ///
    /// # Panics
    /// Off a shard, or when this shard has no value yet (neither
    /// [`set`](Self::set) nor [`get_or_init`](Self::get_or_init) ran on it).
    #[track_caller]
    pub fn get(&self) -> Rc<T> {
        CORE.with_current(|_| ());
        match self.try_get() {
            Some(value) => value,
            None => panic!(
                "percore: this PerShard<{}> has no value on this shard: set it in the init hook (ServerBuilder::on_shard_start) or use get_or_init",
                std::any::type_name::<T>()
            ),
        }
    }

    /// The current shard's value, made by `init` on its first use on this shard.
    ///
    /// # Panics
    /// Off a shard.
    #[track_caller]
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> Rc<T> {
        CORE.with_current(|_| ());
        if let Some(value) = self.try_get() {
            return value;
        }
        // `init` runs outside any borrow: it may use other `PerShard`s.
        let value = Rc::new(init());
        let key = self.key();
        CORE.with_current(|core| {
            core.per_shard
                .0
                .borrow_mut()
                .insert(key, value.clone() as Rc<dyn Any>)
        });
        value
    }

    /// Runs `f` with the current shard's value (see [`get`](Self::get) for the panics).
    #[track_caller]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.get())
    }
}
