//! The one place where a cgroup's kernel files become the numbers the
//! exporter reports: v1↔v2 mapping, unit conversion (µs, ns and USER_HZ to
//! seconds, pages to bytes with the real page size) and the host's files
//! for the root (`host.rs`). [`sample`] is written as a table: one line per
//! value, its sources in order, the first that has a value wins: v2, then
//! v1, then the host.
//!
//! What is read comes from [`crate::cgroupfs::files`]: parser types in
//! kernel units, nothing converted.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cgroupfs::files::{CgroupFiles, File, FileSet, Hugetlb, Plan, SkipRule};
use crate::cgroupfs::parse::{self, BlkioEntry, DevNum, DeviceLimits, Limit, NumaRows, Psi};

use super::host::HostFiles;

/// An optional value in `size_of::<T>() + 1` bytes, unaligned: an
/// `Option<u64>` or `Option<f64>` takes 16 (the flag padded to the
/// value's alignment), and a row holds 28 of them. Packed, the rows of a
/// 2,000-cgroup scrape (all alive while the exposition is encoded) are
/// ~0.4 MiB smaller. Read by value ([`Maybe::get`]): a field of a packed
/// struct is never borrowed, so no unaligned reference is ever made.
#[derive(Clone, Copy, Default)]
#[repr(C, packed)]
pub struct Maybe<T: Copy + Default> {
    value: T,
    some: bool,
}

impl<T: Copy + Default> Maybe<T> {
    pub fn get(self) -> Option<T> {
        let (value, some) = (self.value, self.some);
        some.then_some(value)
    }
}

impl<T: Copy + Default> From<Option<T>> for Maybe<T> {
    fn from(v: Option<T>) -> Self {
        match v {
            Some(value) => Maybe { value, some: true },
            None => Maybe::default(),
        }
    }
}

impl<T: Copy + Default + PartialEq> PartialEq for Maybe<T> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<T: Copy + Default + PartialEq> PartialEq<Option<T>> for Maybe<T> {
    fn eq(&self, other: &Option<T>) -> bool {
        self.get() == *other
    }
}

