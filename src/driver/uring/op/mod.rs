//! One file per io_uring operation, each with the same shape: the struct that owns what the
//! kernel may touch while the operation is in flight, its constructor, and `to_sqe`, which
//! turns it into a submission entry carrying the completion's [`Token`](crate::driver::Token).

pub(crate) mod accept;
pub(crate) mod cancel;
pub(crate) mod close;
pub(crate) mod connect;
pub(crate) mod msg_ring;
pub(crate) mod read;
pub(crate) mod recv;
pub(crate) mod send;
