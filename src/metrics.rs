//! Every metric family the exporter exports, in one table, and the one
//! helper that writes a family: the contract dashboards, rules and tests
//! depend on (names as in DESIGN.md).
//!
//! A row gives the registered name (without unit and `_total`, as
//! prometheus-client wants it), the unit, the type, the help and, for
//! per-cgroup families, the kernel files its value needs (the files a
//! scrape reads are the union over the enabled rows, see
//! `collector::Families`). The exported name is built from the row at
//! compile time, so config validation and `metrics.disable` work on
//! `&'static str` and any family can be turned off, whatever makes it.
//!
//! Adding a family that is not per-cgroup: its row here, and the one line
//! that emits it with [`family`] or [`register`]. A per-cgroup family also
//! needs its value in `collector::sample` and its getter in
//! `collector::names`.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::cgroupfs::files::File as F;

/// One family of the table.
#[derive(Debug)]
pub struct Desc {
    /// As registered: no unit, no `_total`.
    pub name: &'static str,
    /// As it appears in the exposition and in `metrics.disable`.
    pub exported: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub ty: MetricType,
    /// The kernel files a per-cgroup family's value comes from (v2, v1 and
    /// fallbacks); empty for the others.
    pub needs: &'static [F],
}

/// Rows: `ID = "name", unit, type, [needs FILES,] "help";`. `unit` is
/// `none`, `seconds` or `bytes`; `type` is `gauge` or `counter`.
macro_rules! families {
    ($( $id:ident = $name:literal, $unit:ident, $ty:ident, $(needs $needs:expr,)? $help:literal; )*) => {
        $(
            pub const $id: Desc = Desc {
                name: $name,
                exported: concat!($name, families!(@suffix $unit), families!(@total $ty)),
                help: $help,
                unit: families!(@unit $unit),
                ty: families!(@ty $ty),
                needs: families!(@needs $($needs)?),
            };
        )*
        /// Every family, in the order of the table.
        pub const ALL: &[&Desc] = &[$(&$id),*];
    };
    (@unit none) => { None };
    (@unit seconds) => { Some(Unit::Seconds) };
    (@unit bytes) => { Some(Unit::Bytes) };
    (@suffix none) => { "" };
    (@suffix seconds) => { "_seconds" };
    (@suffix bytes) => { "_bytes" };
    (@ty gauge) => { MetricType::Gauge };
    (@ty counter) => { MetricType::Counter };
    (@total gauge) => { "" };
    (@total counter) => { "_total" };
    (@needs) => { &[] };
    (@needs $needs:expr) => { $needs };
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

families! {
    // Per cgroup, one value (collector::names::SCALARS).
    CPU_USAGE = "cgroup_cpu_usage", seconds, counter, needs &[F::CpuStat, F::CpuacctUsage], "CPU time consumed by the cgroup's tasks (cpu.stat usage_usec / cpuacct.usage).";
    CPU_USER = "cgroup_cpu_user", seconds, counter, needs CPU_SPLIT, "CPU time in user mode (cpu.stat user_usec / cpuacct.usage_user).";
    CPU_SYSTEM = "cgroup_cpu_system", seconds, counter, needs CPU_SPLIT, "CPU time in kernel mode (cpu.stat system_usec / cpuacct.usage_sys).";
    CPU_PERIODS = "cgroup_cpu_periods", none, counter, needs CPU_STAT, "CFS bandwidth enforcement periods elapsed (cpu.stat nr_periods).";
    CPU_THROTTLED_PERIODS = "cgroup_cpu_throttled_periods", none, counter, needs CPU_STAT, "Periods in which the cgroup was throttled (cpu.stat nr_throttled).";
    CPU_THROTTLED = "cgroup_cpu_throttled", seconds, counter, needs CPU_STAT, "Time the cgroup was throttled (cpu.stat throttled_usec / throttled_time).";
    CPU_LIMIT_CORES = "cgroup_cpu_limit_cores", none, gauge, needs &[F::CpuMax, F::CfsQuota, F::CfsPeriod], "CPU limit in cores: quota / period (cpu.max / cpu.cfs_quota_us). Absent when unlimited.";
    CPU_WEIGHT = "cgroup_cpu_weight", none, gauge, needs &[F::CpuWeight], "CPU weight, 1-10000 (cpu.weight, v2).";
    CPU_SHARES = "cgroup_cpu_shares", none, gauge, needs &[F::CpuShares], "CPU shares (cpu.shares, v1).";
    CPUSET_CPUS = "cgroup_cpuset_cpus", none, gauge, needs &[F::CpusetCpusEffective, F::CpusetEffectiveCpus, F::CpusetCpus], "Number of CPUs the cgroup may run on (cpuset.cpus.effective / cpuset.effective_cpus).";
    MEMORY_USAGE = "cgroup_memory_usage", bytes, gauge, needs USAGE, "Memory in use, page cache included (memory.current / memory.usage_in_bytes).";
    MEMORY_WORKING_SET = "cgroup_memory_working_set", bytes, gauge, needs &[F::MemoryCurrent, F::MemoryUsage, F::MemoryStat, F::MemoryStatV1], "Usage minus inactive file cache: what the kubelet evicts on.";
    MEMORY_PEAK = "cgroup_memory_peak", bytes, gauge, needs &[F::MemoryPeak, F::MemoryMaxUsage], "Highest memory usage recorded (memory.peak / memory.max_usage_in_bytes).";
    MEMORY_LIMIT = "cgroup_memory_limit", bytes, gauge, needs &[F::MemoryMax, F::MemoryLimit], "Hard memory limit (memory.max / memory.limit_in_bytes). Absent when unlimited.";
    MEMORY_HIGH = "cgroup_memory_high", bytes, gauge, needs &[F::MemoryHigh], "Memory throttling threshold (memory.high, v2). Absent when max.";
    MEMORY_LOW = "cgroup_memory_low", bytes, gauge, needs &[F::MemoryLow, F::MemorySoftLimit], "Best-effort memory protection (memory.low / v1 memory.soft_limit_in_bytes). Absent when max.";
    MEMORY_MIN = "cgroup_memory_min", bytes, gauge, needs &[F::MemoryMin], "Hard memory protection (memory.min, v2).";
    MEMORY_SWAP_USAGE = "cgroup_memory_swap_usage", bytes, gauge, needs &[F::MemorySwapCurrent, F::MemswUsage, F::MemoryCurrent, F::MemoryUsage], "Swap in use (memory.swap.current / memsw.usage - usage).";
    MEMORY_SWAP_LIMIT = "cgroup_memory_swap_limit", bytes, gauge, needs &[F::MemorySwapMax, F::MemswLimit, F::MemoryLimit], "Swap limit (memory.swap.max / memsw.limit - limit). Absent when max.";
    IO_WEIGHT = "cgroup_io_weight", none, gauge, needs &[F::IoWeight, F::BfqWeight, F::BlkioWeight], "IO weight (io.weight default / blkio.weight).";
    PIDS_CURRENT = "cgroup_pids_current", none, gauge, needs &[F::PidsCurrent, F::PidsCurrentV1], "Number of tasks (pids.current).";
    PIDS_LIMIT = "cgroup_pids_limit", none, gauge, needs &[F::PidsMax, F::PidsMaxV1], "Task limit (pids.max). Absent when max.";
    PRESSURE_CPU_WAITING = "cgroup_pressure_cpu_waiting", seconds, counter, needs &[F::CpuPressure], "Time some tasks were stalled waiting for CPU (PSI some total; host from /proc/pressure/cpu for cgroup=\"/\").";
    PRESSURE_CPU_STALLED = "cgroup_pressure_cpu_stalled", seconds, counter, needs &[F::CpuPressure], "Time all non-idle tasks were stalled on CPU (PSI full total).";
    PRESSURE_MEMORY_WAITING = "cgroup_pressure_memory_waiting", seconds, counter, needs &[F::MemoryPressure], "Time some tasks were stalled on memory (PSI some total).";
    PRESSURE_MEMORY_STALLED = "cgroup_pressure_memory_stalled", seconds, counter, needs &[F::MemoryPressure], "Time all non-idle tasks were stalled on memory (PSI full total).";
    PRESSURE_IO_WAITING = "cgroup_pressure_io_waiting", seconds, counter, needs &[F::IoPressure], "Time some tasks were stalled on IO (PSI some total).";
    PRESSURE_IO_STALLED = "cgroup_pressure_io_stalled", seconds, counter, needs &[F::IoPressure], "Time all non-idle tasks were stalled on IO (PSI full total).";
    POPULATED = "cgroup_populated", none, gauge, needs &[F::CgroupEvents], "1 when the cgroup or a descendant has live processes (cgroup.events populated).";
    FROZEN = "cgroup_frozen", none, gauge, needs &[F::CgroupEvents, F::FreezerState], "1 when the cgroup is frozen (cgroup.events frozen / freezer.state).";

    // Per cgroup, with an extra label (stat, event, device, ...).
    MEMORY_STAT = "cgroup_memory_stat", bytes, gauge, needs &[F::MemoryStat, F::MemoryStatV1], "Memory by type from memory.stat (v1 total_* keys mapped to v2 names).";
    MEMORY_EVENTS = "cgroup_memory_events", none, counter, needs &[F::MemoryEvents, F::MemoryFailcnt, F::MemoryOomControl], "Memory events (memory.events; v1: failcnt as max, oom_control oom_kill).";
    MEMORY_NUMA = "cgroup_memory_numa", bytes, gauge, needs &[F::MemoryNumaStat, F::MemoryNumaStatV1], "Memory by NUMA node and type (memory.numa_stat). Off by default.";
    IO_READ_BYTES = "cgroup_io_read", bytes, counter, needs IO, "Bytes read per device (io.stat rbytes / blkio.throttle.io_service_bytes).";
    IO_WRITE_BYTES = "cgroup_io_write", bytes, counter, needs IO, "Bytes written per device (io.stat wbytes / blkio.throttle.io_service_bytes).";
    IO_READS = "cgroup_io_reads", none, counter, needs IO, "Read operations per device (io.stat rios / blkio.throttle.io_serviced).";
    IO_WRITES = "cgroup_io_writes", none, counter, needs IO, "Write operations per device (io.stat wios / blkio.throttle.io_serviced).";
    IO_LIMIT_READ_BPS = "cgroup_io_limit_read_bytes_per_second", none, gauge, needs IO_LIMITS, "Read bandwidth limit per device (io.max rbps / blkio.throttle.read_bps_device).";
    IO_LIMIT_WRITE_BPS = "cgroup_io_limit_write_bytes_per_second", none, gauge, needs IO_LIMITS, "Write bandwidth limit per device (io.max wbps / blkio.throttle.write_bps_device).";
    IO_LIMIT_READ_IOPS = "cgroup_io_limit_read_ops_per_second", none, gauge, needs IO_LIMITS, "Read IOPS limit per device (io.max riops / blkio.throttle.read_iops_device).";
    IO_LIMIT_WRITE_IOPS = "cgroup_io_limit_write_ops_per_second", none, gauge, needs IO_LIMITS, "Write IOPS limit per device (io.max wiops / blkio.throttle.write_iops_device).";
    HUGETLB_USAGE = "cgroup_hugetlb_usage", bytes, gauge, needs &[F::HugetlbCurrent, F::HugetlbUsageV1], "Huge pages in use per page size (hugetlb.<size>.current / .usage_in_bytes).";
    HUGETLB_LIMIT = "cgroup_hugetlb_limit", bytes, gauge, needs &[F::HugetlbMax, F::HugetlbLimitV1], "Huge page limit per page size (hugetlb.<size>.max / .limit_in_bytes).";

    // Namespaces (namespaces::encode_snapshot).
    NAMESPACES = "namespaces", none, gauge, "Distinct namespaces of each type among all processes.";
    NAMESPACE_INFO = "namespace_info", none, gauge, "One series per namespace, value 1.";
    NAMESPACE_PROCESSES = "namespace_processes", none, gauge, "Processes in the namespace.";
    NAMESPACE_USER_ROOT_MAPPED = "namespace_user_root_mapped_to_host", none, gauge, "1 when uid 0 in the user namespace is uid 0 outside it (container root is real root).";
    NET_RECEIVE = "namespace_network_receive", bytes, counter, "Bytes received by the interface, per network namespace.";
    NET_RECEIVE_PACKETS = "namespace_network_receive_packets", none, counter, "Packets received by the interface, per network namespace.";
    NET_RECEIVE_ERRORS = "namespace_network_receive_errors", none, counter, "Receive errors of the interface, per network namespace.";
    NET_RECEIVE_DROPS = "namespace_network_receive_drops", none, counter, "Received packets dropped by the interface, per network namespace.";
    NET_TRANSMIT = "namespace_network_transmit", bytes, counter, "Bytes transmitted by the interface, per network namespace.";
    NET_TRANSMIT_PACKETS = "namespace_network_transmit_packets", none, counter, "Packets transmitted by the interface, per network namespace.";
    NET_TRANSMIT_ERRORS = "namespace_network_transmit_errors", none, counter, "Transmit errors of the interface, per network namespace.";
    NET_TRANSMIT_DROPS = "namespace_network_transmit_drops", none, counter, "Transmitted packets dropped by the interface, per network namespace.";
    CGROUP_PROCESSES = "cgroup_processes", none, gauge, "Processes in the cgroup (the most specific of the v2 and v1 resource paths).";
    CGROUP_HOST_ROOT_PROCESSES = "cgroup_host_root_processes", none, gauge, "Processes in the cgroup whose real uid is 0 in the exporter's user namespace.";
    CGROUP_NAMESPACE_INFO = "cgroup_namespace_info", none, gauge, "One series per namespace seen among the cgroup's processes, value 1.";
    CGROUP_HOST_NAMESPACE = "cgroup_host_namespace", none, gauge, "1 when every process of the cgroup shares the host's namespace of this type.";
    NAMESPACE_SCAN_DURATION = "cgroup_psi_exporter_namespace_scan_duration", seconds, gauge, "Duration of the last procfs namespace scan.";
    NAMESPACE_READ_ERRORS = "cgroup_psi_exporter_namespace_read_errors", none, counter, "procfs reads that failed during namespace scans, by reason (vanished processes are not errors).";
    NAMESPACE_PROCESSES_CACHED = "cgroup_psi_exporter_namespace_processes_cached", none, gauge, "Processes held in the namespace scan cache.";

    // The exporter's own health (collector::selfmetrics).
    SCRAPE_DURATION = "cgroup_psi_exporter_scrape_duration", seconds, gauge, "Time the last collection of cgroup stats took.";
    SCRAPE_DEADLINE_EXCEEDED = "cgroup_psi_exporter_scrape_deadline_exceeded", none, counter, "Collections cut short by the scrape deadline.";
    CGROUPS_VANISHED = "cgroup_psi_exporter_cgroups_vanished", none, counter, "Cgroups removed between discovery and reading, dropped from that scrape.";
    FD_CACHE_FDS = "cgroup_psi_exporter_fd_cache_fds", none, gauge, "Stat files held open between scrapes and re-read with pread.";
    FD_CACHE_CAPACITY = "cgroup_psi_exporter_fd_cache_capacity", none, gauge, "Bound of the fd cache (metrics.fd_cache; shrinks on EMFILE).";
    FD_CACHE_BACKOFFS = "cgroup_psi_exporter_fd_cache_backoffs", none, counter, "Times the fd cache was shrunk because the process ran out of descriptors.";
    READ_ERRORS = "cgroup_psi_exporter_read_errors", none, counter, "Files that could not be read or parsed, by file name; the series is skipped.";
    CGROUPS = "cgroup_psi_exporter_cgroups", none, gauge, "Cgroups tracked, by hierarchy.";
    INOTIFY_WATCHES = "cgroup_psi_exporter_inotify_watches", none, gauge, "inotify watches held on cgroup directories.";
    DISCOVERY_FALLBACK = "cgroup_psi_exporter_discovery_fallback", none, gauge, "1 when the inotify watch limit was reached and discovery fell back to periodic rescans.";
    RESCANS = "cgroup_psi_exporter_rescans", none, counter, "Full walks of the cgroup hierarchies, by reason.";
    CGROUPS_SKIPPED = "cgroup_psi_exporter_cgroups_skipped", none, counter, "Cgroups not tracked, by reason.";
    REGISTRY_EVENTS = "cgroup_psi_exporter_registry_events", none, counter, "Cgroups added to and removed from the registry (per hierarchy).";
    BUILD_INFO = "cgroup_psi_exporter_build_info", none, gauge, "Build information; the value is always 1.";
    PROCESS_CPU = "process_cpu", seconds, counter, "Total user and system CPU time spent.";
    PROCESS_RESIDENT_MEMORY = "process_resident_memory", bytes, gauge, "Resident memory size.";
    PROCESS_VIRTUAL_MEMORY = "process_virtual_memory", bytes, gauge, "Virtual memory size.";
    PROCESS_START_TIME = "process_start_time", seconds, gauge, "Start time of the process since the Unix epoch.";
    PROCESS_OPEN_FDS = "process_open_fds", none, gauge, "Number of open file descriptors.";
    PROCESS_MAX_FDS = "process_max_fds", none, gauge, "Maximum number of open file descriptors.";

    // The kubelet client (kubernetes::client).
    KUBELET_UP = "cgroup_psi_exporter_kubelet_up", none, gauge, "1 when the last fetch of the kubelet pod list succeeded.";
    KUBELET_REFRESHES = "cgroup_psi_exporter_kubelet_refreshes", none, counter, "Fetches of the kubelet pod list, by outcome.";
    KUBELET_PODS = "cgroup_psi_exporter_kubelet_pods", none, gauge, "Pods in the cached kubelet pod list.";

    // The PSI agent (psi::metrics) and alert delivery (alerting).
    PSI_TRIGGER_EVENTS = "psi_trigger_events", none, counter, "PSI trigger notifications from the kernel, per rule and cgroup.";
    PSI_TRIGGERS_ARMED = "psi_triggers_armed", none, gauge, "PSI triggers currently armed, per rule.";
    PSI_TRIGGER_ERRORS = "psi_trigger_errors", none, counter, "PSI triggers that could not be armed or polled, by rule and reason.";
    PSI_ALERTS_FIRING = "psi_alerts_firing", none, gauge, "PSI alerts firing now, per rule.";
    PSI_ALERT_NOTIFICATIONS = "psi_alert_notifications", none, counter, "Alert notifications by receiver and outcome (success, retry, failure, dropped).";
    PSI_ALERT_QUEUE_LENGTH = "psi_alert_queue_length", none, gauge, "Alerts waiting to be delivered, per receiver.";
}

/// Families off unless named in `metrics.enable`: costly to read.
pub const OFF_BY_DEFAULT: &[&Desc] = &[&MEMORY_NUMA];

/// Whether `name`, as written in `metrics.disable`/`enable`, names `d`:
/// counters may be written with or without `_total`.
fn names(d: &Desc, name: &str) -> bool {
    d.exported.trim_end_matches("_total") == name.trim_end_matches("_total")
}

/// The family `name` (as written in the config) names, if any.
pub fn lookup(name: &str) -> Option<&'static Desc> {
    ALL.iter().copied().find(|d| names(d, name))
}

