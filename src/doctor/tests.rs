//! The judging half on invented hosts: each test breaks one fact of a healthy host and checks
//! the verdict and fix of the line that should notice.

use super::*;

fn healthy() -> Facts {
    let opcodes = crate::driver::uring::probe::OPCODES
        .iter()
        .map(|op| OpcodePresence {
            name: op.name,
            since: op.since,
            required: op.required,
            present: true,
        })
        .collect();
    Facts {
        kernel_release: Some("6.8.0-45-generic".into()),
        io_uring_disabled: Some(0),
        io_uring_group: Some(-1),
        groups: vec![1000],
        cap_sys_admin: false,
        in_container: false,
        seccomp_mode: Some(0),
        ring: RingFacts::Works(RingProbe {
            single_issuer: true,
            defer_taskrun: true,
            opcodes,
            buf_ring: Ok(()),
            build_error: None,
        }),
        memlock: Some(Rlimit {
            soft: 8 << 20,
            hard: 8 << 20,
        }),
        nofile: Some(Rlimit {
            soft: 1024,
            hard: 1 << 20,
        }),
        somaxconn: Some(4096),
        tcp_max_syn_backlog: Some(4096),
        ip_local_port_range: Some((32768, 60999)),
        nr_open: Some(1 << 20),
        online_cpus: 4,
        allowed_cpus: vec![0, 1, 2, 3],
        isolated_cpus: vec![],
        siblings: (0..4).map(|c| (c, vec![c])).collect(),
    }
}

/// The io_uring lines judged strictly (`--driver io_uring`): what a run that must have
/// io_uring meets. The driver tests at the end judge `auto` and `epoll`.
const CONFIG: DoctorConfig = DoctorConfig {
    shards: 2,
    expected_connections: 1000,
    driver: DriverChoice::IoUring,
};

fn check(facts: &Facts, name: &str) -> Check {
    judge(facts, &CONFIG)
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check named {name}"))
}

#[test]
fn a_healthy_host_is_all_ok_and_exits_0() {
    let checks = judge(&healthy(), &CONFIG);
    let not_ok: Vec<_> = checks.iter().filter(|c| c.verdict != Verdict::Ok).collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(exit_code(&checks), 0);
    let setup = check(&healthy(), "io_uring.setup");
    assert_eq!(
        setup.to_string(),
        "OK   io_uring.setup                io_uring_setup works (SINGLE_ISSUER, DEFER_TASKRUN)"
    );
}

#[test]
fn names_are_unique_and_cover_the_issue() {
    let checks = judge(&healthy(), &CONFIG);
    let mut names: Vec<_> = checks.iter().map(|c| c.name).collect();
    for wanted in [
        "kernel.version",
        "kernel.io_uring_disabled",
        "kernel.io_uring_group",
        "host.container",
        "io_uring.setup",
        "io_uring.multishot_accept",
        "io_uring.multishot_recv",
        "io_uring.buf_ring",
        "io_uring.msg_ring",
        "io_uring.send_zc",
        "io_uring.single_issuer",
        "io_uring.defer_taskrun",
        "rlimit.memlock",
        "rlimit.nofile",
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.ip_local_port_range",
        "fs.nr_open",
        "cpu.count",
        "cpu.isolated",
        "cpu.smt",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing");
    }
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate check names");
}

#[test]
fn an_old_kernel_fails_with_an_upgrade() {
    let facts = Facts {
        kernel_release: Some("5.15.0-105-generic".into()),
        ..healthy()
    };
    let c = check(&facts, "kernel.version");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.fix.unwrap().contains("upgrade to Linux ≥ 6.1"));
    // Multishot receive arrived in 6.0: the opcode alone does not prove it.
    assert_eq!(
        check(&facts, "io_uring.multishot_recv").verdict,
        Verdict::Fail
    );
    assert_eq!(exit_code(&judge(&facts, &CONFIG)), 3);
    let six_oh = Facts {
        kernel_release: Some("6.0.19".into()),
        ..healthy()
    };
    assert_eq!(check(&six_oh, "kernel.version").verdict, Verdict::Warn);
}

#[test]
fn io_uring_disabled_2_fails_with_the_sysctl_fix() {
    let facts = Facts {
        io_uring_disabled: Some(2),
        ..healthy()
    };
    let c = check(&facts, "kernel.io_uring_disabled");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.fix
            .unwrap()
            .contains("sysctl -w kernel.io_uring_disabled=0")
    );
}

