//! One file per io_uring operation, each with the same shape: the struct that owns what the
//! kernel may touch while the operation is in flight, its constructor, and its [`OpCode`]
//! impl, which turns it into a submission entry.
//!
//! # What an op must guarantee
//!
//! An SQE carries raw pointers and fd numbers; the kernel uses them until the op's
//! *terminal* completion (for a multishot op, the one without `IORING_CQE_F_MORE`), even
//! after a cancel. Every op meets that in one of two ways, and its type says which:
//!
//! - **points at no memory** ([`Pointerless`]: accept, multishot receive into the driver's
//!   own provided buffers, cancel, close, MSG_RING): its completions may be routed to any
//!   owner (a connection, a listener, the wake-up), which keeps the fds it names open;
//! - **owns memory** ([`OwnedOp`]: connect, send, eventfd read, timeout, file write and
//!   sync): whatever the SQE
//!   points at is on the heap and owned by the op, and the driver keeps the op in its op
//!   table (`lifecycle`) from submission to the terminal completion, whoever awaited it.
//!   Moving the op struct moves no memory the kernel sees.

pub(crate) mod accept;
pub(crate) mod cancel;
pub(crate) mod close;
pub(crate) mod connect;
pub(crate) mod file;
pub(crate) mod msg_ring;
pub(crate) mod read;
pub(crate) mod recv;
pub(crate) mod send;
pub(crate) mod timeout;

use io_uring::squeue::Entry;

pub(crate) use self::{
    accept::Accept,
    cancel::{Cancel, CancelAll},
    close::Close,
    connect::Connect,
    file::{FileSync, FileWrite},
    msg_ring::MsgRingWake,
    read::EventFdRead,
    recv::RecvMulti,
    send::Send,
    timeout::Timeout,
};

/// An io_uring operation.
///
/// # Safety
///
/// The entry `sqe` returns may point the kernel only at memory that stays valid, and where
/// the kernel writes, unmoved, while the op is kept by the driver until its terminal
/// completion: memory on the heap owned by `self` (so that moving `self` moves none of it),
/// or memory that lives as long as the driver. Its `user_data` is set by the driver.
pub(crate) unsafe trait OpCode {
    fn sqe(&mut self) -> Entry;
}

/// An op whose entry points at no memory at all (fd numbers and constants only), so it may
/// be submitted with any completion token.
///
/// # Safety
///
/// `OpCode::sqe` of the implementer must carry no pointer.
pub(crate) unsafe trait Pointerless: OpCode {}

/// An op that owns memory the kernel uses: submitted only through the driver's op table,
/// which keeps it until its terminal completion. Every such op is one variant of [`Owned`],
/// so the table stores ops by value, with no boxing or type erasure.
pub(crate) trait OwnedOp: OpCode + Sized {
    fn into_owned(self) -> Owned;
    /// The op back from the table; `None` if `owned` is another kind.
    fn from_owned(owned: Owned) -> Option<Self>;
}

macro_rules! owned_ops {
    ($($op:ident),* $(,)?) => {
        /// Every op that owns memory, by value: what the op table holds.
        pub(crate) enum Owned {
            $($op($op),)*
        }

        // SAFETY: each variant upholds the contract itself; this forwards to it.
        unsafe impl OpCode for Owned {
            fn sqe(&mut self) -> Entry {
                match self {
                    $(Owned::$op(op) => op.sqe(),)*
                }
            }
        }

        $(
            impl OwnedOp for $op {
                fn into_owned(self) -> Owned {
                    Owned::$op(self)
                }

                fn from_owned(owned: Owned) -> Option<Self> {
                    match owned {
                        Owned::$op(op) => Some(op),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )*
    };
}

owned_ops!(Connect, Send, EventFdRead, Timeout, FileWrite, FileSync);
