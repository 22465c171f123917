//! The doctor as a library on this host (`run_checks`, `judge`, `to_json`), and the files in
//! linux-setup/ it points users at: the Docker seccomp profile and the tuning script.

#[path = "support/python.rs"]
mod python;

use std::process::Command;

use python::python;

use percore::{
    DriverChoice,
    doctor::{self, Check, DoctorConfig, Facts, RingFacts, Verdict},
};

/// The io_uring lines judged strictly: a run that must have io_uring.
const CONFIG: DoctorConfig = DoctorConfig {
    shards: 1,
    expected_connections: 100,
    driver: DriverChoice::IoUring,
};

fn setup_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/linux-setup").to_string()
}

#[test]
fn this_host_gets_one_line_per_item_and_every_failure_has_a_fix() {
    let checks = doctor::run_checks(&CONFIG);
    assert!(checks.len() >= 20, "{checks:#?}");
    let mut names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), checks.len(), "names are unique");
    for check in &checks {
        assert!(!check.detail.is_empty(), "{check:?}");
        if check.verdict == Verdict::Fail {
            assert!(check.fix.is_some(), "a FAIL says how to fix it: {check}");
        }
        assert!(!check.to_string().contains('\n'), "one line: {check}");
    }
    let expected = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        3
    } else {
        0
    };
    assert_eq!(doctor::exit_code(&checks), expected);
}

#[test]
fn this_hosts_ring_probe_agrees_with_the_server() {
    let facts = Facts::gather();
    // The ring's features are the subject: io_uring strictly, whatever PERCORE_DRIVER says.
    let server = percore::Server::builder()
        .shards(1)
        .driver(percore::DriverChoice::IoUring)
        .serve("127.0.0.1:0".parse().unwrap(), |_stream| async {});
    match (&facts.ring, server) {
        (RingFacts::Works(probe), Ok(server)) => {
            let features = &server.report().features;
            assert_eq!(probe.single_issuer, features.single_issuer);
            assert_eq!(probe.defer_taskrun, features.defer_taskrun);
            server.stop();
            server.join().unwrap();
        }
        (RingFacts::SetupFailed { message, .. }, Err(e)) => {
            eprintln!("io_uring unavailable here; both say so: {e}");
            assert_eq!(message, &e.to_string());
        }
        (ring, server) => panic!(
            "doctor and server disagree: {ring:?} vs {:?}",
            server.map(|_| ())
        ),
    }
}

#[test]
fn an_invented_host_is_judged_without_touching_this_one() {
    let mut facts = Facts::gather();
    facts.io_uring_disabled = Some(2);
    facts.kernel_release = Some("5.4.0".into());
    let checks = doctor::judge(&facts, &CONFIG);
    let by_name = |name: &str| -> &Check { checks.iter().find(|c| c.name == name).unwrap() };
    assert_eq!(by_name("kernel.io_uring_disabled").verdict, Verdict::Fail);
    assert_eq!(by_name("kernel.version").verdict, Verdict::Fail);
    assert_eq!(doctor::exit_code(&checks), 3);
}

#[test]
fn json_parses_and_has_the_documented_keys() {
    let checks = doctor::run_checks(&CONFIG);
    let json = doctor::to_json(&CONFIG, &checks);
    let script = "import json, sys\nd = json.load(sys.stdin)\nprint(sorted(d))\nprint(d['shards'], d['expected_connections'], len(d['checks']), sum(d['summary'].values()))\nprint(sorted(d['checks'][0]))";
    let Some(out) = python(script, json.as_bytes()) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "['checks', 'exit_code', 'expected_connections', 'percore', 'shards', 'summary']"
    );
    let n = checks.len();
    assert_eq!(lines[1], format!("1 100 {n} {n}"));
    assert_eq!(lines[2], "['detail', 'fix', 'name', 'verdict']");
}

#[test]
fn the_docker_profile_is_json_and_allows_io_uring_and_what_percore_calls() {
    let profile = std::fs::read(format!("{}/docker-seccomp.json", setup_dir())).unwrap();
    let script = "import json, sys\nd = json.load(sys.stdin)\nprint(d['defaultAction'])\nfor s in d['syscalls']:\n    if s['action'] == 'SCMP_ACT_ALLOW' and 'args' not in s:\n        print('\\n'.join(s['names']))";
    let Some(out) = python(script, &profile) else {
        return;
    };
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("SCMP_ACT_ERRNO"),
        "an allowlist: unknown syscalls fail"
    );
    let allowed: Vec<&str> = lines.collect();
    // The io_uring calls Docker's default denies, and what a percore server makes (strace of
    // `percore echo` and `percore doctor`).
    for name in [
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "sched_setaffinity",
        "sched_getaffinity",
        "eventfd2",
        "futex",
        "mmap",
        "prlimit64",
        "rt_sigtimedwait",
        "socket",
        "bind",
        "listen",
        "setsockopt",
        "getsockname",
        "statx",
        "rseq",
        "getrandom",
    ] {
        assert!(allowed.contains(&name), "{name} is not allowed");
    }
    for denied in ["mount", "kexec_load", "bpf", "ptrace", "unshare", "setns"] {
        assert!(!allowed.contains(&denied), "{denied} should stay denied");
    }
}

#[test]
fn tune_dry_run_explains_and_changes_nothing() {
    let before = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default();
    let output = Command::new("bash")
        .arg(format!("{}/tune.sh", setup_dir()))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("dry run"), "{out}");
    let somaxconn = out
        .lines()
        .find(|l| l.starts_with("net.core.somaxconn"))
        .unwrap_or_else(|| panic!("no somaxconn line:\n{out}"));
    assert!(somaxconn.contains("backlog"), "says why: {somaxconn}");
    assert!(out.contains("RLIMIT_NOFILE"), "{out}");
    let after = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default();
    assert_eq!(before, after, "a dry run changes nothing");
}
