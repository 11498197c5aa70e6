//! Reads one cgroup's files from every hierarchy it exists in and merges
//! them into one [`CgroupStats`]. I/O lives here; parsing lives in `parse`.
//!
//! Errors are classified once ([`ReadError::from_io`]): a cgroup that
//! vanished mid-read is dropped from the scrape, a file that fails to parse
//! is skipped and counted by file name, a file that is simply absent (a
//! controller that is off, an older kernel) is an absent series.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::fdcache::FdCache;

use super::layout::{Controller, Hierarchy, Layout};
use super::parse::{self, DevNum, Limit, ParseError};
use super::CgroupPath;
use crate::registry::HierarchySet;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The cgroup went away between listing and reading (ENODEV on an open
    /// file of a removed cgroup, ENOENT on its directory).
    #[error("{path}: cgroup vanished")]
    Vanished { path: PathBuf },
    /// The file does not exist: a controller that is off, an older kernel.
    #[error("{path}: absent")]
    Absent { path: PathBuf },
    /// EOPNOTSUPP: the feature is compiled in but off (psi=0).
    #[error("{path}: not supported by this kernel")]
    Unsupported { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
}

impl ReadError {
    /// The one place errno becomes policy.
    pub fn from_io(path: &Path, err: io::Error) -> ReadError {
        let path = path.to_path_buf();
        match err.raw_os_error() {
            Some(libc::ENOENT) => ReadError::Absent { path },
            Some(libc::ENODEV) | Some(libc::ESRCH) => ReadError::Vanished { path },
            Some(libc::EOPNOTSUPP) => ReadError::Unsupported { path },
            _ if err.kind() == io::ErrorKind::NotFound => ReadError::Absent { path },
            _ => ReadError::Io { path, source: err },
        }
    }
}

/// A v1 "unlimited" memory value: `PAGE_COUNTER_MAX` pages, printed as
/// bytes, i.e. `i64::MAX` rounded down to the page size.
const V1_UNLIMITED_MIN: u64 = 0x7FFF_FFFF_FFFF_F000;

/// USER_HZ: the unit of v1 `cpuacct.stat`. Fixed at 100 by the kernel ABI
/// on every architecture Linux exposes it to userspace.
const USER_HZ: f64 = 100.0;

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
    pub some_total: Option<u64>,
    /// µs of `full` stall (stalled).
    pub full_total: Option<u64>,
}

