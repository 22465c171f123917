//! LCS: the longest common subsequence of two strings (LEN, IDX, MINMATCHLEN,
//! WITHMATCHLEN), computed as Redis computes it, so IDX reports the same ranges.

use super::{
    strings::{MAX_STRING, string_of},
    table::{NOT_INTEGER, SYNTAX},
};
use crate::{
    resp::{self, parse_int},
    store::Store,
};

pub fn lcs(store: &mut Store, args: &[Vec<u8>], now_ms: u64, out: &mut Vec<u8>) {
    let (a, b) = match (
        string_of(store, &args[1], now_ms).map(|v| v.map(<[u8]>::to_vec)),
        string_of(store, &args[2], now_ms).map(|v| v.map(<[u8]>::to_vec)),
    ) {
        (Ok(a), Ok(b)) => (a.unwrap_or_default(), b.unwrap_or_default()),
        _ => return resp::error(out, "ERR The specified keys must contain string values"),
    };
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"IDX" => idx = true,
            b"LEN" => len_only = true,
            b"WITHMATCHLEN" => with_len = true,
            b"MINMATCHLEN" if i + 1 < args.len() => {
                let Some(n) = parse_int(&args[i + 1]) else {
                    return resp::error(out, NOT_INTEGER);
                };
                min_len = n.max(0);
                i += 1;
            }
            _ => return resp::error(out, SYNTAX),
        }
        i += 1;
    }
    if len_only && idx {
        return resp::error(
            out,
            "ERR If you want both the length and indexes, please just use IDX.",
        );
    }
    let (alen, blen) = (a.len(), b.len());
    // The table holds a u32 per pair of positions, bounded as Redis bounds it.
    if (alen + 1).saturating_mul(blen + 1).saturating_mul(4) > MAX_STRING {
        return resp::error(
            out,
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let width = blen + 1;
    let mut table = vec![0u32; (alen + 1) * width];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen] as usize;
    if len_only {
        return resp::integer(out, total as i64);
    }
    let mut result = vec![0u8; total];
    let mut matches: Vec<[usize; 5]> = Vec::new();
    let (mut i, mut j, mut k) = (alen, blen, total);
    let mut range: Option<[usize; 4]> = None;
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[k - 1] = a[i - 1];
            match &mut range {
                None => range = Some([i - 1, i - 1, j - 1, j - 1]),
                Some(r) if r[0] == i && r[2] == j => {
                    r[0] -= 1;
                    r[2] -= 1;
                }
                Some(_) => emit = true,
            }
            if range.is_some_and(|r| r[0] == 0 || r[2] == 0) {
                emit = true;
            }
            k -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if range.is_some() {
                emit = true;
            }
        }
        if emit && let Some(r) = range {
            let match_len = r[1] - r[0] + 1;
            if min_len == 0 || match_len as i64 >= min_len {
                matches.push([r[0], r[1], r[2], r[3], match_len]);
            }
            // As Redis does: the next range starts at the next match.
            range = None;
        }
    }
    if !idx {
        return resp::bulk(out, &result);
    }
    resp::array(out, 4);
    resp::bulk(out, b"matches");
    resp::array(out, matches.len());
    for m in &matches {
        resp::array(out, 2 + usize::from(with_len));
        resp::array(out, 2);
        resp::integer(out, m[0] as i64);
        resp::integer(out, m[1] as i64);
        resp::array(out, 2);
        resp::integer(out, m[2] as i64);
        resp::integer(out, m[3] as i64);
        if with_len {
            resp::integer(out, m[4] as i64);
        }
    }
    resp::bulk(out, b"len");
    resp::integer(out, total as i64);
}
