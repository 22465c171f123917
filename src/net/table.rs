//! The shard's table of connections, keyed like their completion tokens: a slab with
//! generational keys, so completions for a closed connection whose slot was reused find
//! nothing.

use std::{os::fd::OwnedFd, rc::Rc, sync::Arc};

use super::{conn::Conn, steer::SteerShared};
use crate::{
    driver::Token,
    slab::{Key, Slab},
};

pub(crate) struct ConnTable {
    conns: Slab<Rc<Conn>>,
    /// Where a released connection is taken off this shard's load (steering).
    steer: Arc<SteerShared>,
    shard_id: usize,
}

impl ConnTable {
    pub(crate) fn new(steer: Arc<SteerShared>, shard_id: usize) -> Self {
        ConnTable {
            conns: Slab::default(),
            steer,
            shard_id,
        }
    }

    pub(crate) fn insert(&mut self, fd: OwnedFd) -> Rc<Conn> {
        let key = self.conns.insert_with(|key| Rc::new(Conn::new(key, fd)));
        self.conns.get(key).expect("just inserted").clone()
    }

    /// The connection a completion token names, if it is still open.
    #[inline]
    pub(crate) fn get(&self, token: Token) -> Option<&Rc<Conn>> {
        self.conns
            .get(Key::from_parts(token.index(), token.generation()))
    }

    pub(crate) fn remove(&mut self, conn: &Conn) {
        if self.conns.remove(conn.key).is_some()
            && let Some(load) = self.steer.load(self.shard_id)
        {
            load.sub(1);
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn all(&self) -> Vec<Rc<Conn>> {
        self.conns.iter().map(|(_, conn)| conn.clone()).collect()
    }
}
