//! Metric family names: the contract dashboards, rules and tests depend on.
//! Names are registered without `_total` and without the unit; the encoder
//! appends both (`cgroup_cpu_usage` + seconds + counter →
//! `cgroup_cpu_usage_seconds_total`). [`exported`] gives the full name.
//!
//! Each row declares the kernel files its value needs; the files a scrape
//! reads are the union over the enabled rows (`Families::plan`). Adding a
//! family: a parser in `cgroupfs::parse` if the file's format is new, the
//! file's row in `cgroupfs::files`, the value's line in `sample::sample`
//! (with its field), and its row here.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::cgroupfs::files::File as F;

use super::sample::CgroupStats;

/// A family with one value per cgroup.
pub struct Scalar {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub ty: MetricType,
    /// The kernel files its value comes from (v2, v1 and fallbacks): a
    /// scrape reads the files the enabled families need, and no others.
    pub needs: &'static [F],
    pub get: fn(&CgroupStats) -> Option<f64>,
}

/// A family with an extra label per cgroup (stat, event, device, ...).
pub struct Labeled {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub ty: MetricType,
    /// As [`Scalar::needs`].
    pub needs: &'static [F],
}

/// The name as it appears in the exposition.
pub fn exported(name: &str, unit: &Option<Unit>, ty: &MetricType) -> String {
    let mut s = name.to_string();
    if let Some(u) = unit {
        s.push('_');
        s.push_str(u.as_str());
    }
    if matches!(ty, MetricType::Counter) {
        s.push_str("_total");
    }
    s
}

/// Files shared by several rows.
const CPU_STAT: &[F] = &[F::CpuStat, F::CpuStatV1];
const CPU_SPLIT: &[F] = &[
    F::CpuStat,
    F::CpuacctUsageUser,
    F::CpuacctUsageSys,
    F::CpuacctStat,
];
const USAGE: &[F] = &[F::MemoryCurrent, F::MemoryUsage];
const IO: &[F] = &[
    F::IoStat,
    F::BfqServiced,
    F::BfqServiceBytes,
    F::ThrottleServiceBytesRecursive,
    F::ThrottleServiceBytes,
    F::ThrottleServicedRecursive,
    F::ThrottleServiced,
];
const IO_LIMITS: &[F] = &[
    F::IoMax,
    F::ThrottleReadBps,
    F::ThrottleWriteBps,
    F::ThrottleReadIops,
    F::ThrottleWriteIops,
];

const C: MetricType = MetricType::Counter;
const G: MetricType = MetricType::Gauge;

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

