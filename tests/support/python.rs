//! Test support: run a Python snippet over some input (JSON validation uses Python's `json`
//! module, a parser nobody here wrote). Standalone: std only.

use std::{
    io::Write,
    process::{Command, Stdio},
};

/// Runs `script` with `input` on stdin and returns its stdout; a failing script fails the
/// test. `None`, with the reason printed, when python3 is missing outside CI; under
/// `CI=true` a missing python3 fails the test (tests/run.sh installs it).
pub fn python(script: &str, input: &[u8]) -> Option<String> {
    let mut child = match Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "python3 is required under CI: {e}"
            );
            eprintln!("skipped: python3 is needed to validate JSON ({e})");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}\ninput: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(input)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