#[test]
fn io_uring_disabled_1_depends_on_the_group() {
    let member = Facts {
        io_uring_disabled: Some(1),
        io_uring_group: Some(1000),
        ..healthy()
    };
    assert_eq!(
        check(&member, "kernel.io_uring_disabled").verdict,
        Verdict::Warn
    );
    assert_eq!(check(&member, "kernel.io_uring_group").verdict, Verdict::Ok);
    let outsider = Facts {
        io_uring_group: Some(2000),
        ..member.clone()
    };
    assert_eq!(
        check(&outsider, "kernel.io_uring_disabled").verdict,
        Verdict::Fail
    );
    let group = check(&outsider, "kernel.io_uring_group");
    assert_eq!(group.verdict, Verdict::Fail);
    assert!(group.fix.unwrap().contains("group 2000"));
    let admin = Facts {
        cap_sys_admin: true,
        ..outsider
    };
    assert_eq!(check(&admin, "kernel.io_uring_group").verdict, Verdict::Ok);
}

#[test]
fn a_failed_setup_carries_the_start_up_message_split_into_cause_and_fix() {
    let facts = Facts {
        ring: RingFacts::SetupFailed {
            errno: libc::EPERM,
            message: "io_uring is blocked (io_uring_setup: EPERM), most likely by a seccomp profile; run with the profile".into(),
        },
        ..healthy()
    };
    let c = check(&facts, "io_uring.setup");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.detail.starts_with("io_uring is blocked"));
    assert_eq!(c.fix.as_deref(), Some("run with the profile"));
    // Features cannot be probed without a ring: they fail too, pointing at the setup line.
    let checks = judge(&facts, &CONFIG);
    let accept = checks
        .iter()
        .find(|c| c.name == "io_uring.msg_ring")
        .unwrap();
    assert_eq!(accept.verdict, Verdict::Fail);
    assert_eq!(exit_code(&checks), 3);
}

#[test]
fn the_setup_message_is_the_servers_own() {
    // The doctor takes the server's wording for a failed io_uring_setup from the same
    // function; check that the split reassembles into exactly that line.
    for errno in [libc::EPERM, libc::ENOSYS, libc::ENOMEM, libc::EMFILE] {
        let server =
            crate::driver::uring::setup::unavailable(&std::io::Error::from_raw_os_error(errno));
        let facts = Facts {
            ring: RingFacts::SetupFailed {
                errno,
                message: server.to_string(),
            },
            ..healthy()
        };
        let c = check(&facts, "io_uring.setup");
        let rejoined = match &c.fix {
            Some(fix) => format!("{}; {fix}", c.detail),
            None => c.detail.clone(),
        };
        assert_eq!(rejoined, server.to_string());
        assert!(c.fix.is_some(), "errno {errno} has a fix: {c}");
    }
}

#[test]
fn missing_optional_features_warn_and_missing_required_ones_fail() {
    let mut facts = healthy();
    let RingFacts::Works(probe) = &mut facts.ring else {
        unreachable!()
    };
    probe.defer_taskrun = false;
    for op in &mut probe.opcodes {
        op.present &= op.name != "IORING_OP_MSG_RING" && op.name != "IORING_OP_CONNECT";
    }
    probe.buf_ring = Err(libc::EINVAL);
    assert_eq!(
        check(&facts, "io_uring.defer_taskrun").verdict,
        Verdict::Warn
    );
    let msg_ring = check(&facts, "io_uring.msg_ring");
    assert_eq!(msg_ring.verdict, Verdict::Warn);
    assert!(msg_ring.detail.contains("eventfd"));
    let opcodes = check(&facts, "io_uring.opcodes");
    assert_eq!(opcodes.verdict, Verdict::Fail);
    assert!(opcodes.detail.contains("IORING_OP_CONNECT"));
    assert_eq!(check(&facts, "io_uring.buf_ring").verdict, Verdict::Fail);
}

#[test]
fn low_memlock_only_matters_before_5_12() {
    let low = Facts {
        memlock: Some(Rlimit { soft: 0, hard: 0 }),
        ..healthy()
    };
    let c = check(&low, "rlimit.memlock");
    assert_eq!(c.verdict, Verdict::Ok);
    assert!(c.detail.contains("memory cgroup"), "{c}");
    let old = Facts {
        kernel_release: Some("5.10.0".into()),
        ..low
    };
    let c = check(&old, "rlimit.memlock");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.fix.unwrap().contains("ulimit -l"));
}