/// Which families are exported, resolved once from `metrics.disable` and
/// `metrics.enable`; every collector asks it through [`family`] and
/// [`register`], so any family can be turned off.
#[derive(Debug, Clone)]
pub struct Selection {
    off: Vec<&'static str>,
}

impl Default for Selection {
    /// The defaults: everything but [`OFF_BY_DEFAULT`].
    fn default() -> Selection {
        Selection::new(&[], &[])
    }
}

impl Selection {
    /// Unknown names are ignored here: config validation reports them.
    pub fn new(disable: &[String], enable: &[String]) -> Selection {
        let off = ALL
            .iter()
            .filter(|d| {
                disable.iter().any(|n| names(d, n))
                    || (OFF_BY_DEFAULT.iter().any(|o| o.exported == d.exported)
                        && !enable.iter().any(|n| names(d, n)))
            })
            .map(|d| d.exported)
            .collect();
        Selection { off }
    }

    /// Every family on, the off-by-default ones too (tests, benches).
    pub fn all_on() -> Selection {
        Selection { off: Vec::new() }
    }

    pub fn on(&self, d: &Desc) -> bool {
        !self.off.contains(&d.exported)
    }
}

/// The one way a collector writes a family: its descriptor, then one
/// series per item, or nothing when it is off or has no items (an absent
/// family, not an empty one).
pub fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    sel: &Selection,
    d: &Desc,
    series: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    write(enc, sel, d, series.into_iter().peekable(), false)
}

