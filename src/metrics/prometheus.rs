//! The Prometheus text exposition format (version 0.0.4) of every shard's counters, each
//! sample labelled with its shard.

use std::fmt::Write;

use super::{Histogram, ShardStats};

/// One metric family: name, type, help, and how to read a shard's value.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&ShardStats) -> u64,
    /// Counts io_uring's own machinery: only shards on the io_uring driver have a sample
    /// (an epoll shard has no ring to count; its waits are `percore_driver_waits_total`).
    io_uring_only: bool,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "percore_loop_iterations_total",
        kind: "counter",
        help: "Loop iterations (one io_uring_enter or epoll_wait each).",
        value: |s| s.loop_.iterations,
        io_uring_only: false,
    },
    Family {
        name: "percore_tasks_polled_total",
        kind: "counter",
        help: "Task polls.",
        value: |s| s.loop_.tasks_polled,
        io_uring_only: false,
    },
    Family {
        name: "percore_tasks",
        kind: "gauge",
        help: "Tasks alive.",
        value: |s| s.tasks as u64,
        io_uring_only: false,
    },
    Family {
        name: "percore_driver_waits_total",
        kind: "counter",
        help: "Calls of the loop into its driver's kernel wait: io_uring_enter on io_uring, epoll_wait on epoll (see percore_driver_info).",
        value: |s| s.ring.enters,
        io_uring_only: false,
    },
    Family {
        name: "percore_io_uring_enter_total",
        kind: "counter",
        help: "io_uring_enter calls of the loop (io_uring shards only).",
        value: |s| s.ring.enters,
        io_uring_only: true,
    },
    Family {
        name: "percore_sqes_submitted_total",
        kind: "counter",
        help: "Submission queue entries handed to the kernel.",
        value: |s| s.ring.sqes_submitted,
        io_uring_only: true,
    },
    Family {
        name: "percore_cqes_total",
        kind: "counter",
        help: "Completion queue entries reaped.",
        value: |s| s.ring.cqes,
        io_uring_only: true,
    },
    Family {
        name: "percore_cq_overflows_total",
        kind: "counter",
        help: "Times the completion queue overflowed into the kernel's backlog.",
        value: |s| s.ring.cq_overflows,
        io_uring_only: true,
    },
    Family {
        name: "percore_sq_full_total",
        kind: "counter",
        help: "Times the submission queue was full and submitted early.",
        value: |s| s.ring.sq_full,
        io_uring_only: true,
    },
    Family {
        name: "percore_msg_ring_wakes_total",
        kind: "counter",
        help: "Wake-ups sent to other shards through MSG_RING.",
        value: |s| s.ring.msg_ring_wakes,
        io_uring_only: true,
    },
    Family {
        name: "percore_msg_ring_failures_total",
        kind: "counter",
        help: "MSG_RING wake-ups that fell back to an eventfd.",
        value: |s| s.ring.msg_ring_failures,
        io_uring_only: true,
    },
    Family {
        name: "percore_ops_in_flight",
        kind: "gauge",
        help: "Generic driver operations in flight (sends, connects, timeouts, wake-ups).",
        value: |s| s.ops_in_flight as u64,
        io_uring_only: false,
    },
    Family {
        name: "percore_recv_enobufs_total",
        kind: "counter",
        help: "Multishot receives ended by an empty buffer ring (ENOBUFS).",
        value: |s| s.net.enobufs,
        io_uring_only: false,
    },
    Family {
        name: "percore_multishot_rearms_total",
        kind: "counter",
        help: "Multishot operations re-armed after ending without F_MORE.",
        value: |s| s.net.rearms,
        io_uring_only: false,
    },
    Family {
        name: "percore_tls_handshakes_total",
        kind: "counter",
        help: "TLS handshakes completed.",
        value: |s| s.net.tls.handshakes,
        io_uring_only: false,
    },
    Family {
        name: "percore_tls_resumed_total",
        kind: "counter",
        help: "TLS handshakes that resumed a session (ticket or cache).",
        value: |s| s.net.tls.resumed,
        io_uring_only: false,
    },
    Family {
        name: "percore_tls_record_errors_total",
        kind: "counter",
        help: "TLS input refused after the handshake (the connection ended with an alert).",
        value: |s| s.net.tls.record_errors,
        io_uring_only: false,
    },
    Family {
        name: "percore_tls_ktls_total",
        kind: "counter",
        help: "TLS connections whose session keys went to the kernel (kTLS).",
        value: |s| s.net.tls.ktls,
        io_uring_only: false,
    },
    Family {
        name: "percore_tls_ktls_fallbacks_total",
        kind: "counter",
        help: "TLS connections kept on rustls although kTLS was wanted (cipher, kernel, partial record).",
        value: |s| s.net.tls.ktls_fallbacks,
        io_uring_only: false,
    },
    Family {
        name: "percore_recv_paused_total",
        kind: "counter",
        help: "Receives paused because a connection's unread input hit its cap.",
        value: |s| s.net.recv_paused,
        io_uring_only: false,
    },
    Family {
        name: "percore_recv_buffers_lent",
        kind: "gauge",
        help: "Provided receive buffers lent to connections.",
        value: |s| u64::from(s.recv_buffers_lent),
        io_uring_only: false,
    },
    Family {
        name: "percore_recv_buffers",
        kind: "gauge",
        help: "Provided receive buffers in all.",
        value: |s| u64::from(s.recv_buffers_total),
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_accepted_total",
        kind: "counter",
        help: "Connections accepted.",
        value: |s| s.net.accepted,
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_connected_total",
        kind: "counter",
        help: "Outbound connections made.",
        value: |s| s.net.connected,
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_open",
        kind: "gauge",
        help: "Connections open.",
        value: |s| s.net.open as u64,
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_capped",
        kind: "gauge",
        help: "Accepted connections counted against the connection caps (open or queued); 0 with no cap.",
        value: |s| s.net.capped as u64,
        io_uring_only: false,
    },
    Family {
        name: "percore_accept_paused_at_cap_total",
        kind: "counter",
        help: "Times a listener stopped accepting at a connection cap (clients then wait in the listen backlog).",
        value: |s| s.net.accept_paused_at_cap,
        io_uring_only: false,
    },
    Family {
        name: "percore_accept_fd_exhausted_total",
        kind: "counter",
        help: "Accepts that failed for lack of file descriptors.",
        value: |s| s.net.accept_fd_exhausted,
        io_uring_only: false,
    },
    Family {
        name: "percore_received_bytes_total",
        kind: "counter",
        help: "Bytes received.",
        value: |s| s.net.bytes_in,
        io_uring_only: false,
    },
    Family {
        name: "percore_sent_bytes_total",
        kind: "counter",
        help: "Bytes sent.",
        value: |s| s.net.bytes_out,
        io_uring_only: false,
    },
    Family {
        name: "percore_mesh_sent_total",
        kind: "counter",
        help: "Mesh messages sent by this shard.",
        value: |s| s.loop_.mesh_sent,
        io_uring_only: false,
    },
    Family {
        name: "percore_mesh_received_total",
        kind: "counter",
        help: "Mesh messages run by this shard.",
        value: |s| s.loop_.mesh_received,
        io_uring_only: false,
    },
    Family {
        name: "percore_idle_polls_total",
        kind: "counter",
        help: "Bounded polls for mesh work before sleeping, after mesh traffic.",
        value: |s| s.loop_.idle_polls,
        io_uring_only: false,
    },
    Family {
        name: "percore_idle_poll_hits_total",
        kind: "counter",
        help: "Idle polls that found work before their bound.",
        value: |s| s.loop_.idle_poll_hits,
        io_uring_only: false,
    },
    Family {
        name: "percore_mesh_inbox_depth",
        kind: "gauge",
        help: "Mesh messages waiting in the inbox.",
        value: |s| s.mesh_inbox as u64,
        io_uring_only: false,
    },
    Family {
        name: "percore_timers",
        kind: "gauge",
        help: "Timers armed.",
        value: |s| s.timers as u64,
        io_uring_only: false,
    },
    Family {
        name: "percore_panics_total",
        kind: "counter",
        help: "Task and mesh-handler panics contained.",
        value: |s| s.panics,
        io_uring_only: false,
    },
    Family {
        name: "percore_stalls_total",
        kind: "counter",
        help: "Loop iterations that ran past the stall threshold.",
        value: |s| s.stalls,
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_handed_out_total",
        kind: "counter",
        help: "Accepted connections placed on another shard (balanced steering).",
        value: |s| s.net.handed_out,
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_handed_in_total",
        kind: "counter",
        help: "Connections placed on this shard by another shard or the stall detector.",
        value: |s| s.net.handed_in,
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_taken_over_total",
        kind: "counter",
        help: "Connections taken from this shard's listeners while it was stalled.",
        value: |s| s.load.taken_over,
        io_uring_only: false,
    },
    Family {
        name: "percore_connections_placed",
        kind: "gauge",
        help: "Connections placed on this shard and not yet released (the steering load).",
        value: |s| s.load.connections,
        io_uring_only: false,
    },
    Family {
        name: "percore_longest_iteration_microseconds",
        kind: "gauge",
        help: "Longest loop iteration seen.",
        value: |s| s.loop_.iteration_us.max_us(),
        io_uring_only: false,
    },
];

