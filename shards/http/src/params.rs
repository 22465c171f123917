//! Path parameters: the values a route's `{name}` and `{*rest}` segments matched, percent-
//! decoded. A value without `%` is the request's own bytes (no copy, no allocation); one with
//! escapes is decoded once, at match time, and must decode to UTF-8, else the request gets
//! `400`.

use std::fmt;

use crate::HttpError;

/// The parameters of a matched route, by name.
#[derive(Clone, Default)]
pub struct PathParams<'k, 'v> {
    raw: matchit::Params<'k, 'v>,
    /// The decoded values of the parameters that had escapes, by position.
    decoded: Vec<(usize, String)>,
}

impl<'k, 'v> PathParams<'k, 'v> {
    /// Decodes what needs decoding; a malformed escape or a value that is not UTF-8 once
    /// decoded is a bad request.
    pub(crate) fn new(raw: matchit::Params<'k, 'v>) -> Result<Self, HttpError> {
        let mut decoded = Vec::new();
        for (i, (_, value)) in raw.iter().enumerate() {
            if value.contains('%') {
                decoded.push((i, percent_decode(value)?));
            }
        }
        Ok(Self { raw, decoded })
    }

    /// The decoded value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.raw.iter().position(|(key, _)| key == name)?;
        Some(self.value(i))
    }

    fn value(&self, i: usize) -> &str {
        match self.decoded.iter().find(|(at, _)| *at == i) {
            Some((_, value)) => value,
            None => self.raw.iter().nth(i).map_or("", |(_, value)| value),
        }
    }

    /// Every parameter as `(name, decoded value)`, in the route's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name, self.value(i)))
    }

    /// Whether the route has no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }
}

impl fmt::Debug for PathParams<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// `%XX` escapes decoded (`+` stays `+`: it means a space only in a query).
fn percent_decode(value: &str) -> Result<String, HttpError> {
    const BAD_ESCAPE: HttpError = HttpError::bad_request("malformed percent-escape in the path");
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BAD_ESCAPE)?;
            let high = hex_value(hex[0]).ok_or(BAD_ESCAPE)?;
            let low = hex_value(hex[1]).ok_or(BAD_ESCAPE)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| HttpError::bad_request("a path parameter is not UTF-8 once decoded"))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn escapes_are_decoded_and_bad_ones_refused() {
        assert_eq!(percent_decode("a%20b").unwrap(), "a b");
        assert_eq!(percent_decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(percent_decode("a%2Fb+c").unwrap(), "a/b+c");
        assert_eq!(percent_decode("%e2%82%ac").unwrap(), "€");
        for bad in ["%", "%2", "%zz", "a%g1", "%C3"] {
            let error = percent_decode(bad).unwrap_err();
            assert_eq!(error.status, 400, "{bad}");
        }
    }
}
