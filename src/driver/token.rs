//! The `user_data` word of every SQE: which table owns the completion, and which slot.
//!
//! Layout: bits 56..64 hold the [`Kind`], bits 32..56 a generation that detects stale
//! completions for a reused slot, bits 0..32 the slot index. Every CQE is routed by this word
//! alone, so the ring needs no lookup table of its own for the hot operations.

/// Which part of the shard a completion belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Completions nobody waits for (cancel requests, closes, the sender side of MSG_RING).
    Ignore = 0,
    /// An op kept in the driver's op table ([`super::uring::lifecycle`]).
    Lifecycle = 1,
    /// A listener's accepts (a few in flight, one connection each); the slot is the listener's.
    Accept = 2,
    /// Multishot receive of a connection; the slot is the connection's.
    Recv = 3,
    /// A connection's send: the route of its op (the completion itself carries the op's
    /// `Lifecycle` token); the slot is the connection's.
    Send = 4,
    /// A wake-up: the read of the shard's eventfd, or a MSG_RING from another shard.
    Wake = 5,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token(u64);

const INDEX_BITS: u32 = 32;
const GENERATION_MASK: u64 = (1 << 24) - 1;

impl Token {
    pub(crate) const IGNORE: Token = Token(0);

    pub(crate) const fn new(kind: Kind, index: u32, generation: u32) -> Self {
        let generation = generation as u64 & GENERATION_MASK;
        Token(((kind as u64) << 56) | (generation << INDEX_BITS) | index as u64)
    }

    pub(crate) fn from_user_data(user_data: u64) -> Self {
        Token(user_data)
    }

    pub(crate) fn user_data(self) -> u64 {
        self.0
    }

    /// The kind, or `None` for a word this shard never produced.
    pub(crate) fn kind(self) -> Option<Kind> {
        Some(match self.0 >> 56 {
            0 => Kind::Ignore,
            1 => Kind::Lifecycle,
            2 => Kind::Accept,
            3 => Kind::Recv,
            4 => Kind::Send,
            5 => Kind::Wake,
            _ => return None,
        })
    }

    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 >> INDEX_BITS) & GENERATION_MASK) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let token = Token::new(Kind::Recv, 0xdead_beef, 0x00ab_cdef);
        let back = Token::from_user_data(token.user_data());
        assert_eq!(back.kind(), Some(Kind::Recv));
        assert_eq!(back.index(), 0xdead_beef);
        assert_eq!(back.generation(), 0x00ab_cdef);
    }

    #[test]
    fn generation_is_cut_to_its_bits() {
        let token = Token::new(Kind::Send, 1, GENERATION_MASK as u32 + 5);
        assert_eq!(token.generation(), 4);
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert_eq!(Token::from_user_data(0xff << 56).kind(), None);
        assert_eq!(Token::new(Kind::Wake, 1, 0).kind(), Some(Kind::Wake));
    }
}
