//! Every kernel file a scrape may read, in one table: its name, where it
//! lives (the v2 controller that must be enabled for it, or the v1
//! controller whose hierarchy holds it), whether the root has it, and the
//! parser that reads it. From the table come [`File`] (the file's id, for
//! plans and the absent-file memo), [`CgroupFiles`] (one cgroup's parsed
//! files, in kernel units) and the reader's dispatch.
//!
//! Nothing here knows a metric: which files a scrape needs, and what the
//! values mean, is the collector's business.

use std::sync::Arc;

use super::layout::Controller;
use super::parse::{self, Limit, NumaRows, ParseError};

/// Where a file lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// cgroup v2; `Some(c)`: only where `cgroup.controllers` lists `c`.
    V2(Option<Controller>),
    /// cgroup v1, in the hierarchy of this controller.
    V1(Controller),
}

/// A file's row of the table.
#[derive(Debug, Clone, Copy)]
pub struct FileInfo {
    pub name: &'static str,
    pub home: Home,
    /// Read in the root cgroup too (v2 files that "exist on non-root
    /// cgroups" only are not; nor are v1 limits, which the root does not
    /// enforce).
    pub root: bool,
    /// In every cgroup of its hierarchy: its absence means the cgroup was
    /// removed, and reading it tells the absent-file memo the cgroup is
    /// live.
    pub probe: bool,
}

/// v1 unlimited and v2 `max` are both `Limit::Max`.
fn limit(t: &str) -> Result<Limit, ParseError> {
    parse::parse_limit(t)
}

fn numa(t: &str) -> Result<NumaRows, ParseError> {
    parse::parse_numa_stat(t).map(parse::NumaStat::into_owned)
}

/// One hugetlb page size's pair of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hugetlb {
    pub size: Arc<str>,
    pub usage: Option<u64>,
    pub limit: Option<Limit>,
}

macro_rules! kernel_files {
    ($( $variant:ident $field:ident $name:literal $home:expr, root $root:literal, probe $probe:literal, $parse:path => $ty:ty; )*) => {
        /// A kernel file, by interface (v1 and v2 files of the same name
        /// are different files).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum File {
            $($variant,)*
            /// `hugetlb.<size>.current` (v2), one per page size.
            HugetlbCurrent,
            /// `hugetlb.<size>.max` (v2).
            HugetlbMax,
            /// `hugetlb.<size>.usage_in_bytes` (v1).
            HugetlbUsageV1,
            /// `hugetlb.<size>.limit_in_bytes` (v1).
            HugetlbLimitV1,
        }

        /// Every file in read order: per hierarchy, a file is read after
        /// the files above it (a fallback after what it falls back from).
        pub const ALL: &[File] = &[
            $(File::$variant,)*
            File::HugetlbCurrent,
            File::HugetlbMax,
            File::HugetlbUsageV1,
            File::HugetlbLimitV1,
        ];

        impl File {
            #[inline]
            pub const fn info(self) -> FileInfo {
                match self {
                    $(File::$variant => FileInfo { name: $name, home: $home, root: $root, probe: $probe },)*
                    File::HugetlbCurrent => FileInfo { name: "hugetlb.current", home: Home::V2(Some(Controller::Hugetlb)), root: false, probe: false },
                    File::HugetlbMax => FileInfo { name: "hugetlb.max", home: Home::V2(Some(Controller::Hugetlb)), root: false, probe: false },
                    File::HugetlbUsageV1 => FileInfo { name: "hugetlb.usage_in_bytes", home: Home::V1(Controller::Hugetlb), root: true, probe: false },
                    File::HugetlbLimitV1 => FileInfo { name: "hugetlb.limit_in_bytes", home: Home::V1(Controller::Hugetlb), root: true, probe: false },
                }
            }
        }

        /// One cgroup's files as read in one scrape, parsed, in kernel
        /// units. `None`: not read (not planned, absent, or unparsable:
        /// the last is counted by the reader).
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct CgroupFiles {
            $(pub $field: Option<$ty>,)*
            pub hugetlb: Vec<Hugetlb>,
            pub hugetlb_v1: Vec<Hugetlb>,
        }

        impl CgroupFiles {
            /// Parses `text` as `file` into its field.
            pub(super) fn store(&mut self, file: File, text: &str) -> Result<(), ParseError> {
                match file {
                    $(File::$variant => self.$field = Some($parse(text)?),)*
                    File::HugetlbCurrent | File::HugetlbMax | File::HugetlbUsageV1 | File::HugetlbLimitV1 => {}
                }
                Ok(())
            }

            /// Whether `file` was read and parsed.
            pub fn has(&self, file: File) -> bool {
                match file {
                    $(File::$variant => self.$field.is_some(),)*
                    File::HugetlbCurrent | File::HugetlbMax => !self.hugetlb.is_empty(),
                    File::HugetlbUsageV1 | File::HugetlbLimitV1 => !self.hugetlb_v1.is_empty(),
                }
            }
        }
    };
}