impl<T: Copy + Default + std::fmt::Debug> std::fmt::Debug for Maybe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IoDevice {
    pub dev: DevNum,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    pub reads: Option<u64>,
    pub writes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IoLimit {
    pub dev: DevNum,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pressure {
    /// µs of `some` stall (waiting).
    pub some_total: Maybe<u64>,
    /// µs of `full` stall (stalled).
    pub full_total: Maybe<u64>,
}

impl From<Psi> for Pressure {
    fn from(p: Psi) -> Pressure {
        Pressure {
            some_total: p.some.map(|l| l.total).into(),
            full_total: p.full.map(|l| l.total).into(),
        }
    }
}

/// Everything reported about one cgroup in one scrape. `None` = absent
/// series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    pub cpu_usage_seconds: Maybe<f64>,
    pub cpu_user_seconds: Maybe<f64>,
    pub cpu_system_seconds: Maybe<f64>,
    pub cpu_periods: Maybe<u64>,
    pub cpu_throttled_periods: Maybe<u64>,
    pub cpu_throttled_seconds: Maybe<f64>,
    pub cpu_limit_cores: Maybe<f64>,
    pub cpu_weight: Maybe<u64>,
    pub cpu_shares: Maybe<u64>,
    pub cpuset_cpus: Maybe<u32>,

    pub memory_usage: Maybe<u64>,
    pub memory_working_set: Maybe<u64>,
    pub memory_peak: Maybe<u64>,
    pub memory_limit: Maybe<u64>,
    pub memory_high: Maybe<u64>,
    pub memory_low: Maybe<u64>,
    pub memory_min: Maybe<u64>,
    /// `(stat, bytes)` with the v2 names (v1 names are mapped).
    pub memory_stat: Vec<(&'static str, u64)>,
    pub swap_usage: Maybe<u64>,
    pub swap_limit: Maybe<u64>,
    /// `(event, count)`.
    pub memory_events: Vec<(&'static str, u64)>,
    /// `(node, stat, bytes)`.
    pub memory_numa: Vec<(u32, String, u64)>,

    pub io: Vec<IoDevice>,
    pub io_weight: Maybe<u64>,
    pub io_limits: Vec<IoLimit>,

    pub pids_current: Maybe<u64>,
    pub pids_limit: Maybe<u64>,
    /// `(pagesize, usage, limit)`.
    pub hugetlb: Vec<(Arc<str>, Option<u64>, Option<u64>)>,

    pub pressure_cpu: Pressure,
    pub pressure_memory: Pressure,
    pub pressure_io: Pressure,

    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

/// USER_HZ: the unit of v1 `cpuacct.stat`. Fixed at 100 by the kernel ABI
/// on every architecture Linux exposes it to userspace.
const USER_HZ: f64 = 100.0;

fn us(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64 / 1e6)
}

fn ns(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64 / 1e9)
}

fn ticks(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64 / USER_HZ)
}

fn lim(l: Option<Limit>) -> Option<u64> {
    l.and_then(Limit::value)
}

/// Files read in every cgroup whatever is enabled: each hierarchy's probe,
/// whose absence means the cgroup is gone.
pub const PROBES: FileSet = FileSet::of(&[File::CpuStat, File::CpuacctUsage, File::MemoryUsage]);

/// Files not read when what was read before them already gives their
/// values: cpuacct in hybrid mode (unified/cpu.stat has usage, user and
/// system, more precisely), fallbacks for older kernels, and the v1 IO
/// source order (BFQ when it lists a device, as runc does, else throttle).
pub const SKIP_WHEN: &[SkipRule] = &[
    (File::CpuacctUsage, v2_cpu_complete),
    (File::CpuacctUsageUser, v2_cpu_complete),
    (File::CpuacctUsageSys, v2_cpu_complete),
    (File::CpuacctStat, |f| {
        v2_cpu_complete(f) || f.cpuacct_usage_user.is_some() || f.cpuacct_usage_sys.is_some()
    }),
    (File::CpusetCpus, |f| f.cpuset_effective_cpus.is_some()),
    (File::BfqServiceBytes, |f| !bfq_lists_a_device(f)),
    (File::ThrottleServiceBytesRecursive, bfq_lists_a_device),
    (File::ThrottleServiceBytes, |f| {
        bfq_lists_a_device(f) || f.throttle_service_bytes_recursive.is_some()
    }),
    (File::ThrottleServicedRecursive, bfq_lists_a_device),
    (File::ThrottleServiced, |f| {
        bfq_lists_a_device(f) || f.throttle_serviced_recursive.is_some()
    }),
    (File::BlkioWeight, |f| f.bfq_weight.is_some()),
];

/// The v1 BFQ counters, left out of a scrape when the blkio root's BFQ
/// file lists no device (no disk has BFQ as its scheduler).
pub const BFQ_STATS: FileSet = FileSet::of(&[File::BfqServiced, File::BfqServiceBytes]);

/// The v1 IO files the root does not read when `/proc/diskstats` gives
/// the host's IO.
pub const ROOT_V1_IO: FileSet = FileSet::of(&[
    File::BfqServiced,
    File::BfqServiceBytes,
    File::ThrottleServiceBytesRecursive,
    File::ThrottleServiceBytes,
    File::ThrottleServicedRecursive,
    File::ThrottleServiced,
]);

/// The plan for the enabled families' files.
pub fn plan(files: FileSet) -> Plan {
    Plan {
        files: files.union(PROBES),
        skip_when: SKIP_WHEN,
    }
}

fn v2_cpu_complete(f: &CgroupFiles) -> bool {
    f.cpu_stat
        .is_some_and(|c| c.usage_usec.is_some() && c.user_usec.is_some() && c.system_usec.is_some())
}

fn bfq_lists_a_device(f: &CgroupFiles) -> bool {
    f.bfq_serviced.as_ref().is_some_and(|v| !v.is_empty())
}

/// v1 `memory.stat` hierarchical keys and the v2 name of the same
/// quantity, so one query works on both.
const MEMORY_STAT_V1_AS_V2: &[(&str, &str)] = &[
    ("total_rss", "anon"),
    ("total_cache", "file"),
    ("total_shmem", "shmem"),
    ("total_mapped_file", "file_mapped"),
    ("total_dirty", "file_dirty"),
    ("total_writeback", "file_writeback"),
    ("total_rss_huge", "anon_thp"),
    ("total_inactive_anon", "inactive_anon"),
    ("total_active_anon", "active_anon"),
    ("total_inactive_file", "inactive_file"),
    ("total_active_file", "active_file"),
    ("total_unevictable", "unevictable"),
];

/// One cgroup's files (and, for the root, the host's) as reported values.
pub fn sample(f: &CgroupFiles, host: &HostFiles, page_size: u64) -> CgroupStats {
    let cpu = f.cpu_stat.unwrap_or_default();
    let cpu1 = f.cpu_stat_v1.unwrap_or_default();
    let acct = f.cpuacct_stat.unwrap_or_default();
    // v1 takes user and system from cpuacct.usage_{user,sys} when either
    // exists, else from cpuacct.stat.
    let ns_split = f.cpuacct_usage_user.is_some() || f.cpuacct_usage_sys.is_some();
    let user_or_system = |usec, nsec, ticks_v| {
        us(usec)
            .or(if ns_split { ns(nsec) } else { ticks(ticks_v) })
            .into()
    };
    let memory_usage = f.memory_current.or(f.memory_usage);
    let memory_limit_v1 = lim(f.memory_limit);
    let v2_stat = f.memory_stat.as_ref().filter(|s| !s.values.is_empty());
    CgroupStats {
        cpu_usage_seconds: us(cpu.usage_usec).or(ns(f.cpuacct_usage)).into(),
        cpu_user_seconds: user_or_system(cpu.user_usec, f.cpuacct_usage_user, acct.user),
        cpu_system_seconds: user_or_system(cpu.system_usec, f.cpuacct_usage_sys, acct.system),
        cpu_periods: cpu.nr_periods.or(cpu1.nr_periods).into(),
        cpu_throttled_periods: cpu.nr_throttled.or(cpu1.nr_throttled).into(),
        cpu_throttled_seconds: us(cpu.throttled_usec).or(ns(cpu1.throttled_time)).into(),
        cpu_limit_cores: f
            .cpu_max
            .and_then(|m| quota_cores(Some(m.quota), Some(m.period)))
            .or(quota_cores(f.cfs_quota, f.cfs_period))
            .into(),
        cpu_weight: f.cpu_weight.into(),
        cpu_shares: f.cpu_shares.into(),
        cpuset_cpus: f
            .cpuset_cpus_effective
            .or(f.cpuset_effective_cpus)
            .or(f.cpuset_cpus)
            .into(),

        memory_usage: memory_usage.into(),
        memory_working_set: working_set(memory_usage, v2_stat.and_then(|s| s.get("inactive_file")))
            .or(working_set(
                memory_usage,
                f.memory_stat_v1
                    .as_ref()
                    .and_then(|s| s.get("total_inactive_file")),
            ))
            .into(),
        memory_peak: f.memory_peak.or(f.memory_max_usage).into(),
        memory_limit: lim(f.memory_max).or(memory_limit_v1).into(),
        memory_high: lim(f.memory_high).into(),
        // Kernel quirk: v1 has no memory.high; the soft limit is what runc
        // maps to v2's memory.low when converting, so it lands there.
        memory_low: lim(f.memory_low).or(lim(f.memory_soft_limit)).into(),
        memory_min: lim(f.memory_min).into(),
        memory_stat: match (v2_stat, &f.memory_stat_v1) {
            (Some(s), _) => s.values.clone(),
            (None, Some(s)) => {
                // Sized up front: collected from a `filter_map`, the rows
                // of 2,000 cgroups had ~200 KiB of spare capacity at the
                // scrape's peak.
                let mut v = Vec::with_capacity(s.values.len());
                v.extend(s.values.iter().filter_map(|(k, v)| {
                    MEMORY_STAT_V1_AS_V2
                        .iter()
                        .find(|(k1, _)| k1 == k)
                        .map(|(_, name)| (*name, *v))
                }));
                v
            }
            (None, None) => Vec::new(),
        },
        // memsw = memory + swap; absent unless swap accounting is on.
        swap_usage: f
            .memory_swap_current
            .or(f
                .memsw_usage
                .zip(memory_usage)
                .map(|(m, u)| m.saturating_sub(u)))
            .into(),
        swap_limit: lim(f.memory_swap_max)
            .or(v1_swap_limit(lim(f.memsw_limit), memory_limit_v1))
            .into(),
        memory_events: memory_events(f, host),
        memory_numa: match (&f.memory_numa_stat, &f.memory_numa_stat_v1) {
            (Some(rows), _) => numa_bytes(rows, 1),
            (None, Some(rows)) => numa_bytes(rows, page_size),
            (None, None) => Vec::new(),
        },

        io: io(f, host),
        io_weight: f
            .io_weight
            .as_ref()
            .and_then(|w| w.default)
            .or(f
                .bfq_weight
                .as_ref()
                .or(f.blkio_weight.as_ref())
                .and_then(|w| w.default))
            .into(),
        io_limits: io_limits(f),

        pids_current: f.pids_current.or(f.pids_current_v1).into(),
        pids_limit: lim(f.pids_max).or(lim(f.pids_max_v1)).into(),
        hugetlb: f
            .hugetlb
            .iter()
            .chain(&f.hugetlb_v1)
            .filter_map(hugetlb)
            .collect(),

        pressure_cpu: pressure(f.cpu_pressure, host.pressure[0]),
        pressure_memory: pressure(f.memory_pressure, host.pressure[1]),
        pressure_io: pressure(f.io_pressure, host.pressure[2]),

        populated: f.cgroup_events.and_then(|e| e.populated),
        frozen: f
            .cgroup_events
            .and_then(|e| e.frozen)
            .or(f.freezer_state.map(|s| s == parse::FreezerState::Frozen)),
    }
}

/// Cores from a CFS quota and period; `max`/`-1` or a zero period: none.
fn quota_cores(quota: Option<Limit>, period: Option<u64>) -> Option<f64> {
    match (quota, period) {
        (Some(Limit::Value(q)), Some(p)) if p > 0 => Some(q as f64 / p as f64),
        _ => None,
    }
}

/// Usage minus inactive file cache: what the kubelet evicts on.
fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    usage.zip(inactive_file).map(|(u, i)| u.saturating_sub(i))
}