/// Renders the stall detector's gauges: each shard's stalled seconds (0 when it is not
/// stalled, updated while the stall lasts) and how many shards are stuck.
pub fn render_stalls(shards: &[super::ShardHealth], out: &mut String) {
    family_header(
        out,
        "percore_shard_stalled_seconds",
        "gauge",
        "How long the shard's current loop iteration has been stalled (0 when it is not), updated while the stall lasts.",
    );
    for s in shards {
        let _ = writeln!(
            out,
            "percore_shard_stalled_seconds{{shard=\"{}\"}} {}",
            s.shard,
            s.stalled.as_secs_f64()
        );
    }
    family_header(
        out,
        "percore_shards_stuck",
        "gauge",
        "Shards stalled longer than unhealthy-after (health checks answer 503 while above 0).",
    );
    let stuck = shards.iter().filter(|s| s.stuck).count();
    let _ = writeln!(out, "percore_shards_stuck {stuck}");
}

/// Renders the stalls counted by the route or task each shard ran (`unknown` when it named
/// none), one sample per shard and route: `percore_stalls_by_route_total{route=..,shard=..}`.
pub fn render_stalls_by_route(stalls: &[(usize, Option<&str>, u64)], out: &mut String) {
    family_header(
        out,
        "percore_stalls_by_route_total",
        "counter",
        "Loop iterations that ran past the stall threshold, by the route or task the shard ran (unknown: unlabelled).",
    );
    for (shard, route, count) in stalls {
        let route = super::counters::escape_label(route.unwrap_or("unknown"));
        let _ = writeln!(
            out,
            "percore_stalls_by_route_total{{route=\"{route}\",shard=\"{shard}\"}} {count}"
        );
    }
}