use Controller as C;

kernel_files! {
    // v2, in the order of a cgroup directory's listing by controller.
    CpuStat cpu_stat "cpu.stat" Home::V2(None), root true, probe true, parse::parse_cpu_stat => parse::CpuStat;
    CpuMax cpu_max "cpu.max" Home::V2(Some(C::Cpu)), root false, probe false, parse::parse_cpu_max => parse::CpuMax;
    CpuWeight cpu_weight "cpu.weight" Home::V2(Some(C::Cpu)), root false, probe false, parse::parse_u64 => u64;
    CpusetCpusEffective cpuset_cpus_effective "cpuset.cpus.effective" Home::V2(Some(C::Cpuset)), root true, probe false, parse::parse_cpuset_count => u32;
    MemoryCurrent memory_current "memory.current" Home::V2(Some(C::Memory)), root true, probe false, parse::parse_u64 => u64;
    MemoryPeak memory_peak "memory.peak" Home::V2(Some(C::Memory)), root false, probe false, parse::parse_u64 => u64;
    MemoryMax memory_max "memory.max" Home::V2(Some(C::Memory)), root false, probe false, limit => Limit;
    MemoryHigh memory_high "memory.high" Home::V2(Some(C::Memory)), root false, probe false, limit => Limit;
    MemoryLow memory_low "memory.low" Home::V2(Some(C::Memory)), root false, probe false, limit => Limit;
    MemoryMin memory_min "memory.min" Home::V2(Some(C::Memory)), root false, probe false, limit => Limit;
    MemorySwapCurrent memory_swap_current "memory.swap.current" Home::V2(Some(C::Memory)), root false, probe false, parse::parse_u64 => u64;
    MemorySwapMax memory_swap_max "memory.swap.max" Home::V2(Some(C::Memory)), root false, probe false, limit => Limit;
    MemoryStat memory_stat "memory.stat" Home::V2(Some(C::Memory)), root true, probe false, parse::parse_memory_stat => parse::MemoryStat;
    MemoryEvents memory_events "memory.events" Home::V2(Some(C::Memory)), root false, probe false, parse::parse_memory_events => parse::MemoryEvents;
    MemoryNumaStat memory_numa_stat "memory.numa_stat" Home::V2(Some(C::Memory)), root true, probe false, numa => NumaRows;
    IoStat io_stat "io.stat" Home::V2(Some(C::Blkio)), root true, probe false, parse::parse_io_stat => Vec<parse::IoStatEntry>;
    IoWeight io_weight "io.weight" Home::V2(Some(C::Blkio)), root false, probe false, parse::parse_io_weight => parse::IoWeight;
    IoMax io_max "io.max" Home::V2(Some(C::Blkio)), root false, probe false, parse::parse_io_max => Vec<parse::IoMaxEntry>;
    PidsCurrent pids_current "pids.current" Home::V2(Some(C::Pids)), root false, probe false, parse::parse_u64 => u64;
    PidsMax pids_max "pids.max" Home::V2(Some(C::Pids)), root false, probe false, limit => Limit;
    CpuPressure cpu_pressure "cpu.pressure" Home::V2(None), root true, probe false, parse::parse_psi => parse::Psi;
    MemoryPressure memory_pressure "memory.pressure" Home::V2(None), root true, probe false, parse::parse_psi => parse::Psi;
    IoPressure io_pressure "io.pressure" Home::V2(None), root true, probe false, parse::parse_psi => parse::Psi;
    CgroupEvents cgroup_events "cgroup.events" Home::V2(None), root false, probe false, parse::parse_cgroup_events => parse::CgroupEvents;

    // v1, per controller.
    CpuacctUsage cpuacct_usage "cpuacct.usage" Home::V1(C::Cpuacct), root true, probe true, parse::parse_u64 => u64;
    CpuacctUsageUser cpuacct_usage_user "cpuacct.usage_user" Home::V1(C::Cpuacct), root true, probe false, parse::parse_u64 => u64;
    CpuacctUsageSys cpuacct_usage_sys "cpuacct.usage_sys" Home::V1(C::Cpuacct), root true, probe false, parse::parse_u64 => u64;
    CpuacctStat cpuacct_stat "cpuacct.stat" Home::V1(C::Cpuacct), root true, probe false, parse::parse_cpuacct_stat => parse::CpuacctStat;
    CpuStatV1 cpu_stat_v1 "cpu.stat" Home::V1(C::Cpu), root true, probe false, parse::parse_cpu_stat_v1 => parse::CpuStatV1;
    CfsQuota cfs_quota "cpu.cfs_quota_us" Home::V1(C::Cpu), root false, probe false, limit => Limit;
    CfsPeriod cfs_period "cpu.cfs_period_us" Home::V1(C::Cpu), root false, probe false, parse::parse_u64 => u64;
    CpuShares cpu_shares "cpu.shares" Home::V1(C::Cpu), root true, probe false, parse::parse_u64 => u64;
    CpusetEffectiveCpus cpuset_effective_cpus "cpuset.effective_cpus" Home::V1(C::Cpuset), root true, probe false, parse::parse_cpuset_count => u32;
    CpusetCpus cpuset_cpus "cpuset.cpus" Home::V1(C::Cpuset), root true, probe false, parse::parse_cpuset_count => u32;
    MemoryUsage memory_usage "memory.usage_in_bytes" Home::V1(C::Memory), root true, probe true, parse::parse_u64 => u64;
    MemoryStatV1 memory_stat_v1 "memory.stat" Home::V1(C::Memory), root true, probe false, parse::parse_memory_stat_v1 => parse::MemoryStat;
    MemoryMaxUsage memory_max_usage "memory.max_usage_in_bytes" Home::V1(C::Memory), root false, probe false, parse::parse_u64 => u64;
    MemoryLimit memory_limit "memory.limit_in_bytes" Home::V1(C::Memory), root false, probe false, limit => Limit;
    MemorySoftLimit memory_soft_limit "memory.soft_limit_in_bytes" Home::V1(C::Memory), root false, probe false, limit => Limit;
    MemswUsage memsw_usage "memory.memsw.usage_in_bytes" Home::V1(C::Memory), root false, probe false, parse::parse_u64 => u64;
    MemswLimit memsw_limit "memory.memsw.limit_in_bytes" Home::V1(C::Memory), root false, probe false, limit => Limit;
    MemoryFailcnt memory_failcnt "memory.failcnt" Home::V1(C::Memory), root false, probe false, parse::parse_u64 => u64;
    MemoryOomControl memory_oom_control "memory.oom_control" Home::V1(C::Memory), root false, probe false, parse::parse_oom_control => parse::OomControl;
    MemoryNumaStatV1 memory_numa_stat_v1 "memory.numa_stat" Home::V1(C::Memory), root false, probe false, numa => NumaRows;
    BfqServiced bfq_serviced "blkio.bfq.io_serviced_recursive" Home::V1(C::Blkio), root true, probe false, parse::parse_blkio_throttle => Vec<parse::BlkioEntry>;
    BfqServiceBytes bfq_service_bytes "blkio.bfq.io_service_bytes_recursive" Home::V1(C::Blkio), root true, probe false, parse::parse_blkio_throttle => Vec<parse::BlkioEntry>;
    ThrottleServiceBytesRecursive throttle_service_bytes_recursive "blkio.throttle.io_service_bytes_recursive" Home::V1(C::Blkio), root true, probe false, parse::parse_blkio_throttle => Vec<parse::BlkioEntry>;
    ThrottleServiceBytes throttle_service_bytes "blkio.throttle.io_service_bytes" Home::V1(C::Blkio), root true, probe false, parse::parse_blkio_throttle => Vec<parse::BlkioEntry>;
    ThrottleServicedRecursive throttle_serviced_recursive "blkio.throttle.io_serviced_recursive" Home::V1(C::Blkio), root true, probe false, parse::parse_blkio_throttle => Vec<parse::BlkioEntry>;
    ThrottleServiced throttle_serviced "blkio.throttle.io_serviced" Home::V1(C::Blkio), root true, probe false, parse::parse_blkio_throttle => Vec<parse::BlkioEntry>;
    BfqWeight bfq_weight "blkio.bfq.weight" Home::V1(C::Blkio), root false, probe false, parse::parse_io_weight => parse::IoWeight;
    BlkioWeight blkio_weight "blkio.weight" Home::V1(C::Blkio), root false, probe false, parse::parse_io_weight => parse::IoWeight;
    ThrottleReadBps throttle_read_bps "blkio.throttle.read_bps_device" Home::V1(C::Blkio), root false, probe false, parse::parse_blkio_device_limits => parse::DeviceLimits;
    ThrottleWriteBps throttle_write_bps "blkio.throttle.write_bps_device" Home::V1(C::Blkio), root false, probe false, parse::parse_blkio_device_limits => parse::DeviceLimits;
    ThrottleReadIops throttle_read_iops "blkio.throttle.read_iops_device" Home::V1(C::Blkio), root false, probe false, parse::parse_blkio_device_limits => parse::DeviceLimits;
    ThrottleWriteIops throttle_write_iops "blkio.throttle.write_iops_device" Home::V1(C::Blkio), root false, probe false, parse::parse_blkio_device_limits => parse::DeviceLimits;
    PidsCurrentV1 pids_current_v1 "pids.current" Home::V1(C::Pids), root false, probe false, parse::parse_u64 => u64;
    PidsMaxV1 pids_max_v1 "pids.max" Home::V1(C::Pids), root false, probe false, limit => Limit;
    FreezerState freezer_state "freezer.state" Home::V1(C::Freezer), root false, probe false, parse::parse_freezer_state => parse::FreezerState;
}