#[test]
fn nofile_fails_below_the_start_minimum_and_warns_below_the_expected_load() {
    let with = |hard| Facts {
        nofile: Some(Rlimit { soft: hard, hard }),
        ..healthy()
    };
    // 2 shards: 16 + 2 × 16 = 48 before any connection; 1048 with 1000 connections.
    assert_eq!(check(&with(40), "rlimit.nofile").verdict, Verdict::Fail);
    let warn = check(&with(500), "rlimit.nofile");
    assert_eq!(warn.verdict, Verdict::Warn);
    assert!(warn.fix.unwrap().contains("ulimit -Hn 1048"));
    assert_eq!(check(&with(1048), "rlimit.nofile").verdict, Verdict::Ok);
}

#[test]
fn small_network_sysctls_warn_with_the_sysctl_to_run() {
    let facts = Facts {
        somaxconn: Some(128),
        ip_local_port_range: Some((60000, 60999)),
        nr_open: Some(1024),
        ..healthy()
    };
    let c = check(&facts, "net.core.somaxconn");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.fix.unwrap().contains("sysctl -w net.core.somaxconn=4096"));
    assert_eq!(
        check(&facts, "net.ipv4.ip_local_port_range").verdict,
        Verdict::Warn
    );
    assert_eq!(check(&facts, "fs.nr_open").verdict, Verdict::Warn);
    assert_eq!(
        exit_code(&judge(&facts, &CONFIG)),
        0,
        "warnings alone exit 0"
    );
}

#[test]
fn smt_siblings_under_two_shards_warn_with_one_cpu_per_core() {
    let facts = Facts {
        // CPUs 0/2 and 1/3 are hyperthreads of two cores; placement takes 0 and 1 first.
        siblings: vec![
            (0, vec![0, 1]),
            (1, vec![0, 1]),
            (2, vec![2, 3]),
            (3, vec![2, 3]),
        ],
        ..healthy()
    };
    let c = check(&facts, "cpu.smt");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(
        c.fix.as_deref().unwrap_or("").contains("--cores 0,2"),
        "{c:?}"
    );
    let many = Facts {
        allowed_cpus: vec![0],
        ..healthy()
    };
    assert_eq!(check(&many, "cpu.count").verdict, Verdict::Warn);
}

#[test]
fn startup_warnings_are_doctor_lines() {
    // With the host's real limit this is usually empty; the lines, when any, are doctor lines.
    for line in startup_warnings(1) {
        assert!(line.contains("rlimit.nofile"), "{line}");
    }
}

fn with_driver(driver: DriverChoice) -> DoctorConfig {
    DoctorConfig { driver, ..CONFIG }
}

fn seccomp_denied() -> Facts {
    let errno = libc::EPERM;
    Facts {
        seccomp_mode: Some(2),
        ring: RingFacts::SetupFailed {
            errno,
            message: crate::driver::uring::setup::unavailable(&std::io::Error::from_raw_os_error(
                errno,
            ))
            .to_string(),
        },
        ..healthy()
    }
}

fn driver_line(facts: &Facts, driver: DriverChoice) -> Check {
    judge(facts, &with_driver(driver))
        .into_iter()
        .find(|c| c.name == "driver")
        .expect("a driver line")
}

#[test]
fn auto_on_a_healthy_host_plans_io_uring() {
    let facts = healthy();
    assert_eq!(
        planned_driver(&facts, DriverChoice::Auto),
        Some(DriverKind::IoUring)
    );
    let line = driver_line(&facts, DriverChoice::Auto);
    assert_eq!(line.verdict, Verdict::Ok);
    assert!(line.detail.starts_with("io_uring (--driver auto"), "{line}");
    let epoll = driver_line(&facts, DriverChoice::Epoll);
    assert_eq!(epoll.verdict, Verdict::Ok);
    assert!(epoll.detail.starts_with("epoll (--driver epoll"), "{epoll}");
    assert_eq!(
        planned_driver(&facts, DriverChoice::Epoll),
        Some(DriverKind::Epoll)
    );
}

