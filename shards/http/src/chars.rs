//! Byte classes of RFC 9110/9112, as lookup tables.

/// A 256-entry table of the bytes for which the closure-like expression holds.
macro_rules! table {
    (|$b:ident| $pred:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $pred;
            i += 1;
        }
        t
    }};
}

/// `tchar`: the bytes of a token (method, field name, transfer coding).
static TCHAR: [bool; 256] = table!(|b| {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
});

/// `field-vchar / SP / HTAB`, obs-text included: everything but CTLs (CR, LF, NUL...) and DEL.
static FIELD_VALUE: [bool; 256] = table!(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));

/// A request-target byte: visible ASCII without `#` (a fragment is never sent); non-ASCII
/// must be percent-encoded.
static TARGET: [bool; 256] = table!(|b| b > 0x20 && b < 0x7f && b != b'#');

/// A `Host` byte: `reg-name`, `IP-literal` and `port` characters of RFC 3986.
static HOST: [bool; 256] = table!(|b| {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
                | b':'
                | b'['
                | b']'
        )
});

pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

pub(crate) fn is_field_value_byte(b: u8) -> bool {
    FIELD_VALUE[b as usize]
}

pub(crate) fn is_target_byte(b: u8) -> bool {
    TARGET[b as usize]
}

pub(crate) fn is_host(s: &[u8]) -> bool {
    s.iter().all(|&b| HOST[b as usize])
}

pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing spaces and tabs.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Each element of a comma-separated list (`#rule`), trimmed of OWS. Empty elements are
/// yielded too: framing headers refuse them.
pub(crate) fn list_elements(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&b| b == b',').map(trim_ows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_token(b"GET") && is_token(b"x-y_z~1") && !is_token(b"") && !is_token(b"a b"));
        assert!(!is_tchar(b':') && !is_tchar(b'\0') && !is_tchar(0x80));
        assert!(is_field_value_byte(b'\t') && is_field_value_byte(0xff));
        assert!(
            !is_field_value_byte(b'\r') && !is_field_value_byte(0) && !is_field_value_byte(0x7f)
        );
        assert!(is_target_byte(b'/') && !is_target_byte(b' ') && !is_target_byte(b'#'));
        assert!(is_host(b"[::1]:8080") && !is_host(b"a b") && !is_host(b"u@h"));
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        let v: Vec<&[u8]> = list_elements(b"a, b ,,c").collect();
        assert_eq!(v, [&b"a"[..], b"b", b"", b"c"]);
    }
}
