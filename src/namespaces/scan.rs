//! The I/O half of the namespace module: walks a procfs root, reads each
//! new process's `ns/*` links, `cgroup` and `status` once, and the
//! per-namespace `net/dev` and `uid_map` from one member each.
//!
//! Kernel reference: <https://man7.org/linux/man-pages/man5/proc_pid_ns.5.html>.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::cgroupns::CgroupNsRoots;
use super::parse::{self, NetDevLine, NsType, ParseError};
use crate::cgroupfs::{CgroupPath, Layout};
use crate::kernel::{self, ErrnoClass};
use crate::kubernetes::path::{self as labels, PathLabels};

/// A process younger than this when it was read is read again on the next
/// scan: right after fork, runtimes still move it into its cgroup and call
/// `unshare`/`setns` (runc, `unshare`, `ip netns exec`), so a first look can
/// be stale. Older processes are trusted until they exit.
const SETTLE: Duration = Duration::from_secs(5);

/// How many members of one network namespace are tried for `net/dev`
/// before giving up for this scan.
const NET_DEV_TRIES: usize = 3;

/// Why one procfs read failed, with the path. errno is classified once,
/// in [`ScanError::from_io`].
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The process exited between listing and reading (ENOENT, ESRCH).
    /// Normal, never counted.
    #[error("{path}: process vanished")]
    Vanished { path: PathBuf },
    /// EACCES/EPERM: ptrace access checks on `ns/*` refuse some processes
    /// even to root (PID 1 in some sandboxes).
    #[error("{path}: permission denied")]
    Permission { path: PathBuf },
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

impl ScanError {
    pub fn from_io(path: &Path, err: io::Error) -> Self {
        let path = path.to_path_buf();
        // Non-UTF-8 content (a cgroup name with odd bytes) is a parse
        // problem, not an I/O one.
        if err.kind() == io::ErrorKind::InvalidData {
            return ScanError::Parse {
                path,
                source: ParseError::new(0, "not UTF-8"),
            };
        }
        match kernel::classify(&err) {
            // Under /proc/<pid>, a missing file means the process exited
            // between listing and reading.
            ErrnoClass::Absent | ErrnoClass::Vanished => ScanError::Vanished { path },
            ErrnoClass::Permission => ScanError::Permission { path },
            ErrnoClass::Unsupported | ErrnoClass::Other => ScanError::Io { path, source: err },
        }
    }

    /// The `reason` label of `cgroup_psi_exporter_namespace_read_errors_total`,
    /// or `None` for what is not an error (a vanished process).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            ScanError::Vanished { .. } => None,
            ScanError::Permission { .. } => Some("permission"),
            ScanError::Parse { .. } => Some("parse"),
            ScanError::Io { .. } => Some("io"),
        }
    }
}

/// Cumulative read errors by reason, since the collector was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadErrors {
    pub permission: u64,
    pub parse: u64,
    pub io: u64,
}

impl ReadErrors {
    pub fn by_reason(&self) -> [(&'static str, u64); 3] {
        [
            ("io", self.io),
            ("parse", self.parse),
            ("permission", self.permission),
        ]
    }
}

/// Where the host's namespaces were taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSource {
    /// `<procfs>/1/ns/*`: PID 1 of the procfs being read.
    Pid1,
    /// `<procfs>/self/ns/*`: the exporter's own, right when it runs in the
    /// host's namespaces (hostPID, hostNetwork, ...).
    SelfProcess,
    /// Neither could be read: no `cgroup_host_namespace` series.
    Unknown,
}

impl HostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            HostSource::Pid1 => "pid1",
            HostSource::SelfProcess => "self",
            HostSource::Unknown => "unknown",
        }
    }
}

/// What one process contributed, read once per (pid, starttime).
#[derive(Debug, Clone)]
struct CachedProc {
    starttime: u64,
    ns: [Option<u64>; 8],
    cgroup: Option<CgroupPath>,
    uid: Option<u32>,
    /// False while the process was too young to trust: re-read next scan.
    settled: bool,
    /// The scan that last saw it; older entries are evicted.
    generation: u64,
}

