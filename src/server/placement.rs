//! Which CPUs the shards run on.

use crate::{error::Error, sys};

/// How many shards to start and where to pin them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// One shard per CPU this process may run on (its affinity mask, so `taskset` is
    /// respected), each pinned to its CPU. The default.
    #[default]
    OnePerCpu,
    /// `n` shards pinned to the allowed CPUs in order (wrapping when `n` exceeds them).
    Count(usize),
    /// One shard per listed CPU, pinned to it; each must be in the affinity mask.
    Cores(Vec<usize>),
    /// `n` shards left to the kernel's scheduler.
    Unpinned(usize),
}

/// The CPU of each shard (`None`: unpinned).
pub(crate) fn resolve(placement: &Placement) -> Result<Vec<Option<usize>>, Error> {
    let allowed =
        sys::cpu::allowed_cpus().map_err(|e| Error::io("reading the CPU affinity mask", e))?;
    if allowed.is_empty() {
        return Err(Error::Config(
            "the process may run on no CPU (empty affinity mask)".into(),
        ));
    }
    let cpus = match placement {
        Placement::OnePerCpu => allowed.iter().copied().map(Some).collect(),
        Placement::Count(0) | Placement::Unpinned(0) => {
            return Err(Error::Config("the shard count must be at least 1".into()));
        }
        Placement::Count(n) => (0..*n).map(|i| Some(allowed[i % allowed.len()])).collect(),
        Placement::Unpinned(n) => vec![None; *n],
        Placement::Cores(cores) if cores.is_empty() => {
            return Err(Error::Config("the core list is empty".into()));
        }
        Placement::Cores(cores) => {
            if let Some(bad) = cores.iter().find(|c| !allowed.contains(c)) {
                return Err(Error::Config(format!(
                    "CPU {bad} is not in this process's affinity mask (allowed: {allowed:?})"
                )));
            }
            cores.iter().copied().map(Some).collect()
        }
    };
    Ok(cpus)
}

/// The warning for more shards than allowed CPUs (shards sharing a CPU take turns on it,
/// so one's loop waits while the other runs), or `None`.
pub(crate) fn oversubscription(cpus: &[Option<usize>], allowed: usize) -> Option<String> {
    let pinned: Vec<usize> = cpus.iter().flatten().copied().collect();
    let mut distinct = pinned.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if pinned.len() > distinct.len() {
        return Some(format!(
            "{} shards are pinned to {} CPUs: shards sharing a CPU take turns on it (each one's latency includes the other's work); use at most {} shards, or Placement::Unpinned",
            pinned.len(),
            distinct.len(),
            distinct.len()
        ));
    }
    if cpus.len() > allowed {
        return Some(format!(
            "{} shards on {allowed} allowed CPUs: shards share CPUs and take turns on them; use at most {allowed} shards",
            cpus.len()
        ));
    }
    None
}

/// The CPUs this process may run on, counted (1 when the mask cannot be read).
pub(crate) fn allowed_count() -> usize {
    sys::cpu::allowed_cpus().map_or(1, |cpus| cpus.len().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_shards_than_cpus_is_warned_about() {
        let warning = oversubscription(&[Some(0), Some(1), Some(0), Some(1)], 2).unwrap();
        assert!(
            warning.contains("4 shards are pinned to 2 CPUs"),
            "{warning}"
        );
        assert!(oversubscription(&[Some(0), Some(1)], 2).is_none());
        let warning = oversubscription(&[None, None, None], 2).unwrap();
        assert!(warning.contains("3 shards on 2 allowed CPUs"), "{warning}");
        assert!(oversubscription(&[None, None], 2).is_none());
    }

    #[test]
    fn count_wraps_over_the_allowed_cpus() {
        let allowed = sys::cpu::allowed_cpus().unwrap();
        let cpus = resolve(&Placement::Count(allowed.len() * 2 + 1)).unwrap();
        assert_eq!(cpus.len(), allowed.len() * 2 + 1);
        assert_eq!(cpus[allowed.len()], Some(allowed[0]));
    }

    #[test]
    fn a_core_outside_the_mask_is_a_config_error() {
        let err = resolve(&Placement::Cores(vec![100_000])).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("affinity mask")),
            "{err}"
        );
    }

    #[test]
    fn zero_shards_is_refused() {
        assert!(matches!(
            resolve(&Placement::Count(0)),
            Err(Error::Config(_))
        ));
    }
}