/// A set of [`File`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileSet(u128);

impl FileSet {
    pub const EMPTY: FileSet = FileSet(0);

    pub const fn of(files: &[File]) -> FileSet {
        let mut s = FileSet(0);
        let mut i = 0;
        while i < files.len() {
            s = s.with(files[i]);
            i += 1;
        }
        s
    }
    pub const fn with(self, f: File) -> FileSet {
        FileSet(self.0 | 1 << f as u32)
    }
    pub const fn union(self, o: FileSet) -> FileSet {
        FileSet(self.0 | o.0)
    }
    pub const fn minus(self, o: FileSet) -> FileSet {
        FileSet(self.0 & !o.0)
    }
    pub const fn contains(self, f: File) -> bool {
        self.0 & (1 << f as u32) != 0
    }
    pub const fn intersect(self, o: FileSet) -> FileSet {
        FileSet(self.0 & o.0)
    }
    /// The files in [`ALL`]'s order, by their bits: a file's bit is its
    /// index in `ALL` (`all_is_in_discriminant_order`), so a set of a few
    /// files costs a few steps, not one per file the exporter knows.
    pub fn iter(self) -> impl Iterator<Item = File> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            ALL.get(i).copied()
        })
    }
}

/// Limits and settings: files whose value changes only when something
/// writes them. The reader keeps their text between scrapes for a cgroup
/// directory whose inotify watch reports writes, and re-reads them after
/// one (see [`crate::cgroupfs::stamps::Modified`]). Counters, `cpuset.*` (the
/// effective set follows CPU hotplug) and kernel-notified files are not
/// here.
pub const SETTINGS: FileSet = FileSet::of(&[
    File::CpuMax,
    File::CpuWeight,
    File::MemoryMax,
    File::MemoryHigh,
    File::MemoryLow,
    File::MemoryMin,
    File::MemorySwapMax,
    File::IoWeight,
    File::IoMax,
    File::PidsMax,
    File::CfsQuota,
    File::CfsPeriod,
    File::CpuShares,
    File::MemoryLimit,
    File::MemorySoftLimit,
    File::MemswLimit,
    File::BfqWeight,
    File::BlkioWeight,
    File::ThrottleReadBps,
    File::ThrottleWriteBps,
    File::ThrottleReadIops,
    File::ThrottleWriteIops,
    File::PidsMaxV1,
]);