/// One cgroup's view of its processes.
#[derive(Debug, Clone)]
pub struct CgroupNamespaces {
    pub labels: Arc<PathLabels>,
    pub processes: u64,
    /// Processes whose real uid is 0 in the exporter's user namespace.
    pub host_root_processes: u64,
    /// Every (type, inode) seen among the cgroup's processes.
    pub namespaces: BTreeSet<(NsType, u64)>,
    /// Per type: whether every process with a readable link shares the
    /// host's namespace. A type is absent when the host's link or every
    /// member's link is unknown: no answer rather than a guess.
    pub host_namespace: BTreeMap<NsType, bool>,
}

/// The result of one scan, ready to encode.
#[derive(Debug, Clone, Default)]
pub struct NamespaceSnapshot {
    /// Process count per (type, inode).
    pub namespaces: BTreeMap<(NsType, u64), u64>,
    pub cgroups: BTreeMap<CgroupPath, CgroupNamespaces>,
    /// Interface counters per network namespace inode.
    pub network: BTreeMap<u64, Vec<NetDevLine>>,
    /// Per user namespace inode: uid 0 inside is uid 0 outside.
    pub user_root_mapped_to_host: BTreeMap<u64, bool>,
    pub host_source: Option<HostSource>,
    pub host_namespaces: [Option<u64>; 8],
    /// Processes seen by this scan.
    pub processes: usize,
    /// Processes read from disk by this scan (not answered from the cache).
    pub processes_read: usize,
    pub processes_cached: usize,
    pub duration: Duration,
    pub read_errors: ReadErrors,
}

impl NamespaceSnapshot {
    /// Number of distinct namespaces per type.
    pub fn count_by_type(&self) -> BTreeMap<NsType, u64> {
        let mut out = BTreeMap::new();
        for (t, _) in self.namespaces.keys() {
            *out.entry(*t).or_insert(0) += 1;
        }
        out
    }
}

/// State kept between scans. Lives behind the collector's mutex.
#[derive(Debug)]
pub(crate) struct Scanner {
    procfs: PathBuf,
    procs: HashMap<u32, CachedProc>,
    labels: HashMap<CgroupPath, Arc<PathLabels>>,
    net_member: HashMap<u64, u32>,
    user_root: HashMap<u64, bool>,
    logged_host: Option<HostSource>,
    warned_outside_cgroupns: bool,
    /// Where to look for the exporter's own cgroup; `None`: paths are
    /// taken as they read.
    layout: Option<Arc<Layout>>,
    /// Found at the first scan when `layout` is set.
    cgroupns: Option<CgroupNsRoots>,
    errors: ReadErrors,
    generation: u64,
    ticks_per_second: u64,
    buf: String,
}

impl Scanner {
    pub(crate) fn new(procfs: PathBuf) -> Self {
        Self {
            procfs,
            procs: HashMap::new(),
            labels: HashMap::new(),
            net_member: HashMap::new(),
            user_root: HashMap::new(),
            logged_host: None,
            warned_outside_cgroupns: false,
            layout: None,
            cgroupns: None,
            errors: ReadErrors::default(),
            generation: 0,
            ticks_per_second: procfs::ticks_per_second().max(1),
            buf: String::with_capacity(4096),
        }
    }

    pub(crate) fn set_layout(&mut self, layout: Arc<Layout>) {
        self.layout = Some(layout);
        self.cgroupns = None;
    }