pub const SCALARS: &[Scalar] = &[
    Scalar { name: "cgroup_cpu_usage", help: "CPU time consumed by the cgroup's tasks (cpu.stat usage_usec / cpuacct.usage).", unit: Some(Unit::Seconds), ty: C, needs: &[F::CpuStat, F::CpuacctUsage], get: |s| s.cpu_usage_seconds },
    Scalar { name: "cgroup_cpu_user", help: "CPU time in user mode (cpu.stat user_usec / cpuacct.usage_user).", unit: Some(Unit::Seconds), ty: C, needs: CPU_SPLIT, get: |s| s.cpu_user_seconds },
    Scalar { name: "cgroup_cpu_system", help: "CPU time in kernel mode (cpu.stat system_usec / cpuacct.usage_sys).", unit: Some(Unit::Seconds), ty: C, needs: CPU_SPLIT, get: |s| s.cpu_system_seconds },
    Scalar { name: "cgroup_cpu_periods", help: "CFS bandwidth enforcement periods elapsed (cpu.stat nr_periods).", unit: None, ty: C, needs: CPU_STAT, get: |s| u(s.cpu_periods) },
    Scalar { name: "cgroup_cpu_throttled_periods", help: "Periods in which the cgroup was throttled (cpu.stat nr_throttled).", unit: None, ty: C, needs: CPU_STAT, get: |s| u(s.cpu_throttled_periods) },
    Scalar { name: "cgroup_cpu_throttled", help: "Time the cgroup was throttled (cpu.stat throttled_usec / throttled_time).", unit: Some(Unit::Seconds), ty: C, needs: CPU_STAT, get: |s| s.cpu_throttled_seconds },
    Scalar { name: "cgroup_cpu_limit_cores", help: "CPU limit in cores: quota / period (cpu.max / cpu.cfs_quota_us). Absent when unlimited.", unit: None, ty: G, needs: &[F::CpuMax, F::CfsQuota, F::CfsPeriod], get: |s| s.cpu_limit_cores },
    Scalar { name: "cgroup_cpu_weight", help: "CPU weight, 1-10000 (cpu.weight, v2).", unit: None, ty: G, needs: &[F::CpuWeight], get: |s| u(s.cpu_weight) },
    Scalar { name: "cgroup_cpu_shares", help: "CPU shares (cpu.shares, v1).", unit: None, ty: G, needs: &[F::CpuShares], get: |s| u(s.cpu_shares) },
    Scalar { name: "cgroup_cpuset_cpus", help: "Number of CPUs the cgroup may run on (cpuset.cpus.effective / cpuset.effective_cpus).", unit: None, ty: G, needs: &[F::CpusetCpusEffective, F::CpusetEffectiveCpus, F::CpusetCpus], get: |s| f(s.cpuset_cpus) },
    Scalar { name: "cgroup_memory_usage", help: "Memory in use, page cache included (memory.current / memory.usage_in_bytes).", unit: Some(Unit::Bytes), ty: G, needs: USAGE, get: |s| u(s.memory_usage) },
    Scalar { name: "cgroup_memory_working_set", help: "Usage minus inactive file cache: what the kubelet evicts on.", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemoryCurrent, F::MemoryUsage, F::MemoryStat, F::MemoryStatV1], get: |s| u(s.memory_working_set) },
    Scalar { name: "cgroup_memory_peak", help: "Highest memory usage recorded (memory.peak / memory.max_usage_in_bytes).", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemoryPeak, F::MemoryMaxUsage], get: |s| u(s.memory_peak) },
    Scalar { name: "cgroup_memory_limit", help: "Hard memory limit (memory.max / memory.limit_in_bytes). Absent when unlimited.", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemoryMax, F::MemoryLimit], get: |s| u(s.memory_limit) },
    Scalar { name: "cgroup_memory_high", help: "Memory throttling threshold (memory.high, v2). Absent when max.", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemoryHigh], get: |s| u(s.memory_high) },
    Scalar { name: "cgroup_memory_low", help: "Best-effort memory protection (memory.low / v1 memory.soft_limit_in_bytes). Absent when max.", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemoryLow, F::MemorySoftLimit], get: |s| u(s.memory_low) },
    Scalar { name: "cgroup_memory_min", help: "Hard memory protection (memory.min, v2).", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemoryMin], get: |s| u(s.memory_min) },
    Scalar { name: "cgroup_memory_swap_usage", help: "Swap in use (memory.swap.current / memsw.usage - usage).", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemorySwapCurrent, F::MemswUsage, F::MemoryCurrent, F::MemoryUsage], get: |s| u(s.swap_usage) },
    Scalar { name: "cgroup_memory_swap_limit", help: "Swap limit (memory.swap.max / memsw.limit - limit). Absent when max.", unit: Some(Unit::Bytes), ty: G, needs: &[F::MemorySwapMax, F::MemswLimit, F::MemoryLimit], get: |s| u(s.swap_limit) },
    Scalar { name: "cgroup_io_weight", help: "IO weight (io.weight default / blkio.weight).", unit: None, ty: G, needs: &[F::IoWeight, F::BfqWeight, F::BlkioWeight], get: |s| u(s.io_weight) },
    Scalar { name: "cgroup_pids_current", help: "Number of tasks (pids.current).", unit: None, ty: G, needs: &[F::PidsCurrent, F::PidsCurrentV1], get: |s| u(s.pids_current) },
    Scalar { name: "cgroup_pids_limit", help: "Task limit (pids.max). Absent when max.", unit: None, ty: G, needs: &[F::PidsMax, F::PidsMaxV1], get: |s| u(s.pids_limit) },
    Scalar { name: "cgroup_pressure_cpu_waiting", help: "Time some tasks were stalled waiting for CPU (PSI some total; host from /proc/pressure/cpu for cgroup=\"/\").", unit: Some(Unit::Seconds), ty: C, needs: &[F::CpuPressure], get: |s| sec(s.pressure_cpu.some_total) },
    Scalar { name: "cgroup_pressure_cpu_stalled", help: "Time all non-idle tasks were stalled on CPU (PSI full total).", unit: Some(Unit::Seconds), ty: C, needs: &[F::CpuPressure], get: |s| sec(s.pressure_cpu.full_total) },
    Scalar { name: "cgroup_pressure_memory_waiting", help: "Time some tasks were stalled on memory (PSI some total).", unit: Some(Unit::Seconds), ty: C, needs: &[F::MemoryPressure], get: |s| sec(s.pressure_memory.some_total) },
    Scalar { name: "cgroup_pressure_memory_stalled", help: "Time all non-idle tasks were stalled on memory (PSI full total).", unit: Some(Unit::Seconds), ty: C, needs: &[F::MemoryPressure], get: |s| sec(s.pressure_memory.full_total) },
    Scalar { name: "cgroup_pressure_io_waiting", help: "Time some tasks were stalled on IO (PSI some total).", unit: Some(Unit::Seconds), ty: C, needs: &[F::IoPressure], get: |s| sec(s.pressure_io.some_total) },
    Scalar { name: "cgroup_pressure_io_stalled", help: "Time all non-idle tasks were stalled on IO (PSI full total).", unit: Some(Unit::Seconds), ty: C, needs: &[F::IoPressure], get: |s| sec(s.pressure_io.full_total) },
    Scalar { name: "cgroup_populated", help: "1 when the cgroup or a descendant has live processes (cgroup.events populated).", unit: None, ty: G, needs: &[F::CgroupEvents], get: |s| b(s.populated) },
    Scalar { name: "cgroup_frozen", help: "1 when the cgroup is frozen (cgroup.events frozen / freezer.state).", unit: None, ty: G, needs: &[F::CgroupEvents, F::FreezerState], get: |s| b(s.frozen) },
];

