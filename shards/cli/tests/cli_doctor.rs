//! `percore doctor` under conditions the test creates: io_uring denied by a seccomp filter,
//! tiny open-files and locked-memory limits; its `--json` shape; its exit status; and the
//! `linux-setup/doctor.sh` wrapper.

#[path = "../../../tests/support/python.rs"]
mod python;
#[path = "../../../tests/support/seccomp.rs"]
mod seccomp;

use std::{
    os::unix::process::CommandExt,
    process::{Command, Output},
};

fn percore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_percore"))
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The human line of one check, e.g. `FAIL io_uring.setup  ...`.
fn line_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

fn verdict_of<'a>(out: &'a str, name: &str) -> &'a str {
    line_of(out, name).split_whitespace().next().unwrap_or("")
}

/// `percore doctor` with io_uring denied by a seccomp filter; `driver` is its `--driver`.
fn doctor_with_io_uring_denied(errno: i32, driver: &str) -> Output {
    let mut cmd = percore();
    cmd.args([
        "doctor",
        "--shards",
        "1",
        "--connections",
        "10",
        "--driver",
        driver,
    ]);
    // The flag decides, whatever the test pass's PERCORE_DRIVER says.
    cmd.env_remove("PERCORE_DRIVER");
    // SAFETY: the closure runs between fork and exec; `deny_io_uring` only builds a filter
    // on the stack and makes two prctl calls, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || seccomp::deny_io_uring(errno));
    }
    cmd.output().expect("percore runs")
}