/// The swap a v1 cgroup may use: `memsw.limit - memory.limit` (memsw
/// counts memory plus swap). The kernel refuses a memsw limit below the
/// memory limit (EINVAL, cgroup-v1/memory.rst 2.4), so a memsw value below
/// it is a read that raced a pair of writes, not a limit: absent, as is an
/// unlimited memsw or memory limit. Equal limits are a real 0: no swap.
pub fn v1_swap_limit(memsw_limit: Option<u64>, memory_limit: Option<u64>) -> Option<u64> {
    memsw_limit?.checked_sub(memory_limit?)
}

/// `memory.numa_stat` rows in bytes: v2 gives bytes (`unit` 1), v1 pages.
pub fn numa_bytes(rows: &NumaRows, unit: u64) -> Vec<(u32, String, u64)> {
    let mut out = Vec::new();
    for (stat, nodes) in rows {
        for (node, v) in nodes {
            out.push((*node, stat.to_string(), v.saturating_mul(unit)));
        }
    }
    out
}

/// v2 `memory.events`; v1: `failcnt` (hits of the limit: v2's `max`) and
/// `oom_control`'s `oom_kill`; the root: the host's `oom_kill`.
fn memory_events(f: &CgroupFiles, host: &HostFiles) -> Vec<(&'static str, u64)> {
    let present = |pairs: &[(&'static str, Option<u64>)]| {
        // Room for the host's `oom_kill` below, and no more: collected
        // from a `filter_map`, two events took room for four.
        let mut ev = Vec::with_capacity(pairs.len() + 1);
        ev.extend(pairs.iter().filter_map(|&(k, v)| v.map(|v| (k, v))));
        ev
    };
    let mut ev = match &f.memory_events {
        Some(e) => present(&[
            ("low", e.low),
            ("high", e.high),
            ("max", e.max),
            ("oom", e.oom),
            ("oom_kill", e.oom_kill),
            ("oom_group_kill", e.oom_group_kill),
        ]),
        None => present(&[
            ("max", f.memory_failcnt),
            ("oom_kill", f.memory_oom_control.and_then(|o| o.oom_kill)),
        ]),
    };
    if let Some(k) = host.oom_kill {
        if !ev.iter().any(|(e, _)| *e == "oom_kill") {
            ev.push(("oom_kill", k));
        }
    }
    ev
}

/// v2 `io.stat`; the host's disks for the root; v1 blkio (BFQ or
/// throttle, see [`SKIP_WHEN`]) per device, sorted.
fn io(f: &CgroupFiles, host: &HostFiles) -> Vec<IoDevice> {
    if let Some(entries) = &f.io_stat {
        return entries
            .iter()
            .map(|e| IoDevice {
                dev: e.dev,
                read_bytes: e.rbytes,
                write_bytes: e.wbytes,
                reads: e.rios,
                writes: e.wios,
            })
            .collect();
    }
    if let Some(disks) = host.disks.as_ref().filter(|d| !d.is_empty()) {
        return disks.clone();
    }
    let (bytes, ops) = if bfq_lists_a_device(f) {
        (&f.bfq_service_bytes, &f.bfq_serviced)
    } else {
        (
            f.throttle_service_bytes_recursive
                .as_ref()
                .map_or(&f.throttle_service_bytes, |_| {
                    &f.throttle_service_bytes_recursive
                }),
            f.throttle_serviced_recursive
                .as_ref()
                .map_or(&f.throttle_serviced, |_| &f.throttle_serviced_recursive),
        )
    };
    let mut devs: HashMap<DevNum, IoDevice> = HashMap::new();
    let mut merge = |rows: &Option<Vec<BlkioEntry>>, set: fn(&mut IoDevice, &BlkioEntry)| {
        for e in rows.iter().flatten() {
            let d = devs.entry(e.dev).or_insert_with(|| IoDevice {
                dev: e.dev,
                ..IoDevice::default()
            });
            set(d, e);
        }
    };
    merge(bytes, |d, e| {
        (d.read_bytes, d.write_bytes) = (e.read, e.write)
    });
    merge(ops, |d, e| (d.reads, d.writes) = (e.read, e.write));
    let mut io: Vec<IoDevice> = devs.into_values().collect();
    io.sort_by_key(|d| d.dev);
    io
}

/// v2 `io.max`; v1 the four `blkio.throttle.*_device` files, per device.
fn io_limits(f: &CgroupFiles) -> Vec<IoLimit> {
    if let Some(m) = &f.io_max {
        return m
            .iter()
            .map(|e| IoLimit {
                dev: e.dev,
                read_bps: e.rbps.value(),
                write_bps: e.wbps.value(),
                read_iops: e.riops.value(),
                write_iops: e.wiops.value(),
            })
            .collect();
    }
    let mut limits: HashMap<DevNum, IoLimit> = HashMap::new();
    type Slot = fn(&mut IoLimit) -> &mut Option<u64>;
    let files: [(&Option<DeviceLimits>, Slot); 4] = [
        (&f.throttle_read_bps, |l| &mut l.read_bps),
        (&f.throttle_write_bps, |l| &mut l.write_bps),
        (&f.throttle_read_iops, |l| &mut l.read_iops),
        (&f.throttle_write_iops, |l| &mut l.write_iops),
    ];
    for (rows, slot) in files {
        for (dev, v) in rows.iter().flatten() {
            let l = limits.entry(*dev).or_insert_with(|| IoLimit {
                dev: *dev,
                ..IoLimit::default()
            });
            *slot(l) = Some(*v);
        }
    }
    let mut limits: Vec<IoLimit> = limits.into_values().collect();
    limits.sort_by_key(|l| l.dev);
    limits
}

fn hugetlb(h: &Hugetlb) -> Option<(Arc<str>, Option<u64>, Option<u64>)> {
    let limit = lim(h.limit);
    (h.usage.is_some() || limit.is_some()).then(|| (h.size.clone(), h.usage, limit))
}

/// The cgroup's pressure file, else (the root) the host's.
fn pressure(cgroup: Option<Psi>, host: Option<Psi>) -> Pressure {
    cgroup.or(host).map(Pressure::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_value_gives_back_what_it_was_made_of_in_fewer_bytes() {
        for v in [None, Some(0u64), Some(1), Some(u64::MAX)] {
            let m = Maybe::from(v);
            assert_eq!(m.get(), v);
            assert_eq!(m, v);
            assert_eq!(format!("{m:?}"), format!("{v:?}"));
        }
        let nan = Maybe::from(Some(f64::NAN)).get();
        assert!(
            nan.is_some_and(f64::is_nan),
            "a NaN is a value, not an absence"
        );
        assert_eq!(Maybe::<f64>::default().get(), None);
        assert_eq!(Maybe::from(Some(7u32)).get(), Some(7));
        // What the packing is for: 9 bytes against 16, and the row shrinks.
        assert_eq!(std::mem::size_of::<Maybe<u64>>(), 9);
        assert_eq!(std::mem::size_of::<Option<u64>>(), 16);
        assert!(std::mem::size_of::<CgroupStats>() <= 432);
    }

    #[test]
    fn v1_numa_pages_are_converted_with_the_page_size_given() {
        let rows = parse::parse_numa_stat(
            "total=3 N0=1 N1=2\nfile=2 N0=2 N1=0\nhierarchical_total=3 N0=1 N1=2\n",
        )
        .expect("parses")
        .into_owned();
        let f = CgroupFiles {
            memory_numa_stat_v1: Some(rows),
            ..CgroupFiles::default()
        };
        let at_64k = sample(&f, &HostFiles::default(), 65536).memory_numa;
        assert_eq!(
            at_64k,
            vec![
                (0, "total".to_string(), 65536),
                (1, "total".to_string(), 131072),
                (0, "file".to_string(), 131072),
                (1, "file".to_string(), 0),
            ]
        );
        assert_eq!(
            sample(&f, &HostFiles::default(), 4096).memory_numa[1].2,
            8192
        );
        // v2 values are bytes already, whatever the page size.
        let v2 = CgroupFiles {
            memory_numa_stat: parse::parse_numa_stat("anon N0=4096 N1=0\n")
                .map(parse::NumaStat::into_owned)
                .ok(),
            ..CgroupFiles::default()
        };
        assert_eq!(
            sample(&v2, &HostFiles::default(), 65536).memory_numa[0].2,
            4096
        );
    }

    #[test]
    fn v1_swap_limit_needs_memsw_at_or_above_the_memory_limit() {
        assert_eq!(v1_swap_limit(Some(300), Some(200)), Some(100));
        assert_eq!(v1_swap_limit(Some(200), Some(200)), Some(0));
        assert_eq!(v1_swap_limit(Some(100), Some(200)), None);
        assert_eq!(v1_swap_limit(None, Some(200)), None);
        assert_eq!(v1_swap_limit(Some(300), None), None);
    }

    #[test]
    fn v2_values_win_over_v1_and_units_become_seconds() {
        let f = CgroupFiles {
            cpu_stat: parse::parse_cpu_stat(
                "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
            )
            .ok(),
            cpuacct_usage: Some(9_000_000_000),
            cpu_stat_v1: parse::parse_cpu_stat_v1(
                "nr_periods 4\nnr_throttled 2\nthrottled_time 250000000\n",
            )
            .ok(),
            cpuacct_stat: parse::parse_cpuacct_stat("user 70\nsystem 30\n").ok(),
            ..CgroupFiles::default()
        };
        let s = sample(&f, &HostFiles::default(), 4096);
        assert_eq!(s.cpu_usage_seconds, Some(1.5));
        assert_eq!(s.cpu_user_seconds, Some(1.0));
        assert_eq!(s.cpu_periods, Some(4));
        assert_eq!(s.cpu_throttled_seconds, Some(0.25));
        let v1 = CgroupFiles {
            cpuacct_stat: f.cpuacct_stat,
            ..CgroupFiles::default()
        };
        assert_eq!(
            sample(&v1, &HostFiles::default(), 4096).cpu_user_seconds,
            Some(0.7)
        );
    }
}
