//! The connections of every shard, for CLIENT LIST, CLIENT KILL and CLIENT UNBLOCK.
//!
//! Each shard keeps its connections' public state in a registry (a thread-local of the
//! shard): what CLIENT LIST shows, a channel that tells the connection to close, and
//! while it waits in a blocking command, the channel that unblocks it. A connection
//! updates its entry when that state changes (SELECT, a name, a blocking wait); the CLIENT
//! commands reach every shard's registry through the mesh.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    task::{Poll, Waker},
    time::Instant,
};

use crate::hash::FxHashMap;

/// How a blocked client is unblocked (CLIENT UNBLOCK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unblock {
    /// As if its timeout had passed.
    Timeout,
    /// With the `-UNBLOCKED` error.
    Error,
    /// CLIENT KILL: the connection closes.
    Killed,
}

/// Tells one connection to close; the connection waits on it next to its reads.
#[derive(Default)]
pub struct KillSwitch {
    killed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// Shields held: while a transaction runs, a kill waits for its end (so a killed
    /// client's EXEC is whole or not at all).
    shields: Cell<u32>,
}

/// Holds a connection's kill off while it lives (see [`KillSwitch::shield`]).
pub struct Shield(Rc<KillSwitch>);

impl Drop for Shield {
    fn drop(&mut self) {
        let kill = &self.0;
        kill.shields.set(kill.shields.get() - 1);
        if kill.shields.get() == 0
            && kill.killed.get()
            && let Some(waker) = kill.waker.borrow_mut().take()
        {
            waker.wake();
        }
    }
}

impl KillSwitch {
    fn kill(&self) {
        self.killed.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Whether CLIENT KILL named this connection (it then starts nothing new).
    pub fn is_killed(&self) -> bool {
        self.killed.get()
    }

    /// Defers a kill until the returned shield is dropped.
    pub fn shield(self: &Rc<Self>) -> Shield {
        self.shields.set(self.shields.get() + 1);
        Shield(self.clone())
    }

    /// Resolves once the connection is killed (and no shield holds the kill off).
    pub async fn killed(&self) {
        std::future::poll_fn(|cx| {
            if self.killed.get() && self.shields.get() == 0 {
                return Poll::Ready(());
            }
            let mut waker = self.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// One connection as the registry shows it.
pub struct Entry {
    pub addr: String,
    pub laddr: String,
    pub name: Option<Vec<u8>>,
    pub db: usize,
    pub since: Instant,
    pub subscriptions: (usize, usize),
    pub resp: u8,
    /// Tells the connection to close.
    pub kill: Rc<KillSwitch>,
    /// While it waits in a blocking command: unblocks it.
    pub unblock: Option<flume::Sender<Unblock>>,
}

thread_local! {
    static CLIENTS: RefCell<FxHashMap<u64, Entry>> = RefCell::new(FxHashMap::default());
}

pub fn register(id: u64, entry: Entry) {
    CLIENTS.with(|c| c.borrow_mut().insert(id, entry));
}

pub fn unregister(id: u64) {
    CLIENTS.with(|c| c.borrow_mut().remove(&id));
}

/// Changes this shard's entry of connection `id`.
pub fn update(id: u64, f: impl FnOnce(&mut Entry)) {
    CLIENTS.with(|c| {
        if let Some(entry) = c.borrow_mut().get_mut(&id) {
            f(entry);
        }
    });
}

/// A CLIENT LIST line for each connection of this shard that `keep` accepts.
pub fn lines(shard: usize, keep: impl Fn(u64, &Entry) -> bool) -> Vec<(u64, String)> {
    CLIENTS.with(|c| {
        c.borrow()
            .iter()
            .filter(|(id, e)| keep(**id, e))
            .map(|(id, e)| (*id, line(shard, *id, e)))
            .collect()
    })
}

fn line(shard: usize, id: u64, e: &Entry) -> String {
    let name = e
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let mut flags = String::new();
    if e.unblock.is_some() {
        flags.push('b');
    }
    if e.subscriptions.0 + e.subscriptions.1 > 0 {
        flags.push('P');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    format!(
        "id={id} addr={} laddr={} fd=-1 name={name} age={} idle=0 flags={flags} db={} sub={} psub={} ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r user=default redir=-1 resp={} shard={shard}",
        e.addr,
        e.laddr,
        e.since.elapsed().as_secs(),
        e.db,
        e.subscriptions.0,
        e.subscriptions.1,
        e.resp,
    )
}

/// Which connections CLIENT KILL's filters select.
#[derive(Clone, Debug, Default)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    /// The connection that asked, unless SKIPME no.
    pub skip: Option<u64>,
    pub pubsub: Option<bool>,
}

/// Closes this shard's connections that `filter` selects; how many.
pub fn kill(filter: &KillFilter) -> usize {
    CLIENTS.with(|c| {
        let clients = c.borrow();
        let mut killed = 0;
        for (id, e) in clients.iter() {
            let pubsub = e.subscriptions.0 + e.subscriptions.1 > 0;
            if filter.id.is_some_and(|want| want != *id)
                || filter.addr.as_ref().is_some_and(|a| *a != e.addr)
                || filter.laddr.as_ref().is_some_and(|a| *a != e.laddr)
                || filter.skip == Some(*id)
                || filter.pubsub.is_some_and(|p| p != pubsub)
            {
                continue;
            }
            e.kill.kill();
            if let Some(unblock) = &e.unblock {
                let _ = unblock.try_send(Unblock::Killed);
            }
            killed += 1;
        }
        killed
    })
}

/// Unblocks connection `id` if it is here and blocked; true when it was.
pub fn unblock(id: u64, how: Unblock) -> bool {
    CLIENTS.with(|c| {
        c.borrow()
            .get(&id)
            .and_then(|e| e.unblock.as_ref())
            .is_some_and(|tx| tx.try_send(how).is_ok())
    })
}