fn doctor_under_prlimit(limit: &str, args: &[&str]) -> Output {
    Command::new("prlimit")
        .arg(limit)
        .arg(env!("CARGO_BIN_EXE_percore"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("prlimit (util-linux) runs")
}

/// Whether this host lets a plain process use io_uring at all; tests that need a healthy host
/// skip with the reason otherwise.
fn host_io_uring_blocked() -> Option<String> {
    let disabled =
        std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
    if disabled.trim() == "2" {
        return Some("kernel.io_uring_disabled=2 on this host".into());
    }
    let out = stdout_of(
        &percore()
            .args(["doctor", "--shards", "1"])
            .output()
            .unwrap(),
    );
    (verdict_of(&out, "io_uring.setup") != "OK")
        .then(|| line_of(&out, "io_uring.setup").to_string())
}

#[test]
fn io_uring_denied_by_seccomp_fails_naming_seccomp_with_exit_3() {
    let output = doctor_with_io_uring_denied(libc::EPERM, "io_uring");
    let out = stdout_of(&output);
    assert_eq!(output.status.code(), Some(3), "{out}");
    let setup = line_of(&out, "io_uring.setup");
    assert!(setup.starts_with("FAIL"), "{setup}");
    assert!(
        setup.contains("EPERM") && setup.contains("seccomp"),
        "{setup}"
    );
    assert!(
        setup.contains("— fix: ") && setup.contains("docker-seccomp.json"),
        "{setup}"
    );
    assert!(
        line_of(&out, "host.container").contains("seccomp: filter active"),
        "{out}"
    );
    assert_eq!(verdict_of(&out, "io_uring.multishot_recv"), "FAIL", "{out}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

#[test]
fn the_seccomp_line_is_the_one_the_server_prints_at_start() {
    let doctor = stdout_of(&doctor_with_io_uring_denied(libc::EPERM, "io_uring"));
    let setup = line_of(&doctor, "io_uring.setup");
    let (cause, fix) = setup.split_once(" — fix: ").expect("a fix");
    let cause = cause
        .trim_start_matches("FAIL")
        .trim()
        .trim_start_matches("io_uring.setup")
        .trim();

    // `auto` would start on epoll: the strict choice stops with the line.
    let mut cmd = percore();
    cmd.args([
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--driver",
        "io_uring",
    ]);
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(|| seccomp::deny_io_uring(libc::EPERM));
    }
    let server = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&server.stderr);
    assert_eq!(err.trim(), format!("percore: {cause}; {fix}"));
}

#[test]
fn the_doctor_says_a_run_gets_epoll_where_io_uring_is_denied_and_exits_0_as_serve_runs() {
    for errno in [libc::EPERM, libc::ENOSYS] {
        let output = doctor_with_io_uring_denied(errno, "auto");
        let denied = stdout_of(&output);
        // `serve --driver auto` runs here (on epoll): the doctor's status says the same.
        assert_eq!(output.status.code(), Some(0), "{denied}");
        assert!(!denied.lines().any(|l| l.starts_with("FAIL")), "{denied}");
        let driver = line_of(&denied, "driver");
        assert!(
            driver.starts_with("WARN") && driver.contains("epoll (--driver auto falls back"),
            "{driver}"
        );
        assert!(driver.contains("— fix: to run on io_uring: "), "{driver}");
        let setup = line_of(&denied, "io_uring.setup");
        assert!(
            setup.starts_with("WARN") && setup.contains("this run gets epoll"),
            "{setup}"
        );
        assert!(
            denied.contains("percore can run here on the epoll driver"),
            "{denied}"
        );
        if errno == libc::EPERM {
            assert!(driver.contains("docker-seccomp.json"), "{driver}");
        }
    }
    // PERCORE_DRIVER is the default of --driver, as for serve.
    let mut cmd = percore();
    cmd.args(["doctor", "--shards", "1"])
        .env("PERCORE_DRIVER", "io_uring");
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(|| seccomp::deny_io_uring(libc::EPERM));
    }
    let output = cmd.output().unwrap();
    let out = stdout_of(&output);
    assert_eq!(output.status.code(), Some(3), "{out}");
    assert!(line_of(&out, "driver").starts_with("FAIL"), "{out}");
    let bad = percore()
        .args(["doctor"])
        .env("PERCORE_DRIVER", "kqueue")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("PERCORE_DRIVER: unknown driver `kqueue`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let here = stdout_of(
        &percore()
            .args(["doctor", "--driver", "auto"])
            .output()
            .unwrap(),
    );
    if line_of(&here, "io_uring.setup").starts_with("OK") {
        assert!(line_of(&here, "driver").contains("OK   driver"), "{here}");
        assert!(
            line_of(&here, "driver").contains("io_uring (--driver auto"),
            "{here}"
        );
    }
    let epoll = stdout_of(
        &percore()
            .args(["doctor", "--driver", "epoll"])
            .output()
            .unwrap(),
    );
    assert!(
        line_of(&epoll, "driver").contains("epoll (--driver epoll"),
        "{epoll}"
    );
}

#[test]
fn io_uring_missing_enosys_names_the_kernel() {
    let output = doctor_with_io_uring_denied(libc::ENOSYS, "io_uring");
    let out = stdout_of(&output);
    assert_eq!(output.status.code(), Some(3), "{out}");
    let setup = line_of(&out, "io_uring.setup");
    assert!(
        setup.starts_with("FAIL") && setup.contains("ENOSYS"),
        "{setup}"
    );
    assert!(setup.contains("CONFIG_IO_URING"), "{setup}");
}

#[test]
fn a_tiny_nofile_limit_fails_or_warns_by_what_the_shards_need() {
    // 2 shards need 48 descriptors before the first connection: 40 cannot start them.
    let output = doctor_under_prlimit("--nofile=40:40", &["--shards", "2", "--connections", "10"]);
    let out = stdout_of(&output);
    let nofile = line_of(&out, "rlimit.nofile");
    assert!(
        nofile.starts_with("FAIL") && nofile.contains("hard limit 40"),
        "{nofile}"
    );
    assert!(nofile.contains("ulimit -Hn"), "names the fix: {nofile}");
    assert_eq!(output.status.code(), Some(3));
    // One shard starts with 40, but has room for far fewer than 1000 connections.
    let output = doctor_under_prlimit(
        "--nofile=40:40",
        &["--shards", "1", "--connections", "1000"],
    );
    let out = stdout_of(&output);
    let nofile = line_of(&out, "rlimit.nofile");
    assert!(
        nofile.starts_with("WARN") && nofile.contains("fewer than the 1000"),
        "{nofile}"
    );
}

#[test]
fn a_zero_memlock_limit_is_explained() {
    let output = doctor_under_prlimit("--memlock=0:0", &["--shards", "1"]);
    let out = stdout_of(&output);
    let memlock = line_of(&out, "rlimit.memlock");
    assert!(memlock.contains("soft 0 bytes"), "{memlock}");
    // On Linux ≥ 5.12 rings are charged to the memory cgroup: no failure, an explanation.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version >= (5, 12) {
        assert!(!memlock.starts_with("FAIL"), "{memlock}");
        assert!(memlock.contains("memory cgroup"), "{memlock}");
    } else {
        assert!(
            memlock.starts_with("FAIL") && memlock.contains("ulimit -l"),
            "{memlock}"
        );
    }
}

