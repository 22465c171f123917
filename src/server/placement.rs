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

#[cfg(test)]
mod tests {
    use super::*;

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