/// As [`family`], but the descriptor is written even with no series: for
/// the exporter's own counters by file or hierarchy, whose family says
/// "none so far".
pub fn declared_family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    sel: &Selection,
    d: &Desc,
    series: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    write(enc, sel, d, series.into_iter().peekable(), true)
}

fn write<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    sel: &Selection,
    d: &Desc,
    mut series: std::iter::Peekable<impl Iterator<Item = (L, M)>>,
    declare_empty: bool,
) -> fmt::Result {
    if !sel.on(d) || (series.peek().is_none() && !declare_empty) {
        return Ok(());
    }
    let mut fam = enc.encode_descriptor(d.name, d.help, d.unit.as_ref(), d.ty)?;
    for (labels, metric) in series {
        let me: MetricEncoder<'_> = fam.encode_family(&labels)?;
        metric.encode(me)?;
    }
    Ok(())
}

/// A family of one unlabelled series.
pub fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    sel: &Selection,
    d: &Desc,
    metric: M,
) -> fmt::Result {
    if !sel.on(d) {
        return Ok(());
    }
    let me = enc.encode_descriptor(d.name, d.help, d.unit.as_ref(), d.ty)?;
    metric.encode(me)
}

/// Registers a live metric (a `Family` the agent updates) under its row,
/// unless the family is off. prometheus-client adds the help's final `.`.
pub fn register<M>(registry: &mut Registry, sel: &Selection, d: &Desc, metric: M)
where
    M: prometheus_client::registry::Metric,
{
    debug_assert_eq!(metric.metric_type(), d.ty, "{}", d.exported);
    if !sel.on(d) {
        return;
    }
    let help = d.help.strip_suffix('.').unwrap_or(d.help);
    match &d.unit {
        Some(u) => registry.register_with_unit(d.name, help, u.clone(), metric),
        None => registry.register(d.name, help, metric),
    }
}