#[test]
fn a_healthy_host_exits_0() {
    if let Some(reason) = host_io_uring_blocked() {
        eprintln!("skipped: io_uring is not usable on this host: {reason}");
        return;
    }
    let output = percore()
        .args(["doctor", "--shards", "1", "--connections", "10"])
        .output()
        .unwrap();
    let out = stdout_of(&output);
    assert!(!out.lines().any(|l| l.starts_with("FAIL")), "{out}");
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("percore can run here"), "{out}");
}

/// Parses `json` with Python's json module and prints its keys and checks, one per line.
fn python_summary(json: &[u8]) -> Option<String> {
    let script = "import json, sys\nd = json.load(sys.stdin)\nprint(' '.join(sorted(d)))\nprint(d['exit_code'], sorted(d['summary'].items()))\nfor c in d['checks']:\n    print(c['name'], c['verdict'], c['fix'] is None, sorted(c))\n";
    python::python(script, json)
}

#[test]
fn json_has_the_documented_shape_and_matches_the_lines() {
    let human = stdout_of(
        &percore()
            .args(["doctor", "--shards", "1"])
            .output()
            .unwrap(),
    );
    let output = percore()
        .args(["doctor", "--shards", "1", "--json"])
        .output()
        .unwrap();
    let Some(summary) = python_summary(&output.stdout) else {
        return;
    };
    let mut lines = summary.lines();
    assert_eq!(
        lines.next(),
        Some("checks exit_code expected_connections percore shards summary")
    );
    let status = output.status.code().unwrap();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{status} [('fail'")),
        "{summary}"
    );
    let checks: Vec<&str> = lines.collect();
    let human_checks: Vec<&str> = human
        .lines()
        .filter(|l| !l.starts_with("percore "))
        .collect();
    assert_eq!(
        checks.len(),
        human_checks.len(),
        "one JSON check per line:\n{summary}\n{human}"
    );
    for (json, line) in checks.iter().zip(&human_checks) {
        let mut json = json.split_whitespace();
        let (name, verdict) = (json.next().unwrap(), json.next().unwrap());
        let mut line = line.split_whitespace();
        assert_eq!(Some(verdict.to_uppercase().as_str()), line.next());
        assert_eq!(Some(name), line.next());
    }
    assert!(
        checks
            .iter()
            .all(|c| c.ends_with("['detail', 'fix', 'name', 'verdict']")),
        "{summary}"
    );
}

#[test]
fn seccomp_denial_shows_in_json_too() {
    let mut cmd = percore();
    cmd.args(["doctor", "--json", "--driver", "io_uring"]);
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(|| seccomp::deny_io_uring(libc::EPERM));
    }
    let output = cmd.output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let Some(summary) = python_summary(&output.stdout) else {
        return;
    };
    assert!(summary.contains("\nio_uring.setup fail False"), "{summary}");
    assert!(
        summary.lines().nth(1).unwrap().starts_with("3 "),
        "{summary}"
    );
}

#[test]
fn the_shell_wrapper_runs_the_doctor() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../linux-setup/doctor.sh");
    let output = Command::new("bash")
        .args([script, "--shards", "1", "--connections", "10"])
        .env("PERCORE", env!("CARGO_BIN_EXE_percore"))
        .output()
        .unwrap();
    let direct = percore()
        .args(["doctor", "--shards", "1", "--connections", "10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), direct.status.code());
    let names = |o: &Output| -> Vec<String> {
        stdout_of(o)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
            .collect()
    };
    assert_eq!(names(&output), names(&direct));
    assert!(stdout_of(&output).contains("io_uring.setup"));
}

#[test]
fn zero_shards_is_a_usage_error() {
    let output = percore()
        .args(["doctor", "--shards", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