/// Renders every shard's counters. `missing` lists shards that did not answer in time
/// (reported with `percore_shard_up 0`).
pub fn render(shards: &[ShardStats], missing: &[usize], out: &mut String) {
    family_header(
        out,
        "percore_shard_up",
        "gauge",
        "1 when the shard answered this scrape.",
    );
    for s in shards {
        let _ = writeln!(out, "percore_shard_up{{shard=\"{}\"}} 1", s.shard);
    }
    for id in missing {
        let _ = writeln!(out, "percore_shard_up{{shard=\"{id}\"}} 0");
    }
    family_header(
        out,
        "percore_driver_info",
        "gauge",
        "The I/O driver the shard runs on (io_uring or epoll), as a label; always 1.",
    );
    for s in shards {
        let _ = writeln!(
            out,
            "percore_driver_info{{shard=\"{}\",driver=\"{}\"}} 1",
            s.shard,
            s.driver.name()
        );
    }
    for family in FAMILIES {
        family_header(out, family.name, family.kind, family.help);
        for s in shards
            .iter()
            .filter(|s| !family.io_uring_only || s.driver == crate::driver::DriverKind::IoUring)
        {
            let _ = writeln!(
                out,
                "{}{{shard=\"{}\"}} {}",
                family.name,
                s.shard,
                (family.value)(s)
            );
        }
    }
    family_header(
        out,
        "percore_connections_closed_total",
        "counter",
        "Connections closed, by reason.",
    );
    for s in shards {
        for (reason, n) in [
            ("peer", s.net.closed_by_peer),
            ("error", s.net.closed_on_error),
            ("forced", s.net.closed_forced),
            ("local", s.net.closed_locally),
        ] {
            let _ = writeln!(
                out,
                "percore_connections_closed_total{{shard=\"{}\",reason=\"{reason}\"}} {n}",
                s.shard
            );
        }
    }
    family_header(
        out,
        "percore_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed, by reason.",
    );
    for s in shards {
        for (reason, n) in crate::net::TLS_FAILURE_REASONS
            .iter()
            .zip(s.net.tls.handshake_failures)
        {
            let _ = writeln!(
                out,
                "percore_tls_handshake_failures_total{{shard=\"{}\",reason=\"{reason}\"}} {n}",
                s.shard
            );
        }
    }
    histogram(
        out,
        shards,
        "percore_iteration_seconds",
        "Busy time of each loop iteration.",
        |s| &s.loop_.iteration_us,
    );
    histogram(
        out,
        shards,
        "percore_timer_lag_seconds",
        "How late timed waits ended.",
        |s| &s.loop_.timer_lag_us,
    );
    if let Some(first) = shards.first() {
        let b = first.blocking;
        for (name, kind, help, value) in [
            (
                "percore_blocking_threads",
                "gauge",
                "Blocking pool threads started.",
                b.threads_started,
            ),
            (
                "percore_blocking_busy",
                "gauge",
                "Blocking pool threads running a job.",
                b.busy,
            ),
            (
                "percore_blocking_queued",
                "gauge",
                "Jobs waiting for a blocking pool thread.",
                b.queued,
            ),
            (
                "percore_blocking_completed_total",
                "counter",
                "Jobs the blocking pool finished.",
                b.completed,
            ),
        ] {
            family_header(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
    imbalance(shards, out);
    service_counters(shards, out);
    service_gauges(shards, out);
    service_histograms(shards, out);
}

/// `labels` then `shard="N"`, comma-separated.
fn with_shard(labels: &str, shard: usize) -> String {
    let sep = if labels.is_empty() { "" } else { "," };
    format!("{labels}{sep}shard=\"{shard}\"")
}

/// Services' gauges, grouped by name.
fn service_gauges(shards: &[ShardStats], out: &mut String) {
    let mut names: Vec<(&str, &str)> = Vec::new();
    for sample in shards.iter().flat_map(|s| &s.service_gauges) {
        if !names.iter().any(|(n, _)| *n == sample.name) {
            names.push((sample.name, sample.help));
        }
    }
    for (name, help) in names {
        family_header(out, name, "gauge", help);
        for s in shards {
            for sample in s.service_gauges.iter().filter(|x| x.name == name) {
                let labels = with_shard(&sample.labels, s.shard);
                let _ = writeln!(out, "{name}{{{labels}}} {}", sample.value);
            }
        }
    }
}

/// Services' histograms, grouped by name: cumulative `_bucket`s, `_sum`, `_count`.
fn service_histograms(shards: &[ShardStats], out: &mut String) {
    let mut names: Vec<(&str, &str)> = Vec::new();
    for sample in shards.iter().flat_map(|s| &s.service_histograms) {
        if !names.iter().any(|(n, _)| *n == sample.name) {
            names.push((sample.name, sample.help));
        }
    }
    for (name, help) in names {
        family_header(out, name, "histogram", help);
        for s in shards {
            for sample in s.service_histograms.iter().filter(|x| x.name == name) {
                let labels = with_shard(&sample.labels, s.shard);
                let mut running = 0;
                for (i, count) in sample.counts.iter().enumerate() {
                    running += count;
                    match sample.bounds.get(i) {
                        Some(bound) => {
                            let _ =
                                writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {running}");
                        }
                        None => {
                            let _ =
                                writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {running}");
                        }
                    }
                }
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", sample.sum);
                let _ = writeln!(out, "{name}_count{{{labels}}} {}", sample.count);
            }
        }
    }
}

/// Max / mean of the connections accepted per shard (1.0: perfectly even).
fn imbalance(shards: &[ShardStats], out: &mut String) {
    let accepted: Vec<u64> = shards.iter().map(|s| s.net.accepted).collect();
    let total: u64 = accepted.iter().sum();
    if shards.is_empty() || total == 0 {
        return;
    }
    let mean = total as f64 / shards.len() as f64;
    let max = accepted.iter().copied().max().unwrap_or(0) as f64;
    family_header(
        out,
        "percore_connections_imbalance",
        "gauge",
        "Max / mean of the connections each shard served from a listener.",
    );
    let _ = writeln!(out, "percore_connections_imbalance {:.3}", max / mean);
}

fn family_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(
    out: &mut String,
    shards: &[ShardStats],
    name: &str,
    help: &str,
    of: fn(&ShardStats) -> &Histogram,
) {
    family_header(out, name, "histogram", help);
    for s in shards {
        let h = of(s);
        for (bound_us, cumulative) in h.cumulative() {
            match bound_us {
                Some(us) => {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{shard=\"{}\",le=\"{}\"}} {cumulative}",
                        s.shard,
                        us as f64 / 1e6
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{shard=\"{}\",le=\"+Inf\"}} {cumulative}",
                        s.shard
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "{name}_sum{{shard=\"{}\"}} {}",
            s.shard,
            h.sum_us() as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{shard=\"{}\"}} {}", s.shard, h.count());
    }
}

/// Services' counters, grouped by name so each family's header appears once.
fn service_counters(shards: &[ShardStats], out: &mut String) {
    let mut names: Vec<(&str, &str)> = Vec::new();
    for s in shards {
        for sample in &s.service {
            if !names.iter().any(|(n, _)| *n == sample.name) {
                names.push((sample.name, sample.help));
            }
        }
    }
    for (name, help) in names {
        family_header(out, name, "counter", help);
        for s in shards {
            for sample in s.service.iter().filter(|x| x.name == name) {
                let sep = if sample.labels.is_empty() { "" } else { "," };
                let _ = writeln!(
                    out,
                    "{name}{{{}{sep}shard=\"{}\"}} {}",
                    sample.labels, s.shard, sample.value
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ServiceSample;

    #[test]
    fn every_sample_carries_its_shard_and_each_family_one_header() {
        let mut a = ShardStats {
            shard: 0,
            ..Default::default()
        };
        a.net.accepted = 5;
        a.net.handed_in = 2;
        a.load.taken_over = 3;
        a.loop_.iteration_us.record_us(150);
        a.service.push(ServiceSample {
            name: "http_requests_total",
            help: "HTTP requests.",
            labels: "class=\"2xx\"".into(),
            value: 9,
        });
        a.ring.enters = 7;
        a.service_gauges.push(crate::metrics::GaugeSample {
            name: "app_items",
            help: "Items held.",
            labels: String::new(),
            value: -3,
        });
        a.service_histograms.push(crate::metrics::HistogramSample {
            name: "app_latency_seconds",
            help: "Latency.",
            labels: "route=\"/a\"".into(),
            bounds: vec![0.1, 1.0],
            counts: vec![2, 0, 1],
            sum: 2.25,
            count: 3,
        });
        let mut b = ShardStats {
            shard: 1,
            driver: crate::DriverKind::Epoll,
            ..Default::default()
        };
        b.ring.enters = 4;
        let mut out = String::new();
        render(&[a, b], &[2], &mut out);
        assert_eq!(out.matches("# TYPE app_items gauge").count(), 1, "{out}");
        assert!(out.contains("app_items{shard=\"0\"} -3\n"), "{out}");
        assert_eq!(
            out.matches("# TYPE app_latency_seconds histogram").count(),
            1
        );
        for line in [
            "app_latency_seconds_bucket{route=\"/a\",shard=\"0\",le=\"0.1\"} 2\n",
            "app_latency_seconds_bucket{route=\"/a\",shard=\"0\",le=\"1\"} 2\n",
            "app_latency_seconds_bucket{route=\"/a\",shard=\"0\",le=\"+Inf\"} 3\n",
            "app_latency_seconds_sum{route=\"/a\",shard=\"0\"} 2.25\n",
            "app_latency_seconds_count{route=\"/a\",shard=\"0\"} 3\n",
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
        assert!(out.contains("percore_connections_accepted_total{shard=\"0\"} 5\n"));
        assert!(out.contains("percore_connections_accepted_total{shard=\"1\"} 0\n"));
        assert!(out.contains("percore_shard_up{shard=\"2\"} 0\n"));
        assert!(out.contains("percore_driver_info{shard=\"0\",driver=\"io_uring\"} 1\n"));
        assert!(out.contains("percore_driver_info{shard=\"1\",driver=\"epoll\"} 1\n"));
        // The loop's waits on both drivers; io_uring's own counters only where there is a ring.
        assert!(
            out.contains("percore_driver_waits_total{shard=\"0\"} 7\n"),
            "{out}"
        );
        assert!(
            out.contains("percore_driver_waits_total{shard=\"1\"} 4\n"),
            "{out}"
        );
        assert!(
            out.contains("percore_io_uring_enter_total{shard=\"0\"} 7\n"),
            "{out}"
        );
        assert!(
            !out.contains("percore_io_uring_enter_total{shard=\"1\"}"),
            "{out}"
        );
        assert!(
            !out.contains("percore_sqes_submitted_total{shard=\"1\"}"),
            "{out}"
        );
        assert!(
            out.contains("percore_loop_iterations_total{shard=\"1\"} 0\n"),
            "{out}"
        );
        assert!(out.contains("http_requests_total{class=\"2xx\",shard=\"0\"} 9\n"));
        assert!(out.contains("percore_iteration_seconds_bucket{shard=\"0\",le=\"0.000256\"} 1\n"));
        assert!(out.contains("percore_iteration_seconds_count{shard=\"0\"} 1\n"));
        assert!(out.contains("percore_connections_handed_in_total{shard=\"0\"} 2\n"));
        assert!(out.contains("percore_connections_taken_over_total{shard=\"0\"} 3\n"));
        // 5 and 0 accepted: max 5 over a mean of 2.5.
        assert!(
            out.contains("percore_connections_imbalance 2.000\n"),
            "{out}"
        );
        assert_eq!(
            out.matches("# TYPE percore_connections_accepted_total counter")
                .count(),
            1
        );
        // Every non-comment line is `name{labels} value` with a numeric value.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("sample line");
            assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
            assert!(
                line.contains("{")
                    || line.starts_with("percore_blocking")
                    || line.starts_with("percore_connections_imbalance"),
                "{line}"
            );
        }
    }
}