    pub(crate) fn scan(&mut self) -> NamespaceSnapshot {
        let started = Instant::now();
        if self.cgroupns.is_none() {
            if let Some(layout) = &self.layout {
                self.cgroupns = Some(CgroupNsRoots::detect(&self.procfs, layout));
            }
        }
        self.generation += 1;
        let now_ticks = self.uptime_ticks();
        let mut seen = 0usize;
        let mut read = 0usize;
        match fs::read_dir(&self.procfs) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                        continue;
                    };
                    match self.visit(pid, now_ticks) {
                        Visit::Cached => seen += 1,
                        Visit::Read => {
                            seen += 1;
                            read += 1;
                        }
                        Visit::Skipped => {}
                    }
                }
            }
            Err(e) => {
                warn!(procfs = %self.procfs.display(), error = %e, "cannot list procfs");
                self.count(&ScanError::from_io(&self.procfs, e));
            }
        }
        let generation = self.generation;
        self.procs.retain(|_, p| p.generation == generation);

        let mut snap = self.aggregate();
        snap.processes = seen;
        snap.processes_read = read;
        snap.processes_cached = self.procs.len();
        snap.read_errors = self.errors;
        snap.duration = started.elapsed();
        debug!(
            processes = seen,
            read,
            elapsed_us = snap.duration.as_micros() as u64,
            "namespace scan done"
        );
        snap
    }

    fn count(&mut self, err: &ScanError) {
        match err.reason() {
            None => debug!(error = %err, "process vanished during scan"),
            Some(reason) => {
                debug!(error = %err, reason, "namespace read failed");
                match reason {
                    "permission" => self.errors.permission += 1,
                    "parse" => self.errors.parse += 1,
                    _ => self.errors.io += 1,
                }
            }
        }
    }

    /// Clock ticks since boot from `<procfs>/uptime`, to age processes.
    /// `None` (a fixture without it) trusts every process at once.
    fn uptime_ticks(&mut self) -> Option<u64> {
        let path = self.procfs.join("uptime");
        read_into(&path, &mut self.buf).ok()?;
        let secs: f64 = self.buf.split_ascii_whitespace().next()?.parse().ok()?;
        Some((secs * self.ticks_per_second as f64) as u64)
    }

    fn visit(&mut self, pid: u32, now_ticks: Option<u64>) -> Visit {
        let dir = self.procfs.join(pid.to_string());
        let stat = dir.join("stat");
        let starttime = match read_into(&stat, &mut self.buf).and_then(|()| {
            parse::parse_stat_starttime(&self.buf).map_err(|source| ScanError::Parse {
                path: stat.clone(),
                source,
            })
        }) {
            Ok(t) => t,
            Err(e) => {
                self.count(&e);
                return Visit::Skipped;
            }
        };
        // An exited task (a zombie its parent has not reaped) is not a
        // process of its cgroup, as in the kernel's cgroup.procs; counting
        // it kept a cgroup emptied by cgroup.kill and removed in /metrics.
        if parse::stat_is_exited(&self.buf) {
            self.procs.remove(&pid);
            return Visit::Skipped;
        }
        if let Some(c) = self.procs.get_mut(&pid) {
            if c.starttime == starttime && c.settled {
                c.generation = self.generation;
                return Visit::Cached;
            }
        }
        match self.read_process(&dir, starttime) {
            Ok(mut p) => {
                p.settled = match now_ticks {
                    Some(now) => {
                        let settle = SETTLE.as_secs() * self.ticks_per_second;
                        now.saturating_sub(starttime) >= settle
                    }
                    None => true,
                };
                self.procs.insert(pid, p);
                Visit::Read
            }
            Err(e) => {
                self.count(&e);
                self.procs.remove(&pid);
                Visit::Skipped
            }
        }
    }

    /// Reads one process. Only a vanished `cgroup` or `status` drops it: a
    /// missing `ns/<type>` link may just be a type this kernel lacks
    /// (`time` before 5.6), and other failures are counted and leave the
    /// field unknown.
    fn read_process(&mut self, dir: &Path, starttime: u64) -> Result<CachedProc, ScanError> {
        let mut ns = [None; 8];
        let ns_dir = dir.join("ns");
        for t in NsType::ALL {
            match read_ns_link(&ns_dir, t) {
                Ok(inode) => ns[t.index()] = Some(inode),
                Err(e) => self.count(&e),
            }
        }

        let cgroup_file = dir.join("cgroup");
        let cgroup = match read_into(&cgroup_file, &mut self.buf) {
            Err(e @ ScanError::Vanished { .. }) => return Err(e),
            Err(e) => {
                self.count(&e);
                None
            }
            Ok(()) => match parse::parse_proc_cgroup(self.host_view_of_buf()) {
                Ok(path) => Some(CgroupPath::new(path)),
                Err(source) => {
                    self.count(&ScanError::Parse {
                        path: cgroup_file,
                        source,
                    });
                    None
                }
            },
        };
        if let Some(c) = &cgroup {
            if c.as_str().starts_with("/..") && !self.warned_outside_cgroupns {
                // Kernel quirk: `/proc/<pid>/cgroup` is rendered relative to
                // the reader's cgroup namespace; processes outside it show
                // `/../..`. Mapping them back (cgroupns.rs) needs the
                // exporter's own cgroup, found by its pid under
                // --path.cgroupfs: it was not.
                warn!(cgroup = %c, "process outside the exporter's cgroup namespace and its own cgroup not found under --path.cgroupfs (hostPID off?): paths are relative");
                self.warned_outside_cgroupns = true;
            }
        }

        let status = dir.join("status");
        let uid = match read_into(&status, &mut self.buf) {
            Err(e @ ScanError::Vanished { .. }) => return Err(e),
            Err(e) => {
                self.count(&e);
                None
            }
            Ok(()) => match parse::parse_status_uid(&self.buf) {
                Ok(uid) => Some(uid),
                Err(source) => {
                    self.count(&ScanError::Parse {
                        path: status,
                        source,
                    });
                    None
                }
            },
        };

        Ok(CachedProc {
            starttime,
            ns,
            cgroup,
            uid,
            settled: true,
            generation: self.generation,
        })
    }

    /// The `/proc/<pid>/cgroup` text in `buf`, with host paths when the
    /// exporter is in a private cgroup namespace.
    fn host_view_of_buf(&mut self) -> &str {
        if let Some(rewritten) = self.cgroupns.as_ref().and_then(|ns| ns.rewrite(&self.buf)) {
            self.buf = rewritten;
        }
        &self.buf
    }

    /// PID 1's links, or the exporter's own where PID 1's cannot be read
    /// (sandboxes refuse `/proc/1/ns/*` even to root). Not counted as
    /// errors: PID 1's own entry already counted them.
    fn host_reference(&mut self) -> (HostSource, [Option<u64>; 8]) {
        let mut chosen = (HostSource::Unknown, [None; 8]);
        for (source, dir) in [(HostSource::Pid1, "1"), (HostSource::SelfProcess, "self")] {
            let ns_dir = self.procfs.join(dir).join("ns");
            let mut links = [None; 8];
            for t in NsType::ALL {
                links[t.index()] = read_ns_link(&ns_dir, t).ok();
            }
            if links.iter().any(Option::is_some) {
                chosen = (source, links);
                break;
            }
        }
        if self.logged_host != Some(chosen.0) {
            info!(
                reference = chosen.0.as_str(),
                procfs = %self.procfs.display(),
                "host namespace reference chosen"
            );
            self.logged_host = Some(chosen.0);
        }
        chosen
    }

    fn aggregate(&mut self) -> NamespaceSnapshot {
        let (source, host) = self.host_reference();
        let mut snap = NamespaceSnapshot {
            host_source: Some(source),
            host_namespaces: host,
            ..NamespaceSnapshot::default()
        };
        // Members per net and user namespace, lowest pid first so the
        // choice of member is stable across scans.
        let mut net_members: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        let mut user_members: BTreeMap<u64, Vec<u32>> = BTreeMap::new();

        let mut pids: Vec<u32> = self.procs.keys().copied().collect();
        pids.sort_unstable();
        let mut cgroups: BTreeMap<CgroupPath, CgroupNamespaces> = BTreeMap::new();
        // Disjoint field borrows: the cache is read while the label cache grows.
        let (procs, label_cache) = (&self.procs, &mut self.labels);
        for (pid, p) in pids.iter().filter_map(|pid| Some((*pid, procs.get(pid)?))) {
            for t in NsType::ALL {
                let Some(inode) = p.ns[t.index()] else {
                    continue;
                };
                *snap.namespaces.entry((t, inode)).or_insert(0) += 1;
                match t {
                    NsType::Net => net_members.entry(inode).or_default().push(pid),
                    NsType::User => user_members.entry(inode).or_default().push(pid),
                    _ => {}
                }
            }
            let Some(path) = &p.cgroup else { continue };
            let c = cgroups
                .entry(path.clone())
                .or_insert_with(|| CgroupNamespaces {
                    labels: label_cache
                        .entry(path.clone())
                        .or_insert_with(|| Arc::new(labels::from_path(path)))
                        .clone(),
                    processes: 0,
                    host_root_processes: 0,
                    namespaces: BTreeSet::new(),
                    host_namespace: BTreeMap::new(),
                });
            c.processes += 1;
            if p.uid == Some(0) {
                c.host_root_processes += 1;
            }
            for t in NsType::ALL {
                let Some(inode) = p.ns[t.index()] else {
                    continue;
                };
                c.namespaces.insert((t, inode));
                if let Some(host_inode) = host[t.index()] {
                    *c.host_namespace.entry(t).or_insert(true) &= inode == host_inode;
                }
            }
        }
        self.labels.retain(|k, _| cgroups.contains_key(k));
        snap.cgroups = cgroups;

        self.net_member.retain(|k, _| net_members.contains_key(k));
        for (inode, members) in &net_members {
            if let Some(lines) = self.read_net_dev(*inode, members) {
                snap.network.insert(*inode, lines);
            }
        }

        self.user_root.retain(|k, _| user_members.contains_key(k));
        for (inode, members) in &user_members {
            if let Some(mapped) = self.read_user_root(*inode, members) {
                snap.user_root_mapped_to_host.insert(*inode, mapped);
            }
        }
        snap
    }

    /// Counters of one network namespace from the cached member, or the
    /// next member when that one has exited or fails.
    fn read_net_dev(&mut self, inode: u64, members: &[u32]) -> Option<Vec<NetDevLine>> {
        let cached = self
            .net_member
            .get(&inode)
            .copied()
            .filter(|m| members.contains(m));
        let order = cached
            .into_iter()
            .chain(members.iter().copied().filter(|m| Some(*m) != cached))
            .take(NET_DEV_TRIES);
        for pid in order.collect::<Vec<_>>() {
            let path = self.procfs.join(pid.to_string()).join("net").join("dev");
            let result = read_into(&path, &mut self.buf).and_then(|()| {
                parse::parse_net_dev(&self.buf).map_err(|source| ScanError::Parse {
                    path: path.clone(),
                    source,
                })
            });
            match result {
                Ok(lines) => {
                    self.net_member.insert(inode, pid);
                    return Some(lines);
                }
                Err(e) => self.count(&e),
            }
        }
        self.net_member.remove(&inode);
        None
    }

    /// Whether uid 0 maps to uid 0, cached per user namespace once a
    /// mapping is present (a map can be written only once).
    fn read_user_root(&mut self, inode: u64, members: &[u32]) -> Option<bool> {
        if let Some(v) = self.user_root.get(&inode) {
            return Some(*v);
        }
        for pid in members.iter().take(NET_DEV_TRIES) {
            let path = self.procfs.join(pid.to_string()).join("uid_map");
            let result = read_into(&path, &mut self.buf).and_then(|()| {
                parse::parse_uid_map(&self.buf).map_err(|source| ScanError::Parse {
                    path: path.clone(),
                    source,
                })
            });
            match result {
                Ok(map) => {
                    let mapped = parse::root_maps_to_root(&map);
                    // Kernel quirk: a new user namespace has an empty map
                    // until its creator writes one; do not cache that.
                    if !map.is_empty() {
                        self.user_root.insert(inode, mapped);
                    }
                    return Some(mapped);
                }
                Err(e) => self.count(&e),
            }
        }
        None
    }
}