/// The cgroup2 files a write to which can change a kept setting: the v2
/// members of [`SETTINGS`] and `cpu.weight.nice` (another view of
/// `cpu.weight`). A cgroup2 directory's write stamp moves only for these:
/// the kernel itself reports `IN_MODIFY` on `cgroup.events`,
/// `memory.events` and the other `*.events` files (kernfs_notify) whenever
/// a counter in them moves, and a stamp bumped by those would have a busy
/// cgroup's settings re-read every scrape.
pub const V2_SETTING_NAMES: &[&str] = &[
    "cpu.max",
    "cpu.weight",
    "cpu.weight.nice",
    "io.max",
    "io.weight",
    "memory.high",
    "memory.low",
    "memory.max",
    "memory.min",
    "memory.swap.max",
    "pids.max",
];

/// The cgroup2 file whose write enables or disables controllers in the
/// directory's children: their settings files are removed, or made again
/// with the defaults, with no write in their own directories.
pub const V2_CONTROLLERS_WRITTEN: &str = "cgroup.subtree_control";

/// Whether a write to the cgroup2 file `name` can change a kept setting
/// (see [`V2_SETTING_NAMES`]). Called once per `IN_MODIFY` event, most of
/// them kernel notifications: those end in `events` (or `events.local`)
/// and are turned away before any compare.
pub fn v2_setting_written(name: &[u8]) -> bool {
    if name.ends_with(b"events") || name.ends_with(b"events.local") {
        return false;
    }
    V2_SETTING_NAMES.iter().any(|s| s.as_bytes() == name)
}

