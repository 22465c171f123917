//! The chunked transfer coding (RFC 9112 §7.1), decoded byte by byte.
//!
//! A state machine over single bytes (chunk data is copied in runs): every decision is made
//! on one fixed byte of the stream, so the verdict and the decoded body cannot depend on
//! where reads break (R15). Strict: hex size digits only (no sign, no `0x`, no spaces
//! before it), whitespace after the size only before a `;` extension, CRLF everywhere (a bare
//! LF or CR is refused), CRLF after each chunk's data. Limits: the size never overflows
//! `u64`, the decoded total stays within `max_body` (413), a size line within
//! `max_chunk_line` (400), trailers within `max_header_bytes`/`max_headers` (431). Trailer
//! fields are checked like header fields, then dropped.

use crate::{
    HttpError, Limits,
    chars::{is_field_value_byte, is_tchar},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// First byte of a chunk-size line.
    SizeStart,
    SizeDigits,
    /// Whitespace after the size: only more of it or `;` may follow.
    SizeSpace,
    /// In a chunk extension, until CR.
    Extension,
    /// After the size line's CR.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// First byte of a trailer line, or the CR of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

/// Progress of one chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the chunk being read, then what is left of its data.
    size: u64,
    /// Decoded bytes so far.
    total: u64,
    line_len: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: State::SizeStart,
            size: 0,
            total: 0,
            line_len: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
        }
    }
}

fn hex_value(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

impl ChunkedDecoder {
    /// Decodes from `input`, appending chunk data to `body`. Returns how many bytes were
    /// used and whether the body (with its trailers) is complete; while it is not, all of
    /// `input` is used.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        limits: &Limits,
    ) -> Result<(usize, bool), HttpError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let run = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                body.extend_from_slice(&input[i..i + run]);
                // `run` ≤ `self.size`, which is a u64: the cast back is lossless.
                self.size -= run as u64;
                i += run;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(input[i], limits)?;
            i += 1;
        }
        Ok((i, self.state == State::Done))
    }

    /// Takes one byte outside chunk data.
    fn step(&mut self, b: u8, limits: &Limits) -> Result<(), HttpError> {
        use State::*;
        if matches!(
            self.state,
            SizeStart | SizeDigits | SizeSpace | Extension | SizeLf
        ) {
            self.line_len += 1;
            if self.line_len > limits.max_chunk_line {
                return Err(HttpError::bad_request("chunk-size line too long"));
            }
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf
        ) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > limits.max_header_bytes {
                return Err(HttpError::headers_too_large("trailer section too large"));
            }
        }
        self.state = match (self.state, b) {
            (SizeStart, _) => {
                self.size = hex_value(b).ok_or(HttpError::bad_request("invalid chunk size"))?;
                SizeDigits
            }
            (SizeDigits, _) if b.is_ascii_hexdigit() => {
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(hex_value(b).unwrap_or(0)))
                    .ok_or(HttpError::bad_request("chunk size overflows"))?;
                SizeDigits
            }
            (SizeDigits | SizeSpace, b' ' | b'\t') => SizeSpace,
            (SizeDigits | SizeSpace, b';') => Extension,
            (SizeDigits | Extension, b'\r') => SizeLf,
            (Extension, _) if is_field_value_byte(b) => Extension,
            (SizeLf, b'\n') => self.end_size_line(limits)?,
            (SizeDigits | SizeSpace | Extension | SizeLf, _) => {
                return Err(HttpError::bad_request("invalid chunk-size line"));
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => SizeStart,
            (DataCr | DataLf, _) => {
                return Err(HttpError::bad_request("chunk data not followed by CRLF"));
            }
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart, _) if is_tchar(b) => {
                self.trailer_fields += 1;
                if self.trailer_fields > limits.max_headers {
                    return Err(HttpError::headers_too_large("too many trailer fields"));
                }
                TrailerName
            }
            (TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_value_byte(b) => TrailerValue,
            (TrailerLf, b'\n') => TrailerStart,
            (FinalLf, b'\n') => Done,
            (TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf, _) => {
                return Err(HttpError::bad_request("invalid trailer section"));
            }
            (Data | Done, _) => self.state,
        };
        Ok(())
    }

    fn end_size_line(&mut self, limits: &Limits) -> Result<State, HttpError> {
        self.line_len = 0;
        if self.size == 0 {
            return Ok(State::TrailerStart);
        }
        self.total = self
            .total
            .checked_add(self.size)
            .filter(|&total| total <= limits.max_body)
            .ok_or(HttpError::body_too_large())?;
        Ok(State::Data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(usize, bool, Vec<u8>), HttpError> {
        let mut body = Vec::new();
        let (used, done) =
            ChunkedDecoder::default().decode(input, &mut body, &Limits::default())?;
        Ok((used, done, body))
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let input = b"5;a=b\r\nhello\r\n1 ; x\r\n!\r\n0\r\nT: v\r\n\r\nNEXT";
        let (used, done, body) = decode_all(input).unwrap();
        assert!(done);
        assert_eq!(body, b"hello!");
        assert_eq!(&input[used..], b"NEXT");
    }

    #[test]
    fn refuses_bad_framing() {
        for bad in [
            &b"-5\r\n"[..],
            b"0x5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b"5\n",
            b"5\r\r",
            b"5\r\nhelloX",
            b"5\r\nhello\n",
            b"10000000000000000\r\n",
            b"0\r\n\n",
            b"0\r\n x\r\n\r\n",
            b"0\r\nT : v\r\n\r\n",
        ] {
            assert_eq!(
                decode_all(bad).map_err(|e| e.status).err(),
                Some(400),
                "{bad:?}"
            );
        }
        assert_eq!(decode_all(b"100001\r\n").unwrap_err().status, 413);
    }
}
