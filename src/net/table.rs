//! The shard's table of connections, indexed by the slot in their tokens; a generation per
//! slot turns completions for a closed and reused slot into no-ops.

use std::{
    os::fd::{AsRawFd, OwnedFd},
    rc::Rc,
    sync::Arc,
};

use super::{conn::Conn, steer::SteerShared};
use crate::driver::{Token, token::next_generation};

pub(crate) struct ConnTable {
    slots: Vec<(u32, Option<Rc<Conn>>)>,
    free: Vec<u32>,
    open: usize,
    /// Where a released connection is taken off this shard's load (steering).
    steer: Arc<SteerShared>,
    shard_id: usize,
}

impl ConnTable {
    pub(crate) fn new(steer: Arc<SteerShared>, shard_id: usize) -> Self {
        ConnTable {
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            steer,
            shard_id,
        }
    }

    pub(crate) fn insert(&mut self, fd: OwnedFd) -> Rc<Conn> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.0 = next_generation(entry.0);
        let conn = Rc::new(Conn {
            slot,
            generation: entry.0,
            fd: fd.as_raw_fd(),
            owned_fd: Some(fd).into(),
            rx: Default::default(),
            tx: Default::default(),
            recv_armed: false.into(),
            send_op: None.into(),
            in_flush_list: false.into(),
            in_holding_list: false.into(),
            closing: false.into(),
            cancel_sent: false.into(),
            abort: false.into(),
        });
        entry.1 = Some(conn.clone());
        self.open += 1;
        conn
    }

    pub(crate) fn get(&self, token: Token) -> Option<&Rc<Conn>> {
        let (generation, conn) = self.slots.get(token.index() as usize)?;
        if *generation != token.generation() {
            return None;
        }
        conn.as_ref()
    }

    pub(crate) fn remove(&mut self, conn: &Conn) {
        let entry = &mut self.slots[conn.slot as usize];
        if entry.0 == conn.generation && entry.1.take().is_some() {
            self.free.push(conn.slot);
            self.open -= 1;
            if let Some(load) = self.steer.load(self.shard_id) {
                load.sub(1);
            }
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.open
    }

    pub(crate) fn all(&self) -> Vec<Rc<Conn>> {
        self.slots.iter().filter_map(|(_, c)| c.clone()).collect()
    }
}
