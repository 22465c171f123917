//! CPUs: how many, which are isolated, and whether shards would share a physical core.

use crate::doctor::{Check, DoctorConfig, facts::Facts};

pub(super) fn cpus(facts: &Facts, config: &DoctorConfig) -> Vec<Check> {
    let allowed = &facts.allowed_cpus;
    let count = if config.shards > allowed.len() {
        Check::warn(
            "cpu.count",
            format!(
                "{} shards on {} allowed CPUs ({} online): shards share cores",
                config.shards,
                allowed.len(),
                facts.online_cpus
            ),
            Some(format!(
                "`--shards {}`, or allow more CPUs (taskset, cpuset)",
                allowed.len()
            )),
        )
    } else {
        Check::ok(
            "cpu.count",
            format!(
                "{} online, {} allowed ({}): one per shard",
                facts.online_cpus,
                allowed.len(),
                cpu_list(allowed)
            ),
        )
    };
    let isolated = if facts.isolated_cpus.is_empty() {
        Check::ok(
            "cpu.isolated",
            "none (isolcpus= or nohz_full= keep other work off shard cores)",
        )
    } else {
        Check::ok(
            "cpu.isolated",
            format!(
                "{}: pin shards to them with `--cores {}`",
                cpu_list(&facts.isolated_cpus),
                cpu_list(&facts.isolated_cpus)
            ),
        )
    };
    vec![count, isolated, smt(facts, config)]
}

/// SMT: shards are placed on the allowed CPUs in order, so two of the first `shards` CPUs that
/// are siblings put two shards on one physical core.
fn smt(facts: &Facts, config: &DoctorConfig) -> Check {
    let name = "cpu.smt";
    let core_of = |cpu: usize| {
        facts
            .siblings
            .iter()
            .find(|(c, _)| *c == cpu)
            .and_then(|(_, s)| s.iter().min().copied())
            .unwrap_or(cpu)
    };
    let mut cores: Vec<usize> = facts.allowed_cpus.iter().map(|&c| core_of(c)).collect();
    let placed: Vec<usize> = facts
        .allowed_cpus
        .iter()
        .take(config.shards)
        .copied()
        .collect();
    let shared = placed.iter().enumerate().find_map(|(i, &a)| {
        placed[i + 1..]
            .iter()
            .find(|&&b| core_of(a) == core_of(b))
            .map(|&b| (a, b))
    });
    // One CPU per physical core, for the fix.
    let mut one_per_core: Vec<usize> = Vec::new();
    for &cpu in &facts.allowed_cpus {
        if !one_per_core.iter().any(|&c| core_of(c) == core_of(cpu)) {
            one_per_core.push(cpu);
        }
    }
    cores.sort_unstable();
    cores.dedup();
    match shared {
        Some((a, b)) => Check::warn(
            name,
            format!(
                "CPUs {a} and {b} are SMT siblings: two shards would share one physical core ({} cores for {} allowed CPUs)",
                cores.len(),
                facts.allowed_cpus.len()
            ),
            Some(format!(
                "one shard per physical core: `--cores {}`",
                cpu_list(&one_per_core[..one_per_core.len().min(config.shards)])
            )),
        ),
        None if cores.len() < facts.allowed_cpus.len() => Check::ok(
            name,
            format!(
                "SMT on ({} cores for {} allowed CPUs); the {} shards get a core each",
                cores.len(),
                facts.allowed_cpus.len(),
                config.shards
            ),
        ),
        None => Check::ok(name, "no SMT siblings among the allowed CPUs"),
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