pub const MEMORY_STAT: Labeled = Labeled {
    name: "cgroup_memory_stat",
    help: "Memory by type from memory.stat (v1 total_* keys mapped to v2 names).",
    unit: Some(Unit::Bytes),
    ty: G,
    needs: &[F::MemoryStat, F::MemoryStatV1],
};
pub const MEMORY_EVENTS: Labeled = Labeled {
    name: "cgroup_memory_events",
    help: "Memory events (memory.events; v1: failcnt as max, oom_control oom_kill).",
    unit: None,
    ty: C,
    needs: &[F::MemoryEvents, F::MemoryFailcnt, F::MemoryOomControl],
};
pub const MEMORY_NUMA: Labeled = Labeled {
    name: "cgroup_memory_numa",
    help: "Memory by NUMA node and type (memory.numa_stat). Off by default.",
    unit: Some(Unit::Bytes),
    ty: G,
    needs: &[F::MemoryNumaStat, F::MemoryNumaStatV1],
};
pub const IO_READ_BYTES: Labeled = Labeled {
    name: "cgroup_io_read",
    help: "Bytes read per device (io.stat rbytes / blkio.throttle.io_service_bytes).",
    unit: Some(Unit::Bytes),
    ty: C,
    needs: IO,
};
pub const IO_WRITE_BYTES: Labeled = Labeled {
    name: "cgroup_io_write",
    help: "Bytes written per device (io.stat wbytes / blkio.throttle.io_service_bytes).",
    unit: Some(Unit::Bytes),
    ty: C,
    needs: IO,
};
pub const IO_READS: Labeled = Labeled {
    name: "cgroup_io_reads",
    help: "Read operations per device (io.stat rios / blkio.throttle.io_serviced).",
    unit: None,
    ty: C,
    needs: IO,
};
pub const IO_WRITES: Labeled = Labeled {
    name: "cgroup_io_writes",
    help: "Write operations per device (io.stat wios / blkio.throttle.io_serviced).",
    unit: None,
    ty: C,
    needs: IO,
};
pub const IO_LIMIT_READ_BPS: Labeled = Labeled {
    name: "cgroup_io_limit_read_bytes_per_second",
    help: "Read bandwidth limit per device (io.max rbps / blkio.throttle.read_bps_device).",
    unit: None,
    ty: G,
    needs: IO_LIMITS,
};
pub const IO_LIMIT_WRITE_BPS: Labeled = Labeled {
    name: "cgroup_io_limit_write_bytes_per_second",
    help: "Write bandwidth limit per device (io.max wbps / blkio.throttle.write_bps_device).",
    unit: None,
    ty: G,
    needs: IO_LIMITS,
};
pub const IO_LIMIT_READ_IOPS: Labeled = Labeled {
    name: "cgroup_io_limit_read_ops_per_second",
    help: "Read IOPS limit per device (io.max riops / blkio.throttle.read_iops_device).",
    unit: None,
    ty: G,
    needs: IO_LIMITS,
};
pub const IO_LIMIT_WRITE_IOPS: Labeled = Labeled {
    name: "cgroup_io_limit_write_ops_per_second",
    help: "Write IOPS limit per device (io.max wiops / blkio.throttle.write_iops_device).",
    unit: None,
    ty: G,
    needs: IO_LIMITS,
};
pub const HUGETLB_USAGE: Labeled = Labeled {
    name: "cgroup_hugetlb_usage",
    help: "Huge pages in use per page size (hugetlb.<size>.current / .usage_in_bytes).",
    unit: Some(Unit::Bytes),
    ty: G,
    needs: &[F::HugetlbCurrent, F::HugetlbUsageV1],
};
pub const HUGETLB_LIMIT: Labeled = Labeled {
    name: "cgroup_hugetlb_limit",
    help: "Huge page limit per page size (hugetlb.<size>.max / .limit_in_bytes).",
    unit: Some(Unit::Bytes),
    ty: G,
    needs: &[F::HugetlbMax, F::HugetlbLimitV1],
};

