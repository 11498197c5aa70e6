//! The per-cgroup families' values: which field of a cgroup's sample each
//! one-value family reports, and the labelled families in the order they
//! are encoded. Names, help, units and the files each family needs are
//! rows of the one table in [`crate::metrics`].

use crate::metrics::{self as m, Desc};

use super::sample::CgroupStats;

/// A family with one value per cgroup.
pub struct Scalar {
    pub desc: &'static Desc,
    pub get: fn(&CgroupStats) -> Option<f64>,
}

fn f<T: Into<f64>>(v: Option<T>) -> Option<f64> {
    v.map(Into::into)
}

fn u(v: Option<u64>) -> Option<f64> {
    v.map(|x| x as f64)
}

fn b(v: Option<bool>) -> Option<f64> {
    v.map(|x| if x { 1.0 } else { 0.0 })
}

fn sec(us: Option<u64>) -> Option<f64> {
    us.map(|x| x as f64 / 1e6)
}

#[rustfmt::skip]
pub const SCALARS: &[Scalar] = &[
    Scalar { desc: &m::CPU_USAGE, get: |s| s.cpu_usage_seconds.get() },
    Scalar { desc: &m::CPU_USER, get: |s| s.cpu_user_seconds.get() },
    Scalar { desc: &m::CPU_SYSTEM, get: |s| s.cpu_system_seconds.get() },
    Scalar { desc: &m::CPU_PERIODS, get: |s| u(s.cpu_periods.get()) },
    Scalar { desc: &m::CPU_THROTTLED_PERIODS, get: |s| u(s.cpu_throttled_periods.get()) },
    Scalar { desc: &m::CPU_THROTTLED, get: |s| s.cpu_throttled_seconds.get() },
    Scalar { desc: &m::CPU_LIMIT_CORES, get: |s| s.cpu_limit_cores.get() },
    Scalar { desc: &m::CPU_WEIGHT, get: |s| u(s.cpu_weight.get()) },
    Scalar { desc: &m::CPU_SHARES, get: |s| u(s.cpu_shares.get()) },
    Scalar { desc: &m::CPUSET_CPUS, get: |s| f(s.cpuset_cpus.get()) },
    Scalar { desc: &m::MEMORY_USAGE, get: |s| u(s.memory_usage.get()) },
    Scalar { desc: &m::MEMORY_WORKING_SET, get: |s| u(s.memory_working_set.get()) },
    Scalar { desc: &m::MEMORY_PEAK, get: |s| u(s.memory_peak.get()) },
    Scalar { desc: &m::MEMORY_LIMIT, get: |s| u(s.memory_limit.get()) },
    Scalar { desc: &m::MEMORY_HIGH, get: |s| u(s.memory_high.get()) },
    Scalar { desc: &m::MEMORY_LOW, get: |s| u(s.memory_low.get()) },
    Scalar { desc: &m::MEMORY_MIN, get: |s| u(s.memory_min.get()) },
    Scalar { desc: &m::MEMORY_SWAP_USAGE, get: |s| u(s.swap_usage.get()) },
    Scalar { desc: &m::MEMORY_SWAP_LIMIT, get: |s| u(s.swap_limit.get()) },
    Scalar { desc: &m::IO_WEIGHT, get: |s| u(s.io_weight.get()) },
    Scalar { desc: &m::PIDS_CURRENT, get: |s| u(s.pids_current.get()) },
    Scalar { desc: &m::PIDS_LIMIT, get: |s| u(s.pids_limit.get()) },
    Scalar { desc: &m::PRESSURE_CPU_WAITING, get: |s| sec(s.pressure_cpu.some_total.get()) },
    Scalar { desc: &m::PRESSURE_CPU_STALLED, get: |s| sec(s.pressure_cpu.full_total.get()) },
    Scalar { desc: &m::PRESSURE_MEMORY_WAITING, get: |s| sec(s.pressure_memory.some_total.get()) },
    Scalar { desc: &m::PRESSURE_MEMORY_STALLED, get: |s| sec(s.pressure_memory.full_total.get()) },
    Scalar { desc: &m::PRESSURE_IO_WAITING, get: |s| sec(s.pressure_io.some_total.get()) },
    Scalar { desc: &m::PRESSURE_IO_STALLED, get: |s| sec(s.pressure_io.full_total.get()) },
    Scalar { desc: &m::POPULATED, get: |s| b(s.populated) },
    Scalar { desc: &m::FROZEN, get: |s| b(s.frozen) },
];

/// The families with an extra label per cgroup (stat, event, device, ...).
pub const LABELED: &[&Desc] = &[
    &m::MEMORY_STAT,
    &m::MEMORY_EVENTS,
    &m::MEMORY_NUMA,
    &m::IO_READ_BYTES,
    &m::IO_WRITE_BYTES,
    &m::IO_READS,
    &m::IO_WRITES,
    &m::IO_LIMIT_READ_BPS,
    &m::IO_LIMIT_WRITE_BPS,
    &m::IO_LIMIT_READ_IOPS,
    &m::IO_LIMIT_WRITE_IOPS,
    &m::HUGETLB_USAGE,
    &m::HUGETLB_LIMIT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_per_cgroup_row_of_the_table_is_encoded_and_declares_its_files() {
        let cgroup: Vec<&str> = SCALARS
            .iter()
            .map(|s| s.desc.exported)
            .chain(LABELED.iter().map(|d| d.exported))
            .collect();
        for d in m::ALL {
            assert_eq!(
                cgroup.contains(&d.exported),
                !d.needs.is_empty(),
                "{}: per-cgroup families, and only they, declare files",
                d.exported
            );
        }
    }
}
