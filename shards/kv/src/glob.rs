//! Glob-style matching as Redis's `stringmatchlen` does it, for KEYS, SCAN MATCH and
//! PSUBSCRIBE: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\` escapes. Bounded: recursion on
//! `*` is replaced by backtracking to the last star, so matching is O(pattern × string).

/// Redis's matcher recurses once per `*` and gives up (no match) past this depth; a
/// pattern with more stars than this never matches there, nor here.
const MAX_STARS: usize = 1000;

/// True when `string` matches `pattern`.
pub fn matches(pattern: &[u8], string: &[u8]) -> bool {
    let stars = pattern
        .iter()
        .zip(pattern.iter().skip(1).chain(std::iter::once(&0)))
        .filter(|&(&a, &b)| a == b'*' && b != b'*')
        .count();
    if stars > MAX_STARS {
        return false;
    }
    let (mut p, mut s) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, string index).
    let mut star: Option<(usize, usize)> = None;
    while s < string.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, s));
                    continue;
                }
                b'?' => {
                    p += 1;
                    s += 1;
                    continue;
                }
                _ => {
                    if let Some((next, ok)) = match_one(pattern, p, string[s])
                        && ok
                    {
                        p = next;
                        s += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last star take one more byte, or fail.
        match star {
            Some((after, taken)) => {
                p = after;
                s = taken + 1;
                star = Some((after, taken + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Matches one byte against the pattern element at `p` (a literal, an escape or a class).
/// Returns the index after the element and whether it matched.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<(usize, bool)> {
    match pattern[p] {
        b'\\' if p + 1 < pattern.len() => Some((p + 2, pattern[p + 1] == c)),
        b'[' => Some(match_class(pattern, p + 1, c)),
        literal => Some((p + 1, literal == c)),
    }
}

fn match_class(pattern: &[u8], mut p: usize, c: u8) -> (usize, bool) {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            matched |= pattern[p + 1] == c;
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' && pattern[p + 2] != b']' {
            let (lo, hi) = (
                pattern[p].min(pattern[p + 2]),
                pattern[p].max(pattern[p + 2]),
            );
            matched |= (lo..=hi).contains(&c);
            p += 3;
        } else {
            matched |= pattern[p] == c;
            p += 1;
        }
    }
    // Past the `]` (a class left open runs to the end of the pattern, as in Redis).
    let next = (p + 1).min(pattern.len());
    (next, matched != negate)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_with_more_stars_than_redis_recurses_through_never_match() {
        let long = vec![b'a'; 2000];
        assert!(matches(&b"*?".repeat(3), b"aaa"));
        assert!(matches(&b"*?".repeat(1000), &long));
        assert!(!matches(&b"*?".repeat(1001), &long));
    }

    #[test]
    fn globs_match_as_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h*llo", "hello!", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("*a*b*c", "xaybzc", true),
            ("*a*b*c", "xaybz", false),
            ("", "", true),
            ("", "a", false),
            ("a**", "a", true),
        ];
        for (pattern, string, expected) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), string.as_bytes()),
                *expected,
                "{pattern} ~ {string}"
            );
        }
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let pattern = "*a".repeat(50) + "b";
        let string = "a".repeat(5_000);
        assert!(!matches(pattern.as_bytes(), string.as_bytes()));
    }
}