/// Everything read about one cgroup in one scrape. `None` = absent series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    pub cpu_usage_seconds: Option<f64>,
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
    pub cpu_periods: Option<u64>,
    pub cpu_throttled_periods: Option<u64>,
    pub cpu_throttled_seconds: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    pub cpu_weight: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<u32>,

    pub memory_usage: Option<u64>,
    pub memory_working_set: Option<u64>,
    pub memory_peak: Option<u64>,
    pub memory_limit: Option<u64>,
    pub memory_high: Option<u64>,
    pub memory_low: Option<u64>,
    pub memory_min: Option<u64>,
    /// `(stat, bytes)` with the v2 names (v1 names are mapped).
    pub memory_stat: Vec<(&'static str, u64)>,
    pub swap_usage: Option<u64>,
    pub swap_limit: Option<u64>,
    /// `(event, count)`.
    pub memory_events: Vec<(&'static str, u64)>,
    /// `(node, stat, bytes)`.
    pub memory_numa: Vec<(u32, String, u64)>,

    pub io: Vec<IoDevice>,
    pub io_weight: Option<u64>,
    pub io_limits: Vec<IoLimit>,

    pub pids_current: Option<u64>,
    pub pids_limit: Option<u64>,
    /// `(pagesize, usage, limit)`.
    pub hugetlb: Vec<(Arc<str>, Option<u64>, Option<u64>)>,

    pub pressure_cpu: Pressure,
    pub pressure_memory: Pressure,
    pub pressure_io: Pressure,

    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

/// Families the reader can skip entirely (`metrics.disable`), so that
/// turning a family off also saves its reads. Keyed by the file group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Skip {
    pub memory_stat: bool,
    pub memory_numa: bool,
    pub memory_events: bool,
    pub io: bool,
    pub io_limits: bool,
    pub hugetlb: bool,
    pub pressure: bool,
    pub cpuset: bool,
    pub pids: bool,
    pub cgroup_events: bool,
}

/// A counted, non-fatal problem with one file.
#[derive(Debug)]
pub struct SoftError {
    pub file: &'static str,
    pub error: ReadError,
}

/// v2 `memory.stat` keys exported in `cgroup_memory_stat_bytes{stat}`:
/// every key that Documentation/admin-guide/cgroup-v2.rst ("memory.stat",
/// Linux 6.18) documents as an amount of memory, in the kernel's order
/// (`memory_stats[]` in mm/memcontrol.c). The keys after them in the file
/// (`workingset_*`, `pswpin`, `pgfault`, `thp_*`, `numa_*`, `pgdemote_*`,
/// ...) count events or pages and are never exported as bytes; nor is
/// `zswap_incomp`, documented as a number of pages. Keys a kernel lacks
/// (`sec_pagetables` before 6.2, `zswap*` before 5.19 or without
/// CONFIG_ZSWAP, `hugetlb` before 6.6 or without the
/// `memory_hugetlb_accounting` mount option) are absent series.
const MEMORY_STAT_V2: &[&str] = &[
    "anon",
    "file",
    "kernel",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "shmem",
    "zswap",
    "zswapped",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
    "hugetlb",
];

/// v1 `memory.stat` hierarchical (`total_*`) keys mapped to the v2 name of
/// the same quantity, so one query works on both.
const MEMORY_STAT_V1: &[(&str, &str)] = &[
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

/// One v1 `blkio.*io_service*` file's rows.
type Blkio = Vec<parse::BlkioEntry>;

/// Absent files by (hierarchy, cgroup).
type AbsentMemo = HashMap<(u8, CgroupPath), HashSet<Box<str>>>;

/// State shared by the reader threads across scrapes: what the kernel does
/// not change between scrapes, learned once.
#[derive(Debug)]
pub struct Shared {
    pub layout: Arc<Layout>,
    pub procfs: PathBuf,
    pub hugetlb_sizes: Arc<[Arc<str>]>,
    pub fds: Arc<FdCache>,
    /// The kernel's page size: the unit of v1 `memory.numa_stat`.
    pub page_size: u64,
    /// Files found absent in a cgroup (a kernel feature that is off, such
    /// as `memory.memsw.*` without swap accounting): not opened again until
    /// the memo is cleared, every [`ABSENT_MEMO_TTL`]. Keyed per cgroup, not
    /// per hierarchy: one cgroup can lack a file its siblings have (Linux
    /// ≥ 6.1 `echo 0 > cgroup.pressure` removes only that cgroup's
    /// `*.pressure` files), and a missing file may only hide the series of
    /// the cgroup it is missing from.
    absent: RwLock<AbsentMemo>,
    absent_since: Mutex<Instant>,
    /// The cgroup2 hierarchy exists but its root lists no controllers (the
    /// hybrid layout): per-cgroup `cgroup.controllers` would all be empty.
    unified_without_controllers: bool,
}

/// How long a file stays known-absent before it is probed again (a
/// controller can be enabled at run time).
pub const ABSENT_MEMO_TTL: Duration = Duration::from_secs(60);

impl Shared {
    pub fn new(layout: Arc<Layout>, procfs: PathBuf, fd_cache: usize) -> Shared {
        let hugetlb_sizes: Arc<[Arc<str>]> = discover_hugetlb_sizes(&layout).into();
        let unified_without_controllers = layout.mode == super::Mode::Hybrid
            && layout
                .unified()
                .and_then(|u| std::fs::read_to_string(u.root.join("cgroup.controllers")).ok())
                .is_some_and(|t| t.trim().is_empty());
        Shared {
            unified_without_controllers,
            layout,
            procfs,
            hugetlb_sizes,
            fds: Arc::new(FdCache::new(fd_cache)),
            page_size: procfs::page_size(),
            absent: RwLock::new(HashMap::new()),
            absent_since: Mutex::new(Instant::now()),
        }
    }

    /// Called once per scrape.
    pub fn start_scrape(&self) {
        self.fds.next_generation();
        let mut since = self.absent_since.lock().unwrap_or_else(|e| e.into_inner());
        if since.elapsed() >= ABSENT_MEMO_TTL {
            *since = Instant::now();
            self.absent
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }

    /// Called when a scrape has read every tracked cgroup.
    pub fn end_complete_scrape(&self) {
        self.fds.close_unread();
    }

    fn is_absent(&self, h: u8, cg: &CgroupPath, file: &str) -> bool {
        self.absent
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(h, cg.clone()))
            .is_some_and(|set| set.contains(file))
    }

    fn mark_absent(&self, h: u8, cg: &CgroupPath, file: &str) {
        self.absent
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry((h, cg.clone()))
            .or_default()
            .insert(Box::from(file));
    }
}

/// v2 controllers enabled for a cgroup (its `cgroup.controllers`): only
/// their interface files exist there, so the others are not even opened.
#[derive(Debug, Clone, Copy, Default)]
struct V2Controllers {
    cpu: bool,
    cpuset: bool,
    memory: bool,
    io: bool,
    pids: bool,
    hugetlb: bool,
}

impl V2Controllers {
    const ALL: V2Controllers = V2Controllers {
        cpu: true,
        cpuset: true,
        memory: true,
        io: true,
        pids: true,
        hugetlb: true,
    };

    fn parse(text: &str) -> V2Controllers {
        let mut c = V2Controllers::default();
        for w in text.split_ascii_whitespace() {
            match w {
                "cpu" => c.cpu = true,
                "cpuset" => c.cpuset = true,
                "memory" => c.memory = true,
                "io" => c.io = true,
                "pids" => c.pids = true,
                "hugetlb" => c.hugetlb = true,
                _ => {}
            }
        }
        c
    }
}

/// Reads cgroups. One per worker thread: it owns its read buffer and path
/// scratch space, so a scrape allocates little.
pub struct Reader {
    shared: Arc<Shared>,
    layout: Arc<Layout>,
    procfs: PathBuf,
    hugetlb_sizes: Arc<[Arc<str>]>,
    skip: Skip,
    buf: Vec<u8>,
    path: PathBuf,
    /// The hierarchy being read and whether the cgroup's probe file was
    /// read there (only then does an absent file teach the memo anything).
    cur_h: u8,
    probed: bool,
}

impl Reader {
    pub fn new(shared: Arc<Shared>, skip: Skip) -> Reader {
        Reader {
            layout: shared.layout.clone(),
            procfs: shared.procfs.clone(),
            hugetlb_sizes: shared.hugetlb_sizes.clone(),
            shared,
            skip,
            buf: Vec::with_capacity(8192),
            path: PathBuf::new(),
            cur_h: 0,
            probed: false,
        }
    }

    /// Reads `file` of `cg` in `h` into the buffer. Reads until EOF: a short
    /// read is not the end of a kernel file.
    fn read(&mut self, h: &Hierarchy, cg: &CgroupPath, file: &str) -> Result<&str, ReadError> {
        self.path.clear();
        self.path.push(&h.root);
        if !cg.is_root() {
            self.path.push(cg.relative());
        }
        self.path.push(file);
        let memo = !cg.is_root();
        if memo && self.shared.is_absent(h.id.0, cg, file) {
            return Err(ReadError::Absent {
                path: PathBuf::new(),
            });
        }
        match self.shared.fds.read(&self.path, &mut self.buf) {
            Ok(()) => {}
            Err(e) => {
                let e = ReadError::from_io(&self.path, e);
                if memo
                    && self.probed
                    && self.cur_h == h.id.0
                    && matches!(e, ReadError::Absent { .. })
                {
                    self.shared.mark_absent(h.id.0, cg, file);
                }
                return Err(e);
            }
        }
        std::str::from_utf8(&self.buf).map_err(|_| ReadError::Parse {
            path: self.path.clone(),
            source: ParseError::new(0, "not UTF-8"),
        })
    }

    /// Reads a file outside the hierarchies (`/proc/pressure/*`), uncached.
    fn read_abs(&mut self, path: &Path) -> Result<&str, ReadError> {
        self.buf.clear();
        let mut f = File::open(path).map_err(|e| ReadError::from_io(path, e))?;
        f.read_to_end(&mut self.buf)
            .map_err(|e| ReadError::from_io(path, e))?;
        std::str::from_utf8(&self.buf).map_err(|_| ReadError::Parse {
            path: path.to_path_buf(),
            source: ParseError::new(0, "not UTF-8"),
        })
    }

    /// Reads and parses one file; absence is `Ok(None)`, a vanished cgroup
    /// is `Err`, anything else is recorded in `soft` and gives `Ok(None)`.
    fn get<T>(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        file: &'static str,
        soft: &mut Vec<SoftError>,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ReadError> {
        self.get_dyn(h, cg, file, file, soft, parse)
    }

    /// A parse result of the file just read: the value, or `None` with the
    /// error counted under `file`.
    fn counted<T>(
        &self,
        file: &'static str,
        parsed: Result<T, ParseError>,
        soft: &mut Vec<SoftError>,
    ) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(source) => {
                soft.push(SoftError {
                    file,
                    error: ReadError::Parse {
                        path: self.path.clone(),
                        source,
                    },
                });
                None
            }
        }
    }

    fn classify<T>(
        file: &'static str,
        e: ReadError,
        soft: &mut Vec<SoftError>,
    ) -> Result<Option<T>, ReadError> {
        match e {
            ReadError::Absent { .. } | ReadError::Unsupported { .. } => Ok(None),
            ReadError::Vanished { .. } => Err(e),
            other => {
                soft.push(SoftError { file, error: other });
                Ok(None)
            }
        }
    }

    /// Reads everything about `cg`. `Err(Vanished)` means drop it from this
    /// scrape; soft errors are pushed to `soft`.
    pub fn read_cgroup(
        &mut self,
        cg: &CgroupPath,
        hierarchies: HierarchySet,
        soft: &mut Vec<SoftError>,
    ) -> Result<CgroupStats, ReadError> {
        let mut s = CgroupStats::default();
        let layout = self.layout.clone();
        // First, so the v1 root's blkio files, which it replaces, are not
        // read at all (read_v1_blkio keeps IO already known).
        if cg.is_root() && layout.mode != super::Mode::V2 {
            self.read_host_io(&mut s);
        }
        let mut any_dir = false;
        for h in &layout.hierarchies {
            if !hierarchies.contains(h.id) {
                continue;
            }
            any_dir = true;
            self.cur_h = h.id.0;
            self.probed = false;
            if h.unified {
                self.read_v2(h, cg, &mut s, soft)?;
            } else {
                for c in &h.controllers {
                    self.read_v1(h, *c, cg, &mut s, soft)?;
                }
            }
        }
        if cg.is_root() {
            self.read_host_pressure(&mut s, soft);
            self.read_host_oom_kills(&mut s);
        }
        if !any_dir {
            return Err(ReadError::Vanished {
                path: PathBuf::from(cg.as_str()),
            });
        }
        Ok(s)
    }

    fn read_v2(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        s: &mut CgroupStats,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        // cpu.stat exists in every v2 cgroup (usage even without the cpu
        // controller), so it doubles as the "does this cgroup exist" probe.
        let probe = self.read(h, cg, "cpu.stat").map(parse::parse_cpu_stat);
        if probe.is_ok() {
            self.probed = true;
        }
        match probe {
            Ok(parsed) => match parsed {
                Ok(c) => {
                    let sec = |us: Option<u64>| us.map(|v| v as f64 / 1e6);
                    s.cpu_usage_seconds = sec(c.usage_usec);
                    s.cpu_user_seconds = sec(c.user_usec);
                    s.cpu_system_seconds = sec(c.system_usec);
                    s.cpu_periods = c.nr_periods;
                    s.cpu_throttled_periods = c.nr_throttled;
                    s.cpu_throttled_seconds = sec(c.throttled_usec);
                }
                Err(source) => soft.push(SoftError {
                    file: "cpu.stat",
                    error: ReadError::Parse {
                        path: self.path.clone(),
                        source,
                    },
                }),
            },
            Err(ReadError::Absent { path }) if !cg.is_root() => {
                // cpu.stat is in every v2 cgroup: its absence means the
                // directory is gone.
                return Err(ReadError::Vanished { path });
            }
            Err(e) => {
                Self::classify::<()>("cpu.stat", e, soft)?;
            }
        }
        let ctl = if cg.is_root() {
            V2Controllers::ALL
        } else if self.shared.unified_without_controllers {
            // Hybrid: no controller is enabled in unified/ (its root lists
            // none), so no cgroup there can have any: skip the read.
            V2Controllers::default()
        } else {
            match self.read(h, cg, "cgroup.controllers") {
                Ok(t) => V2Controllers::parse(t),
                Err(ReadError::Vanished { path }) | Err(ReadError::Absent { path }) => {
                    return Err(ReadError::Vanished { path })
                }
                Err(_) => V2Controllers::ALL,
            }
        };
        if ctl.cpu && !cg.is_root() {
            if let Some(m) = self.get(h, cg, "cpu.max", soft, parse::parse_cpu_max)? {
                if let (Limit::Value(q), true) = (m.quota, m.period > 0) {
                    s.cpu_limit_cores = Some(q as f64 / m.period as f64);
                }
            }
            s.cpu_weight = self.get(h, cg, "cpu.weight", soft, parse::parse_u64)?;
        }
        if !self.skip.cpuset && ctl.cpuset {
            s.cpuset_cpus = self.get(
                h,
                cg,
                "cpuset.cpus.effective",
                soft,
                parse::parse_cpuset_count,
            )?;
        }
        if ctl.memory {
            self.read_v2_memory(h, cg, s, soft)?;
        }
        if !self.skip.io && ctl.io {
            if let Some(entries) = self.get(h, cg, "io.stat", soft, parse::parse_io_stat)? {
                s.io = entries
                    .into_iter()
                    .map(|e| IoDevice {
                        dev: e.dev,
                        read_bytes: e.rbytes,
                        write_bytes: e.wbytes,
                        reads: e.rios,
                        writes: e.wios,
                    })
                    .collect();
            }
        }
        if !self.skip.io_limits && ctl.io && !cg.is_root() {
            if let Some(w) = self.get(h, cg, "io.weight", soft, parse::parse_io_weight)? {
                s.io_weight = w.default;
            }
            if let Some(m) = self.get(h, cg, "io.max", soft, parse::parse_io_max)? {
                s.io_limits = m
                    .into_iter()
                    .map(|e| IoLimit {
                        dev: e.dev,
                        read_bps: e.rbps.value(),
                        write_bps: e.wbps.value(),
                        read_iops: e.riops.value(),
                        write_iops: e.wiops.value(),
                    })
                    .collect();
            }
        }
        if !self.skip.pids && ctl.pids && !cg.is_root() {
            s.pids_current = self.get(h, cg, "pids.current", soft, parse::parse_u64)?;
            s.pids_limit = self
                .get(h, cg, "pids.max", soft, parse::parse_limit)?
                .and_then(Limit::value);
        }
        if !self.skip.hugetlb && ctl.hugetlb && !cg.is_root() {
            let sizes = self.hugetlb_sizes.clone();
            for size in sizes.iter() {
                let cur = format!("hugetlb.{size}.current");
                let max = format!("hugetlb.{size}.max");
                let usage = self.get_dyn(h, cg, &cur, "hugetlb.current", soft, parse::parse_u64)?;
                let limit = self
                    .get_dyn(h, cg, &max, "hugetlb.max", soft, parse::parse_limit)?
                    .and_then(Limit::value);
                if usage.is_some() || limit.is_some() {
                    s.hugetlb.push((size.clone(), usage, limit));
                }
            }
        }
        if !self.skip.pressure {
            s.pressure_cpu = self.pressure(h, cg, "cpu.pressure", soft)?;
            s.pressure_memory = self.pressure(h, cg, "memory.pressure", soft)?;
            s.pressure_io = self.pressure(h, cg, "io.pressure", soft)?;
        }
        if !self.skip.cgroup_events && !cg.is_root() {
            if let Some(ev) = self.get(h, cg, "cgroup.events", soft, parse::parse_cgroup_events)? {
                s.populated = ev.populated;
                s.frozen = ev.frozen;
            }
        }
        Ok(())
    }

    fn read_v2_memory(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        s: &mut CgroupStats,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        s.memory_usage = self.get(h, cg, "memory.current", soft, parse::parse_u64)?;
        if !cg.is_root() {
            s.memory_peak = self.get(h, cg, "memory.peak", soft, parse::parse_u64)?;
            s.memory_limit = self
                .get(h, cg, "memory.max", soft, parse::parse_limit)?
                .and_then(Limit::value);
            s.memory_high = self
                .get(h, cg, "memory.high", soft, parse::parse_limit)?
                .and_then(Limit::value);
            s.memory_low = self
                .get(h, cg, "memory.low", soft, parse::parse_limit)?
                .and_then(Limit::value);
            s.memory_min = self
                .get(h, cg, "memory.min", soft, parse::parse_limit)?
                .and_then(Limit::value);
            s.swap_usage = self.get(h, cg, "memory.swap.current", soft, parse::parse_u64)?;
            s.swap_limit = self
                .get(h, cg, "memory.swap.max", soft, parse::parse_limit)?
                .and_then(Limit::value);
        }
        // memory.stat is read for the working set even when its family is
        // off: usage − inactive_file is what the kubelet evicts on.
        let want_stat = !self.skip.memory_stat;
        let stat = self.get(h, cg, "memory.stat", soft, |t| {
            let mut inactive_file = None;
            let mut out = Vec::new();
            parse::parse_flat_keyed(t, |k, v| {
                if k == "inactive_file" {
                    inactive_file = Some(v);
                }
                if want_stat {
                    if let Some(name) = MEMORY_STAT_V2.iter().find(|n| **n == k) {
                        out.push((*name, v));
                    }
                }
            })?;
            Ok((inactive_file, out))
        })?;
        if let Some((inactive_file, out)) = stat {
            s.memory_stat = out;
            if let (Some(u), Some(i)) = (s.memory_usage, inactive_file) {
                s.memory_working_set = Some(u.saturating_sub(i));
            }
        }
        if !self.skip.memory_events && !cg.is_root() {
            if let Some(ev) = self.get(h, cg, "memory.events", soft, parse::parse_memory_events)? {
                s.memory_events = [
                    ("low", ev.low),
                    ("high", ev.high),
                    ("max", ev.max),
                    ("oom", ev.oom),
                    ("oom_kill", ev.oom_kill),
                    ("oom_group_kill", ev.oom_group_kill),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            }
        }
        if !self.skip.memory_numa {
            self.read_numa(h, cg, s, soft)?;
        }
        Ok(())
    }

    /// Reads and parses one file, whose name may be built at run time
    /// (hugetlb page sizes); problems are counted under `counted_as` so the
    /// `file` label stays a small fixed set.
    fn get_dyn<T>(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        file: &str,
        counted_as: &'static str,
        soft: &mut Vec<SoftError>,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ReadError> {
        let text = match self.read(h, cg, file) {
            Ok(t) => t,
            Err(e) => return Self::classify(counted_as, e, soft),
        };
        match parse(text) {
            Ok(v) => Ok(Some(v)),
            Err(source) => {
                soft.push(SoftError {
                    file: counted_as,
                    error: ReadError::Parse {
                        path: self.path.clone(),
                        source,
                    },
                });
                Ok(None)
            }
        }
    }

    fn pressure(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        file: &'static str,
        soft: &mut Vec<SoftError>,
    ) -> Result<Pressure, ReadError> {
        Ok(self
            .get(h, cg, file, soft, parse::parse_psi)?
            .map(|p| Pressure {
                some_total: p.some.map(|l| l.total),
                full_total: p.full.map(|l| l.total),
            })
            .unwrap_or_default())
    }

    fn read_numa(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        s: &mut CgroupStats,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        let (pages, page_size) = (!h.unified, self.shared.page_size);
        let rows = self.get(h, cg, "memory.numa_stat", soft, |t| {
            numa_rows(t, pages, page_size)
        })?;
        if let Some(rows) = rows {
            s.memory_numa = rows;
        }
        Ok(())
    }

    fn read_v1(
        &mut self,
        h: &Hierarchy,
        c: Controller,
        cg: &CgroupPath,
        s: &mut CgroupStats,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        match c {
            // Hybrid: unified/cpu.stat already gave usage, user and system
            // (more precisely); the cpuacct files would say the same.
            Controller::Cpuacct
                if s.cpu_usage_seconds.is_some()
                    && s.cpu_user_seconds.is_some()
                    && s.cpu_system_seconds.is_some() => {}
            Controller::Cpuacct => {
                // Absent `cpuacct.usage` in a listed cgroup means it is gone.
                let usage = match self.read(h, cg, "cpuacct.usage") {
                    Ok(t) => {
                        let v = parse::parse_u64(t);
                        self.probed = true;
                        self.counted("cpuacct.usage", v, soft)
                    }
                    Err(ReadError::Absent { path }) => return Err(ReadError::Vanished { path }),
                    Err(e) => Self::classify::<u64>("cpuacct.usage", e, soft)?,
                };
                fill(&mut s.cpu_usage_seconds, usage.map(|ns| ns as f64 / 1e9));
                let user = self.get(h, cg, "cpuacct.usage_user", soft, parse::parse_u64)?;
                let sys = self.get(h, cg, "cpuacct.usage_sys", soft, parse::parse_u64)?;
                if user.is_some() || sys.is_some() {
                    fill(&mut s.cpu_user_seconds, user.map(|ns| ns as f64 / 1e9));
                    fill(&mut s.cpu_system_seconds, sys.map(|ns| ns as f64 / 1e9));
                } else if let Some(st) =
                    self.get(h, cg, "cpuacct.stat", soft, parse::parse_cpuacct_stat)?
                {
                    fill(&mut s.cpu_user_seconds, st.user.map(|t| t as f64 / USER_HZ));
                    fill(
                        &mut s.cpu_system_seconds,
                        st.system.map(|t| t as f64 / USER_HZ),
                    );
                }
            }
            Controller::Cpu => {
                if let Some(st) = self.get(h, cg, "cpu.stat", soft, parse::parse_cpu_stat_v1)? {
                    fill(&mut s.cpu_periods, st.nr_periods);
                    fill(&mut s.cpu_throttled_periods, st.nr_throttled);
                    fill(
                        &mut s.cpu_throttled_seconds,
                        st.throttled_time.map(|ns| ns as f64 / 1e9),
                    );
                }
                if !cg.is_root() {
                    let quota = self.get(h, cg, "cpu.cfs_quota_us", soft, parse::parse_limit)?;
                    let period = self.get(h, cg, "cpu.cfs_period_us", soft, parse::parse_u64)?;
                    if let (Some(Limit::Value(q)), Some(p)) = (quota, period) {
                        if p > 0 {
                            fill(&mut s.cpu_limit_cores, Some(q as f64 / p as f64));
                        }
                    }
                }
                s.cpu_shares = self.get(h, cg, "cpu.shares", soft, parse::parse_u64)?;
            }
            Controller::Cpuset if !self.skip.cpuset => {
                let eff = self.get(
                    h,
                    cg,
                    "cpuset.effective_cpus",
                    soft,
                    parse::parse_cpuset_count,
                )?;
                let eff = match eff {
                    Some(v) => Some(v),
                    None => self.get(h, cg, "cpuset.cpus", soft, parse::parse_cpuset_count)?,
                };
                fill(&mut s.cpuset_cpus, eff);
            }
            Controller::Memory => self.read_v1_memory(h, cg, s, soft)?,
            Controller::Blkio if !self.skip.io => self.read_v1_blkio(h, cg, s, soft)?,
            Controller::Pids if !self.skip.pids && !cg.is_root() => {
                fill(
                    &mut s.pids_current,
                    self.get(h, cg, "pids.current", soft, parse::parse_u64)?,
                );
                fill(
                    &mut s.pids_limit,
                    self.get(h, cg, "pids.max", soft, parse::parse_limit)?
                        .and_then(Limit::value),
                );
            }
            Controller::Hugetlb if !self.skip.hugetlb => {
                let sizes = self.hugetlb_sizes.clone();
                for size in sizes.iter() {
                    let cur = format!("hugetlb.{size}.usage_in_bytes");
                    let max = format!("hugetlb.{size}.limit_in_bytes");
                    let usage = self.get_dyn(
                        h,
                        cg,
                        &cur,
                        "hugetlb.usage_in_bytes",
                        soft,
                        parse::parse_u64,
                    )?;
                    let limit = self
                        .get_dyn(
                            h,
                            cg,
                            &max,
                            "hugetlb.limit_in_bytes",
                            soft,
                            parse::parse_limit,
                        )?
                        .and_then(Limit::value);
                    if usage.is_some() || limit.is_some() {
                        s.hugetlb.push((size.clone(), usage, limit));
                    }
                }
            }
            Controller::Freezer if !self.skip.cgroup_events && !cg.is_root() => {
                if let Some(st) =
                    self.get(h, cg, "freezer.state", soft, parse::parse_freezer_state)?
                {
                    fill(&mut s.frozen, Some(st == parse::FreezerState::Frozen));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn read_v1_memory(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        s: &mut CgroupStats,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        let usage = match self.read(h, cg, "memory.usage_in_bytes") {
            Ok(t) => {
                let v = parse::parse_u64(t);
                self.probed = true;
                self.counted("memory.usage_in_bytes", v, soft)
            }
            Err(ReadError::Absent { path }) => return Err(ReadError::Vanished { path }),
            Err(e) => Self::classify::<u64>("memory.usage_in_bytes", e, soft)?,
        };
        fill(&mut s.memory_usage, usage);
        let want_stat = !self.skip.memory_stat;
        let stat = self.get(h, cg, "memory.stat", soft, |t| {
            let mut inactive_file = None;
            let mut out = Vec::new();
            parse::parse_flat_keyed(t, |k, v| {
                if k == "total_inactive_file" {
                    inactive_file = Some(v);
                }
                if want_stat {
                    if let Some((_, name)) = MEMORY_STAT_V1.iter().find(|(k1, _)| *k1 == k) {
                        out.push((*name, v));
                    }
                }
            })?;
            Ok((inactive_file, out))
        })?;
        if let Some((inactive_file, out)) = stat {
            if s.memory_stat.is_empty() {
                s.memory_stat = out;
            }
            if let (Some(u), Some(i)) = (s.memory_usage, inactive_file) {
                fill(&mut s.memory_working_set, Some(u.saturating_sub(i)));
            }
        }
        if cg.is_root() {
            return Ok(());
        }
        fill(
            &mut s.memory_peak,
            self.get(h, cg, "memory.max_usage_in_bytes", soft, parse::parse_u64)?,
        );
        let lim = self
            .get(h, cg, "memory.limit_in_bytes", soft, parse::parse_limit)?
            .and_then(v1_limit);
        fill(&mut s.memory_limit, lim);
        // Kernel quirk: v1 has no memory.high; the soft limit is what runc
        // maps to v2's memory.low when converting, so it lands there.
        let soft_lim = self
            .get(
                h,
                cg,
                "memory.soft_limit_in_bytes",
                soft,
                parse::parse_limit,
            )?
            .and_then(v1_limit);
        fill(&mut s.memory_low, soft_lim);
        // memsw = memory + swap; absent unless swap accounting is on.
        let memsw = self.get(h, cg, "memory.memsw.usage_in_bytes", soft, parse::parse_u64)?;
        if let (Some(m), Some(u)) = (memsw, s.memory_usage) {
            fill(&mut s.swap_usage, Some(m.saturating_sub(u)));
        }
        let memsw_lim = self
            .get(
                h,
                cg,
                "memory.memsw.limit_in_bytes",
                soft,
                parse::parse_limit,
            )?
            .and_then(v1_limit);
        fill(&mut s.swap_limit, v1_swap_limit(memsw_lim, lim));
        if !self.skip.memory_events {
            let mut events = Vec::new();
            if let Some(f) = self.get(h, cg, "memory.failcnt", soft, parse::parse_u64)? {
                // failcnt counts hits of the limit: v2's `max` event.
                events.push(("max", f));
            }
            if let Some(o) =
                self.get(h, cg, "memory.oom_control", soft, parse::parse_oom_control)?
            {
                if let Some(k) = o.oom_kill {
                    events.push(("oom_kill", k));
                }
            }
            if s.memory_events.is_empty() {
                s.memory_events = events;
            }
        }
        if !self.skip.memory_numa && s.memory_numa.is_empty() {
            self.read_numa(h, cg, s, soft)?;
        }
        Ok(())
    }

    fn read_v1_blkio(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        s: &mut CgroupStats,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        if !s.io.is_empty() {
            return Ok(());
        }
        // The `_recursive` files include descendants, as v2's io.stat does.
        // Kernel quirk (v1): `blkio.throttle.io_service*` count only IO
        // that passed the throttle layer of a device with a rule (seen on
        // 6.18: otherwise just `Total 0`), while a device run by BFQ counts
        // all of the cgroup's IO in `blkio.bfq.io_service*_recursive`.
        // Like runc (libcontainer/cgroups/fs/blkio.go, which cAdvisor
        // uses), the BFQ pair is taken when its first file lists a device,
        // else the throttle files.
        let (bytes, ops) = match self.get(
            h,
            cg,
            "blkio.bfq.io_serviced_recursive",
            soft,
            parse::parse_blkio_throttle,
        )? {
            Some(ops) if !ops.is_empty() => {
                let bytes = self.get(
                    h,
                    cg,
                    "blkio.bfq.io_service_bytes_recursive",
                    soft,
                    parse::parse_blkio_throttle,
                )?;
                (bytes, Some(ops))
            }
            _ => self.read_v1_throttle_io(h, cg, soft)?,
        };
        let mut devs: HashMap<DevNum, IoDevice> = HashMap::new();
        for e in bytes.into_iter().flatten() {
            let d = devs.entry(e.dev).or_insert_with(|| IoDevice {
                dev: e.dev,
                ..IoDevice::default()
            });
            d.read_bytes = e.read;
            d.write_bytes = e.write;
        }
        for e in ops.into_iter().flatten() {
            let d = devs.entry(e.dev).or_insert_with(|| IoDevice {
                dev: e.dev,
                ..IoDevice::default()
            });
            d.reads = e.read;
            d.writes = e.write;
        }
        let mut io: Vec<IoDevice> = devs.into_values().collect();
        io.sort_by_key(|d| d.dev);
        s.io = io;
        if self.skip.io_limits || cg.is_root() {
            return Ok(());
        }
        let weight = match self.get(h, cg, "blkio.bfq.weight", soft, parse::parse_io_weight)? {
            Some(w) => Some(w),
            None => self.get(h, cg, "blkio.weight", soft, parse::parse_io_weight)?,
        };
        fill(&mut s.io_weight, weight.and_then(|w| w.default));
        let mut limits: HashMap<DevNum, IoLimit> = HashMap::new();
        for (file, which) in [
            ("blkio.throttle.read_bps_device", 0),
            ("blkio.throttle.write_bps_device", 1),
            ("blkio.throttle.read_iops_device", 2),
            ("blkio.throttle.write_iops_device", 3),
        ] {
            for (dev, v) in self
                .get(h, cg, file, soft, parse::parse_blkio_device_limits)?
                .into_iter()
                .flatten()
            {
                let l = limits.entry(dev).or_insert_with(|| IoLimit {
                    dev,
                    ..IoLimit::default()
                });
                let slot = match which {
                    0 => &mut l.read_bps,
                    1 => &mut l.write_bps,
                    2 => &mut l.read_iops,
                    _ => &mut l.write_iops,
                };
                *slot = Some(v);
            }
        }
        let mut limits: Vec<IoLimit> = limits.into_values().collect();
        limits.sort_by_key(|l| l.dev);
        s.io_limits = limits;
        Ok(())
    }

    /// v1 IO from the throttle layer: the `_recursive` files, or the plain
    /// ones on kernels without them.
    fn read_v1_throttle_io(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        soft: &mut Vec<SoftError>,
    ) -> Result<(Option<Blkio>, Option<Blkio>), ReadError> {
        let mut pair = [None, None];
        for (slot, (recursive, plain)) in pair.iter_mut().zip([
            (
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes",
            ),
            (
                "blkio.throttle.io_serviced_recursive",
                "blkio.throttle.io_serviced",
            ),
        ]) {
            *slot = match self.get(h, cg, recursive, soft, parse::parse_blkio_throttle)? {
                Some(b) => Some(b),
                None => self.get(h, cg, plain, soft, parse::parse_blkio_throttle)?,
            };
        }
        let [bytes, ops] = pair;
        Ok((bytes, ops))
    }

    /// The host's OOM kills for `cgroup="/"`: the root cgroup has no counter
    /// (no `memory.events` at the v2 root; v1's root `oom_control` counts
    /// only the root's own tasks), the kernel's `oom_kill` in
    /// `/proc/vmstat` counts every kill (Linux ≥ 4.13).
    fn read_host_oom_kills(&mut self, s: &mut CgroupStats) {
        if self.skip.memory_events || s.memory_events.iter().any(|(k, _)| *k == "oom_kill") {
            return;
        }
        let path = self.procfs.join("vmstat");
        let Ok(text) = self.read_abs(&path) else {
            return;
        };
        let mut kills = None;
        let _ = parse::parse_flat_keyed(text, |k, v| {
            if k == "oom_kill" {
                kills = Some(v);
            }
        });
        if let Some(k) = kills {
            s.memory_events.push(("oom_kill", k));
        }
    }

    /// The host's IO for `cgroup="/"` on v1 and hybrid hosts, from
    /// `/proc/diskstats`, as v2's root `io.stat` has it. Kernel quirk: the
    /// v1 root's `blkio.throttle.*_recursive` sums the live descendants and
    /// folds a removed cgroup's counts in only after it is freed, so it dips
    /// for a moment whenever a cgroup that did IO is removed, and a dip in a
    /// counter reads as a reset (a spike of the whole total in `rate()`).
    /// It also counts only what passed the throttle layer. The disks'
    /// counters do neither. Without a readable diskstats the blkio values
    /// stay.
    fn read_host_io(&mut self, s: &mut CgroupStats) {
        if self.skip.io {
            return;
        }
        let path = self.procfs.join("diskstats");
        let Ok(text) = self.read_abs(&path) else {
            return;
        };
        s.io = parse::parse_diskstats(text)
            .into_iter()
            .filter(|d| d.reads + d.writes > 0)
            .map(|d| IoDevice {
                dev: d.dev,
                read_bytes: Some(d.read_bytes),
                write_bytes: Some(d.write_bytes),
                reads: Some(d.reads),
                writes: Some(d.writes),
            })
            .collect();
    }

    /// The host's pressure for `cgroup="/"` when the root cgroup has none
    /// (v1, or a v2 root without pressure files).
    fn read_host_pressure(&mut self, s: &mut CgroupStats, soft: &mut Vec<SoftError>) {
        if self.skip.pressure {
            return;
        }
        let procfs = self.procfs.clone();
        for (res, slot) in [("cpu", 0), ("memory", 1), ("io", 2)] {
            let p = match slot {
                0 => &s.pressure_cpu,
                1 => &s.pressure_memory,
                _ => &s.pressure_io,
            };
            if p.some_total.is_some() || p.full_total.is_some() {
                continue;
            }
            let path = procfs.join("pressure").join(res);
            let parsed = match self.read_abs(&path) {
                Ok(t) => parse::parse_psi(t).map_err(|source| ReadError::Parse {
                    path: path.clone(),
                    source,
                }),
                Err(e) => Err(e),
            };
            let value = match parsed {
                Ok(p) => Pressure {
                    some_total: p.some.map(|l| l.total),
                    full_total: p.full.map(|l| l.total),
                },
                Err(ReadError::Absent { .. }) | Err(ReadError::Unsupported { .. }) => continue,
                Err(error) => {
                    soft.push(SoftError {
                        file: "pressure",
                        error,
                    });
                    continue;
                }
            };
            match slot {
                0 => s.pressure_cpu = value,
                1 => s.pressure_memory = value,
                _ => s.pressure_io = value,
            }
        }
    }
}

fn fill<T>(slot: &mut Option<T>, v: Option<T>) {
    if slot.is_none() {
        *slot = v;
    }
}

fn v1_limit(l: Limit) -> Option<u64> {
    match l {
        Limit::Value(v) if v < V1_UNLIMITED_MIN => Some(v),
        _ => None,
    }
}

/// The swap a v1 cgroup may use: `memsw.limit - memory.limit` (memsw
/// counts memory plus swap). The kernel refuses a memsw limit below the
/// memory limit (EINVAL, cgroup-v1/memory.rst 2.4), so a memsw value below
/// it is a read that raced a pair of writes, not a limit: absent, as is an
/// unlimited memsw or memory limit. Equal limits are a real 0: no swap.
fn v1_swap_limit(memsw_limit: Option<u64>, memory_limit: Option<u64>) -> Option<u64> {
    let (ml, l) = (memsw_limit?, memory_limit?);
    ml.checked_sub(l)
}

/// v1 `memory.numa_stat` counts pages, v2 bytes.
fn numa_rows(
    text: &str,
    pages: bool,
    page_size: u64,
) -> Result<Vec<(u32, String, u64)>, ParseError> {
    let n = parse::parse_numa_stat(text)?;
    let mut out = Vec::new();
    for (stat, nodes) in n.entries {
        for (node, v) in nodes {
            let bytes = if pages {
                v.saturating_mul(page_size)
            } else {
                v
            };
            out.push((node, stat.to_string(), bytes));
        }
    }
    Ok(out)
}

/// Hugetlb page sizes (`2MB`, `1GB`) named by the files of the first
/// cgroups below each hierarchy root; found once at start.
pub fn discover_hugetlb_sizes(layout: &Layout) -> Vec<Arc<str>> {
    let mut sizes = std::collections::BTreeSet::new();
    for h in &layout.hierarchies {
        if !h.unified && !h.controllers.contains(&Controller::Hugetlb) {
            continue;
        }
        let mut dirs = vec![h.root.clone()];
        if let Ok(rd) = std::fs::read_dir(&h.root) {
            dirs.extend(
                rd.flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path())
                    .take(3),
            );
        }
        for d in dirs {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if let Some(rest) = name.strip_prefix("hugetlb.") {
                    if let Some(size) = rest
                        .strip_suffix(".max")
                        .or_else(|| rest.strip_suffix(".limit_in_bytes"))
                    {
                        if !size.contains('.') {
                            sizes.insert(size.to_string());
                        }
                    }
                }
            }
        }
    }
    sizes.into_iter().map(Arc::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_numa_pages_are_converted_with_the_page_size_given() {
        let text = "total=3 N0=1 N1=2\nfile=2 N0=2 N1=0\nhierarchical_total=3 N0=1 N1=2\n";
        let rows = numa_rows(text, true, 65536).expect("parses");
        assert_eq!(
            rows,
            vec![
                (0, "total".to_string(), 65536),
                (1, "total".to_string(), 131072),
                (0, "file".to_string(), 131072),
                (1, "file".to_string(), 0),
            ]
        );
        let rows4k = numa_rows(text, true, 4096).expect("parses");
        assert_eq!(rows4k[1].2, 8192);
        // v2 values are bytes already.
        let v2 = numa_rows("anon N0=4096 N1=0\n", false, 65536).expect("parses");
        assert_eq!(v2[0].2, 4096);
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
    fn the_page_size_is_the_kernels() {
        let shared = Shared::new(
            Arc::new(Layout {
                mode: crate::cgroupfs::Mode::V2,
                hierarchies: Vec::new(),
                detected_from: "test",
            }),
            PathBuf::from("/proc"),
            0,
        );
        assert_eq!(shared.page_size, procfs::page_size());
        assert!(shared.page_size.is_power_of_two() && shared.page_size >= 4096);
    }
}