/// A value of a per-cgroup family, typed by its row: whole numbers (bytes,
/// counts) are written as integers, the rest as floats (`268435456`, not
/// `268435456.0`).
#[derive(Debug, Clone, Copy)]
pub struct Value(pub MetricType, pub f64);

impl EncodeMetric for Value {
    fn encode(&self, me: MetricEncoder<'_>) -> fmt::Result {
        let Value(ty, v) = *self;
        let whole = v.fract() == 0.0 && v.abs() < 9.0e15;
        match (ty, whole) {
            (MetricType::Counter, true) if v >= 0.0 => ConstCounter::new(v as u64).encode(me),
            (MetricType::Counter, _) => ConstCounter::new(v).encode(me),
            (_, true) => ConstGauge::new(v as i64).encode(me),
            (_, false) => ConstGauge::new(v).encode(me),
        }
    }

    fn metric_type(&self) -> MetricType {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_names_match_the_design_table() {
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
            "namespace_network_receive_bytes_total",
            "cgroup_host_namespace",
            "cgroup_psi_exporter_scrape_duration_seconds",
            "cgroup_psi_exporter_read_errors_total",
            "cgroup_psi_exporter_kubelet_refreshes_total",
            "process_cpu_seconds_total",
            "psi_trigger_events_total",
            "psi_alert_queue_length",
        ] {
            assert!(
                ALL.iter().any(|d| d.exported == want),
                "{want} missing from the table"
            );
        }
        let mut names: Vec<&str> = ALL.iter().map(|d| d.exported).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "duplicate family names");
    }

    /// Writes every row, one series each, as a collector would.
    #[derive(Debug)]
    struct EveryRow;

    impl prometheus_client::collector::Collector for EveryRow {
        fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
            for d in ALL {
                single(&mut enc, &Selection::all_on(), d, Value(d.ty, 1.0))?;
            }
            Ok(())
        }
    }

    #[test]
    fn the_exported_name_is_the_one_prometheus_client_writes() {
        let mut reg = Registry::default();
        reg.register_collector(Box::new(EveryRow));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        for d in ALL {
            assert!(
                out.contains(&format!("\n{} 1\n", d.exported)),
                "{} not written as {}:\n{out}",
                d.name,
                d.exported
            );
            assert!(
                d.help.ends_with('.'),
                "{}: help ends with a full stop",
                d.name
            );
        }
    }

    #[test]
    fn selection_turns_off_any_family_with_or_without_total() {
        let s = Selection::new(
            &[
                "namespace_info".into(),
                "cgroup_psi_exporter_read_errors".into(),
                "psi_trigger_events_total".into(),
            ],
            &[],
        );
        assert!(!s.on(&NAMESPACE_INFO));
        assert!(!s.on(&READ_ERRORS));
        assert!(!s.on(&PSI_TRIGGER_EVENTS));
        assert!(!s.on(&MEMORY_NUMA), "off by default");
        assert!(s.on(&NAMESPACES));
        assert!(s.on(&CPU_USAGE));
        let s = Selection::new(&[], &["cgroup_memory_numa_bytes".into()]);
        assert!(s.on(&MEMORY_NUMA));
        assert_eq!(
            lookup("cgroup_cpu_usage_seconds").map(|d| d.name),
            Some("cgroup_cpu_usage")
        );
        assert!(lookup("cgroup_cpu_usage").is_none());
    }
}
