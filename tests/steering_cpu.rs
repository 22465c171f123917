//! `cpu` steering: the reuseport cBPF program sends a connection to the shard pinned to the
//! CPU the client ran on, and where the kernel refuses the program the server still runs
//! (as `reuseport`) and says so in its startup report.

#[path = "support/seccomp.rs"]
mod seccomp;
#[path = "support/steer.rs"]
mod steer;

use std::{thread, time::Duration};

use percore::{Server, Steering};
use seccomp::refuse_reuseport_cbpf;
use steer::{Client, pin_to, serve};

#[test]
fn connections_go_to_the_shard_on_the_clients_cpu() {
    let (server, addr) = serve(Server::builder().shards(2).steering(Steering::Cpu));
    if server.steering() != Steering::Cpu {
        eprintln!(
            "skipped: the kernel refused the cBPF program: {:?}",
            server.report().fallbacks
        );
        server.stop_within(Duration::ZERO);
        server.join().unwrap();
        return;
    }
    let cpus = server.report().shard_cpus.clone();
    if cpus.iter().any(|(_, c)| c.is_none()) || cpus[0].1 == cpus[1].1 {
        eprintln!("skipped: needs two shards pinned to two CPUs: {cpus:?}");
        server.stop_within(Duration::ZERO);
        server.join().unwrap();
        return;
    }
    for (shard, cpu) in cpus {
        let cpu = cpu.unwrap();
        let seen = thread::spawn(move || {
            assert!(pin_to(cpu), "could not pin the client to CPU {cpu}");
            (0..20)
                .map(|_| Client::connect(addr).unwrap().shard())
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        assert!(
            seen.iter().all(|s| *s == shard),
            "a client on CPU {cpu} reached shards {seen:?}, not only shard {shard}"
        );
    }
    server.stop_within(Duration::from_millis(200));
    server.join().unwrap();
}

#[test]
fn a_refused_program_falls_back_to_reuseport_with_a_report_line() {
    let outcome = thread::spawn(|| {
        refuse_reuseport_cbpf().expect("install the seccomp filter");
        let (server, addr) = serve(Server::builder().shards(2).steering(Steering::Cpu));
        let mode = server.steering();
        let fallbacks = server.report().fallbacks.clone();
        let report = server.report().to_string();
        let shard = Client::connect(addr).unwrap().shard();
        server.stop_within(Duration::from_millis(200));
        server.join().unwrap();
        (mode, fallbacks, report, shard)
    })
    .join()
    .unwrap();
    let (mode, fallbacks, report, shard) = outcome;
    assert_eq!(mode, Steering::ReusePort);
    assert!(
        fallbacks
            .iter()
            .any(|l| l.contains("cpu steering") && l.contains("SO_ATTACH_REUSEPORT_CBPF")),
        "{fallbacks:?}"
    );
    assert!(report.contains("steering: reuseport"), "{report}");
    assert!(shard < 2, "the fallback server serves");
}