#[test]
fn auto_where_io_uring_is_denied_plans_epoll_and_exits_0_as_serve_would_run() {
    let facts = seccomp_denied();
    assert_eq!(
        planned_driver(&facts, DriverChoice::Auto),
        Some(DriverKind::Epoll)
    );
    let checks = judge(&facts, &with_driver(DriverChoice::Auto));
    let line = checks.iter().find(|c| c.name == "driver").unwrap();
    assert_eq!(line.verdict, Verdict::Warn);
    assert!(
        line.detail
            .starts_with("epoll (--driver auto falls back: io_uring is blocked"),
        "{line}"
    );
    assert!(line.detail.contains("EPERM"), "{line}");
    let fix = line.fix.as_deref().unwrap_or("");
    assert!(
        fix.starts_with("to run on io_uring: ") && fix.contains("docker-seccomp.json"),
        "{line}"
    );
    // The io_uring lines still say what is wrong, as warnings: epoll does not need them.
    let setup = checks.iter().find(|c| c.name == "io_uring.setup").unwrap();
    assert_eq!(setup.verdict, Verdict::Warn, "{setup}");
    assert!(setup.detail.contains("this run gets epoll"), "{setup}");
    assert!(
        setup
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("docker-seccomp.json")
    );
    assert!(
        checks.iter().all(|c| c.verdict != Verdict::Fail),
        "{checks:#?}"
    );
    assert_eq!(exit_code(&checks), 0);
    // --driver epoll: the same, with an OK driver line.
    let checks = judge(&facts, &with_driver(DriverChoice::Epoll));
    assert_eq!(exit_code(&checks), 0);
    let line = checks.iter().find(|c| c.name == "driver").unwrap();
    assert_eq!(line.verdict, Verdict::Ok, "{line}");
    assert!(
        line.detail.contains("io_uring would not start here"),
        "{line}"
    );
}

#[test]
fn strict_io_uring_where_it_is_denied_fails_with_exit_3_as_serve_would() {
    let facts = seccomp_denied();
    assert_eq!(planned_driver(&facts, DriverChoice::IoUring), None);
    let checks = judge(&facts, &CONFIG);
    let line = checks.iter().find(|c| c.name == "driver").unwrap();
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(
        line.detail
            .starts_with("none: --driver io_uring cannot start here"),
        "{line}"
    );
    assert!(
        line.fix
            .as_deref()
            .unwrap_or("")
            .contains("docker-seccomp.json")
    );
    assert_eq!(check(&facts, "io_uring.setup").verdict, Verdict::Fail);
    assert_eq!(exit_code(&checks), 3);
}

#[test]
fn a_buffer_ring_or_build_failure_also_means_epoll_for_auto() {
    // The server's ring setup fails after a plain ring worked: `auto` falls back.
    let mut facts = healthy();
    let RingFacts::Works(probe) = &mut facts.ring else {
        unreachable!()
    };
    probe.buf_ring = Err(libc::EINVAL);
    assert_eq!(
        planned_driver(&facts, DriverChoice::Auto),
        Some(DriverKind::Epoll)
    );
    let checks = judge(&facts, &with_driver(DriverChoice::Auto));
    assert_eq!(exit_code(&checks), 0, "{checks:#?}");
    assert_eq!(exit_code(&judge(&facts, &CONFIG)), 3);
    // An old kernel whose rings fail to build: the kernel line is a warning on epoll.
    let old = Facts {
        kernel_release: Some("5.4.0".into()),
        ring: RingFacts::Works(RingProbe {
            build_error: Some("io_uring lacks IORING_FEAT_EXT_ARG; upgrade the kernel".into()),
            ..match healthy().ring {
                RingFacts::Works(p) => p,
                RingFacts::SetupFailed { .. } => unreachable!(),
            }
        }),
        ..healthy()
    };
    let checks = judge(&old, &with_driver(DriverChoice::Auto));
    let kernel = checks.iter().find(|c| c.name == "kernel.version").unwrap();
    assert_eq!(kernel.verdict, Verdict::Warn, "{kernel}");
    assert_eq!(exit_code(&checks), 0);
}

#[test]
fn what_epoll_needs_still_fails_on_epoll() {
    // Open files are every driver's business: a limit too low to start fails on epoll too.
    let facts = Facts {
        nofile: Some(Rlimit { soft: 40, hard: 40 }),
        ..seccomp_denied()
    };
    let checks = judge(&facts, &with_driver(DriverChoice::Auto));
    assert_eq!(
        checks
            .iter()
            .find(|c| c.name == "rlimit.nofile")
            .unwrap()
            .verdict,
        Verdict::Fail
    );
    assert_eq!(exit_code(&checks), 3);
}
