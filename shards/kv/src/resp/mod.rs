//! RESP2, sans-IO: a stateful request parser (multibulk and inline commands) and reply
//! encoders. Nothing here touches a socket, so every case is tested at every split point
//! and the parser is fuzzed directly.

mod encode;
mod inline;
mod parser;
#[cfg(test)]
mod tests;

pub use self::{
    encode::*,
    inline::split_inline,
    parser::{Limits, Parsed, Parser, ProtocolError, parse_int},
};