enum Visit {
    Cached,
    Read,
    Skipped,
}

/// Reads a whole procfs file into `buf`, to EOF (a short read is not EOF).
fn read_into(path: &Path, buf: &mut String) -> Result<(), ScanError> {
    buf.clear();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map(|_| ())
        .map_err(|e| ScanError::from_io(path, e))
}

/// `readlink`, not `stat`: the target text is the whole answer, and a fake
/// tree's dangling `net -> net:[4026531840]` links read the same as the
/// kernel's magic links.
fn read_ns_link(ns_dir: &Path, t: NsType) -> Result<u64, ScanError> {
    let path = ns_dir.join(t.as_str());
    let target = fs::read_link(&path).map_err(|e| ScanError::from_io(&path, e))?;
    let Some(target) = target.to_str() else {
        return Err(ScanError::Parse {
            path,
            source: ParseError::new(1, "ns link target is not UTF-8"),
        });
    };
    parse::parse_ns_link(t, target).map_err(|source| ScanError::Parse { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classification_separates_vanished_from_errors() {
        let p = Path::new("/x");
        let v = ScanError::from_io(p, io::Error::from_raw_os_error(libc::ESRCH));
        assert_eq!(v.reason(), None);
        let v = ScanError::from_io(p, io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(v.reason(), None);
        let e = ScanError::from_io(p, io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.reason(), Some("permission"));
        let e = ScanError::from_io(p, io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.reason(), Some("permission"));
        let e = ScanError::from_io(p, io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(e.reason(), Some("io"));
        assert!(e.to_string().starts_with("/x: "), "{e}");
    }

    #[test]
    fn scan_of_a_missing_root_is_empty() {
        let mut s = Scanner::new(PathBuf::from("/nonexistent-cgpe-procfs"));
        let snap = s.scan();
        assert_eq!(snap.processes, 0);
        assert!(snap.namespaces.is_empty());
        assert_eq!(snap.host_source, Some(HostSource::Unknown));
    }
}