/// `(file, skip it when)`: see [`Plan`].
pub type SkipRule = (File, fn(&CgroupFiles) -> bool);

/// Which files to read in a cgroup: `files`, except that a file with a
/// rule in `skip_when` is not read when the rule says the files read
/// before it (in [`ALL`]'s order) made it redundant.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub files: FileSet,
    pub skip_when: &'static [SkipRule],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, f) in ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?}");
        }
        assert!(ALL.len() <= 128, "a FileSet holds 128 files");
        let some = FileSet::of(&[File::MemoryStat, File::CpuStat, File::HugetlbMax]);
        let listed: Vec<File> = some.iter().collect();
        let filtered: Vec<File> = ALL.iter().copied().filter(|f| some.contains(*f)).collect();
        assert_eq!(listed, filtered);
        assert_eq!(FileSet::EMPTY.iter().count(), 0);
    }

    #[test]
    fn a_v2_stamp_moves_for_every_v2_setting_and_no_kernel_notified_file() {
        let mut v2: Vec<&str> = SETTINGS
            .iter()
            .filter(|f| matches!(f.info().home, Home::V2(_)))
            .map(|f| f.info().name)
            .collect();
        assert!(!v2.is_empty());
        for name in &v2 {
            assert!(v2_setting_written(name.as_bytes()), "{name}");
        }
        // Everything else listed is an alias of a setting.
        v2.push("cpu.weight.nice");
        v2.sort_unstable();
        let mut listed = V2_SETTING_NAMES.to_vec();
        listed.sort_unstable();
        assert_eq!(listed, v2);
        for name in [
            "cgroup.events",
            "memory.events",
            "memory.events.local",
            "memory.swap.events",
            "pids.events",
            "pids.events.local",
            "misc.events",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cpuset.cpus",
            "memory.maxx",
            "",
        ] {
            assert!(!v2_setting_written(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn every_file_has_a_bit_and_the_probes_come_first_in_their_hierarchy() {
        assert!(ALL.len() <= 128, "FileSet is a u128");
        let all = FileSet::of(ALL);
        assert_eq!(all.iter().count(), ALL.len());
        for (i, f) in ALL.iter().enumerate() {
            let info = f.info();
            if info.probe {
                // A probe is read before any other file of its home.
                assert!(
                    ALL[..i].iter().all(|g| g.info().home != info.home),
                    "{f:?} is not first of {:?}",
                    info.home
                );
            }
        }
    }
}
