//! `percore doctor --json`: a small fixed shape, written by hand (no serde for ten fields).
//!
//! ```json
//! {"percore": "0.1.0", "exit_code": 3, "shards": 2, "expected_connections": 10000,
//!  "summary": {"ok": 18, "warn": 1, "fail": 3},
//!  "checks": [{"name": "io_uring.setup", "verdict": "fail", "detail": "...", "fix": "..."}]}
//! ```
//! `fix` is `null` when there is nothing to do. One check per line, so `grep` still works.

use std::fmt::Write;

use super::{Check, DoctorConfig, Verdict, exit_code};

/// Renders the checks as one JSON object (see the module docs for the shape).
pub fn to_json(config: &DoctorConfig, checks: &[Check]) -> String {
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        out,
        "{{\"percore\": {}, \"exit_code\": {}, \"shards\": {}, \"expected_connections\": {},\n \"summary\": {{\"ok\": {}, \"warn\": {}, \"fail\": {}}},\n \"checks\": [",
        string(env!("CARGO_PKG_VERSION")),
        exit_code(checks),
        config.shards,
        config.expected_connections,
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail),
    );
    for (i, check) in checks.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n  {{\"name\": {}, \"verdict\": {}, \"detail\": {}, \"fix\": {}}}",
            if i == 0 { "" } else { "," },
            string(check.name),
            string(check.verdict.as_str()),
            string(&check.detail),
            check.fix.as_deref().map_or_else(|| "null".into(), string),
        );
    }
    out.push_str("\n]}\n");
    out
}

/// A JSON string literal: quotes, backslashes and control characters escaped (RFC 8259 §7);
/// everything else, including non-ASCII such as `≥`, stays as UTF-8.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\nd\u{1}≥"), "\"a\\\"b\\\\c\\nd\\u0001≥\"");
    }

    #[test]
    fn shape_has_every_key_and_null_fixes() {
        let config = DoctorConfig {
            shards: 2,
            expected_connections: 7,
            driver: crate::DriverChoice::Auto,
        };
        let checks = [
            Check::ok("kernel.version", "Linux 6.18"),
            Check::fail("io_uring.setup", "blocked \"EPERM\"", "allow it"),
        ];
        let json = to_json(&config, &checks);
        for key in [
            "\"percore\": ",
            "\"exit_code\": 3",
            "\"shards\": 2",
            "\"expected_connections\": 7",
            "\"summary\": {\"ok\": 1, \"warn\": 0, \"fail\": 1}",
            "\"fix\": null",
            "\"detail\": \"blocked \\\"EPERM\\\"\"",
            "\"verdict\": \"fail\"",
        ] {
            assert!(json.contains(key), "{key} missing in {json}");
        }
    }
}