pub const LABELED: &[&Labeled] = &[
    &MEMORY_STAT,
    &MEMORY_EVENTS,
    &MEMORY_NUMA,
    &IO_READ_BYTES,
    &IO_WRITE_BYTES,
    &IO_READS,
    &IO_WRITES,
    &IO_LIMIT_READ_BPS,
    &IO_LIMIT_WRITE_BPS,
    &IO_LIMIT_READ_IOPS,
    &IO_LIMIT_WRITE_IOPS,
    &HUGETLB_USAGE,
    &HUGETLB_LIMIT,
];

/// Families off unless named in `metrics.enable`: costly to read.
pub const OFF_BY_DEFAULT: &[&str] = &["cgroup_memory_numa_bytes"];

/// Every per-cgroup family name as exported, for config validation and docs.
pub fn all_exported() -> Vec<String> {
    let mut v: Vec<String> = SCALARS
        .iter()
        .map(|s| exported(s.name, &s.unit, &s.ty))
        .collect();
    v.extend(LABELED.iter().map(|l| exported(l.name, &l.unit, &l.ty)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_names_match_the_design_table() {
        let all = all_exported();
        for want in [
            "cgroup_cpu_usage_seconds_total",
            "cgroup_cpu_throttled_seconds_total",
            "cgroup_cpu_periods_total",
            "cgroup_cpu_limit_cores",
            "cgroup_memory_working_set_bytes",
            "cgroup_memory_stat_bytes",
            "cgroup_memory_events_total",
            "cgroup_io_read_bytes_total",
            "cgroup_io_reads_total",
            "cgroup_io_limit_write_ops_per_second",
            "cgroup_hugetlb_usage_bytes",
            "cgroup_memory_numa_bytes",
            "cgroup_pressure_memory_waiting_seconds_total",
            "cgroup_pressure_io_stalled_seconds_total",
            "cgroup_populated",
        ] {
            assert!(all.iter().any(|n| n == want), "{want} missing from {all:?}");
        }
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "duplicate family names");
    }
}
