//! Reads one cgroup's files from every hierarchy it exists in, as the
//! collector's [`Plan`] asks, into one [`CgroupFiles`]: parsed, in kernel
//! units, nothing merged or converted (that is the collector's mapping).
//! File-level concerns live here: the kept descriptors ([`FdCache`]), the
//! memo of files a cgroup lacks, the reused buffer.
//!
//! Errors are classified once ([`ReadError::from_io`], on
//! [`crate::kernel::classify`]): a cgroup that vanished mid-read is dropped
//! from the scrape, a file that fails to parse is skipped and counted by
//! file name, a file that is simply absent (a controller that is off, an
//! older kernel, hidden pressure files) is an absent series.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fs::File as StdFile;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fdcache::{FastHash, FdCache};
use super::files::{CgroupFiles, File, FileSet, Home, Hugetlb, Plan, ALL, SETTINGS};
use super::layout::{Controller, Hierarchy, HierarchySet, Layout};
use super::parse::{self, ParseError};
use super::CgroupPath;
use crate::cgroupfs::stamps::Modified;
use crate::kernel::{self, ErrnoClass};

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
    /// errno to this layer's policy, on the shared table.
    pub fn from_io(path: &Path, err: io::Error) -> ReadError {
        let path = path.to_path_buf();
        match kernel::classify(&err) {
            ErrnoClass::Absent => ReadError::Absent { path },
            ErrnoClass::Vanished => ReadError::Vanished { path },
            ErrnoClass::Unsupported => ReadError::Unsupported { path },
            ErrnoClass::Permission | ErrnoClass::Other => ReadError::Io { path, source: err },
        }
    }
}

/// A counted, non-fatal problem with one file.
#[derive(Debug)]
pub struct SoftError {
    pub file: &'static str,
    pub error: ReadError,
}

/// Files found absent per cgroup, per hierarchy.
type AbsentMemo = HashMap<CgroupPath, Vec<(u8, FileSet)>, FastHash>;

/// One cgroup directory's settings as last read, under the write stamp
/// they were read with.
#[derive(Debug)]
struct Kept {
    stamp: u64,
    texts: Texts,
    /// cgroup2: the directory's `cgroup.controllers`, which only a write to
    /// the parent's `cgroup.subtree_control` changes (and that write moves
    /// every stamp). A cgroup turning threaded cannot change it: the kernel
    /// refuses `threaded` while the parent enables a domain controller.
    controllers: Option<Controllers>,
}

/// A directory's kept settings texts, in one allocation: records of
/// `[file][length, u32 LE][text]`, looked up by a scan (a directory has at
/// most a handful). A `Box<str>` per text in a `Vec` cost ~250 bytes of
/// allocations a directory, ~2 MiB of heap at 2,000 hybrid cgroups. A
/// boxed slice, exactly as long as its records (8 bytes less than a `Vec`
/// in every kept directory's map entry): texts are added only when
/// settings are read afresh, after a write.
#[derive(Debug, Default)]
struct Texts(Box<[u8]>);

impl Texts {
    fn push(&mut self, f: File, text: &str) {
        // A text over 4 GiB is not kept: it is read again next time.
        let Ok(len) = u32::try_from(text.len()) else {
            return;
        };
        let mut v = std::mem::take(&mut self.0).into_vec();
        v.reserve_exact(5 + text.len());
        v.push(f as u8);
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(text.as_bytes());
        self.0 = v.into_boxed_slice();
    }

    fn get(&self, f: File) -> Option<&str> {
        let mut rest = &self.0[..];
        while let [g, a, b, c, d, tail @ ..] = rest {
            let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
            let (text, next) = tail.split_at_checked(len)?;
            if *g == f as u8 {
                return std::str::from_utf8(text).ok();
            }
            rest = next;
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a scrape keeps of one cgroup directory (in one hierarchy) for the
/// next: its settings and its `O_PATH` descriptor. Taken when the reader
/// enters the directory and put back when it leaves it: one map lookup
/// each way for both.
#[derive(Debug)]
struct DirState {
    /// The scrape that last read the directory, modulo 2^32 (only ever
    /// compared with the current one; 32 bits pack it with `fd`).
    used: u32,
    fd: Option<rustix::fd::OwnedFd>,
    kept: Option<Kept>,
}

/// The [`DirState`]s, and how many of them hold a descriptor (what
/// `dir_capacity` bounds).
#[derive(Debug, Default)]
struct Dirs {
    map: HashMap<(u8, CgroupPath), DirState, FastHash>,
    fds: usize,
}

impl Dirs {
    fn retain(&mut self, mut keep: impl FnMut(&mut DirState) -> bool) {
        self.map.retain(|_, s| keep(s));
        self.fds = self.map.values().filter(|s| s.fd.is_some()).count();
    }
}

/// Default bound of [`Shared::dirs`]: ~256 bytes of kernel memory each
/// (a `struct file`; an `O_PATH` descriptor has no seq_file page), so
/// 32768 pin ~8 MiB, enough for every multi-file directory of ~10,000
/// hybrid cgroups.
pub const DIRS_AUTO_MAX: usize = 32768;

/// State shared by the reader threads across scrapes: what the kernel does
/// not change between scrapes, learned once.
#[derive(Debug)]
pub struct Shared {
    pub layout: Arc<Layout>,
    pub hugetlb_sizes: Arc<[Arc<str>]>,
    pub fds: Arc<FdCache>,
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
    /// Write stamps of watched directories (`None`: every file is read
    /// every scrape).
    modified: Option<Arc<Modified>>,
    generation: std::sync::atomic::AtomicU64,
    /// Each hierarchy's root directory, opened `O_PATH` once, by
    /// [`HierarchyId`](super::layout::HierarchyId): files that miss the fd
    /// cache are opened relative to it, so the kernel walks only the
    /// cgroup's own components, not `/sys/fs/cgroup/<controller>` again
    /// for every open (the walk, with kernfs revalidation and permission
    /// checks per component, was the largest part of an open's cost in a
    /// profile). `None` where the open failed: full paths.
    roots: Vec<Option<rustix::fd::OwnedFd>>,
    /// Per hierarchy (by id), the files whose home it is: a directory's
    /// read walks the plan's files of its hierarchy only, instead of every
    /// file the exporter knows (~70) in each of a hybrid cgroup's 8
    /// directories.
    homes: Vec<FileSet>,
    /// What is kept per (hierarchy, cgroup) directory between scrapes.
    ///
    /// Settings: [`SETTINGS`] files' text (and on cgroup2
    /// `cgroup.controllers`), kept while the directory's write stamp is
    /// unchanged: about half of a v1 cgroup's files, not opened again
    /// until written. Dropped every [`ABSENT_MEMO_TTL`] with the absent
    /// memo (a device removed from a disk drops out of
    /// `blkio.throttle.*_device` without a write).
    ///
    /// The directory's `O_PATH` descriptor: a miss of the fd cache is then
    /// `openat(dir, name)`, one path component, in every scrape, instead
    /// of a walk of the cgroup's path below the hierarchy's root and,
    /// from the second miss of a directory on, an `O_PATH` open of the
    /// directory itself. Path lookups (`__d_lookup`, kernfs revalidation
    /// and permission checks per component) were a quarter of a
    /// 2,000-cgroup scrape's CPU. A directory descriptor pins only a
    /// `struct file` (~256 bytes, no seq_file page), 1/17 of a kept stat
    /// file's kernel memory for a similar saving, so it is the cheaper
    /// way to spend descriptors. Bounded by `dir_capacity`; all of them
    /// closed when the process runs out of descriptors.
    ///
    /// Both are dropped for cgroups a complete scrape did not read.
    dirs: Mutex<Dirs>,
    dir_capacity: std::sync::atomic::AtomicUsize,
}

/// How long a file stays known-absent before it is probed again (a
/// controller can be enabled at run time).
pub const ABSENT_MEMO_TTL: Duration = Duration::from_secs(60);

impl Shared {
    /// `modified`: the registry's write stamps, when its watcher runs;
    /// `fd_cache` and `dirs`: how many stat files and cgroup directories
    /// to keep open between scrapes.
    pub fn new(
        layout: Arc<Layout>,
        fd_cache: usize,
        dirs: usize,
        modified: Option<Arc<Modified>>,
    ) -> Shared {
        let hugetlb_sizes: Arc<[Arc<str>]> = discover_hugetlb_sizes(&layout).into();
        let unified_without_controllers = layout.mode == super::Mode::Hybrid
            && layout
                .unified()
                .and_then(|u| std::fs::read_to_string(u.root.join("cgroup.controllers")).ok())
                .is_some_and(|t| t.trim().is_empty());
        let mut roots = Vec::new();
        let mut homes = Vec::new();
        for h in &layout.hierarchies {
            let i = usize::from(h.id.0);
            if roots.len() <= i {
                roots.resize_with(i + 1, || None);
                homes.resize(i + 1, FileSet::EMPTY);
            }
            roots[i] = open_dir(None, &h.root).ok();
            homes[i] = ALL
                .iter()
                .copied()
                .filter(|f| match f.info().home {
                    Home::V2(_) => h.unified,
                    Home::V1(c) => !h.unified && h.controllers.contains(&c),
                })
                .fold(FileSet::EMPTY, FileSet::with);
        }
        Shared {
            unified_without_controllers,
            roots,
            homes,
            layout,
            hugetlb_sizes,
            fds: Arc::new(FdCache::new(fd_cache)),
            absent: RwLock::new(HashMap::with_hasher(FastHash)),
            absent_since: Mutex::new(Instant::now()),
            modified,
            generation: std::sync::atomic::AtomicU64::new(0),
            dirs: Mutex::new(Dirs::default()),
            dir_capacity: std::sync::atomic::AtomicUsize::new(dirs),
        }
    }

    /// What is left for kept directory descriptors under the soft
    /// `RLIMIT_NOFILE` (`None`: unlimited) once the fd cache has taken
    /// `fd_cache` of its half and `in_use` are open: the rest of that
    /// half less headroom, at most [`DIRS_AUTO_MAX`]. The other half stays
    /// for sockets, PSI triggers, OOM watchers and namespace scans.
    pub fn auto_dirs(soft: Option<u64>, in_use: usize, fd_cache: usize) -> usize {
        if fd_cache == 0 {
            // `metrics.fd_cache: 0`: keep nothing open between scrapes.
            return 0;
        }
        let soft = soft.map_or(1 << 20, |s| usize::try_from(s).unwrap_or(usize::MAX));
        (soft.saturating_sub(in_use) / 2)
            .saturating_sub(512)
            .saturating_sub(fd_cache)
            .min(DIRS_AUTO_MAX)
    }

    /// What was kept of `cg`'s directory in `h`: its settings, if the
    /// directory is watched for writes (still valid when no write came
    /// since, else empty, to be filled by this read), and its descriptor.
    fn take_dir(
        &self,
        h: &Hierarchy,
        cg: &CgroupPath,
    ) -> (Option<Kept>, Option<rustix::fd::OwnedFd>) {
        let stamp = self.modified.as_ref().and_then(|m| m.stamp(h.id, cg));
        let old = {
            let mut dirs = self.dirs.lock();
            let old = dirs.map.remove(&(h.id.0, cg.clone()));
            if old.as_ref().is_some_and(|s| s.fd.is_some()) {
                dirs.fds -= 1;
            }
            old
        };
        let (old_kept, fd) = old.map_or((None, None), |s| (s.kept, s.fd));
        let kept = stamp.map(|stamp| match old_kept {
            Some(k) if k.stamp == stamp => k,
            _ => Kept {
                stamp,
                texts: Texts::default(),
                controllers: None,
            },
        });
        (kept, fd)
    }

    /// Keeps what a read of `cg`'s directory in `h` leaves: its settings,
    /// if it has any, and its descriptor if there is room (else it is
    /// closed).
    fn put_dir(
        &self,
        h: &Hierarchy,
        cg: &CgroupPath,
        kept: Option<Kept>,
        fd: Option<rustix::fd::OwnedFd>,
    ) {
        // A hierarchy without settings (cpuacct, freezer) has nothing to
        // keep but its descriptor.
        let kept = kept.filter(|k| !k.texts.is_empty() || k.controllers.is_some());
        let cap = self.dir_capacity.load(std::sync::atomic::Ordering::Relaxed);
        let used = self.generation.load(std::sync::atomic::Ordering::Relaxed) as u32;
        let mut dirs = self.dirs.lock();
        let fd = fd.filter(|_| dirs.fds < cap);
        if kept.is_none() && fd.is_none() {
            return;
        }
        if fd.is_some() {
            dirs.fds += 1;
        }
        let state = DirState { used, kept, fd };
        if let Some(old) = dirs.map.insert((h.id.0, cg.clone()), state) {
            if old.fd.is_some() {
                dirs.fds -= 1;
            }
        }
    }

    /// Out of descriptors: close every kept directory and halve the bound.
    fn dirs_back_off(&self) {
        let mut dirs = self.dirs.lock();
        if dirs.fds == 0 {
            // Another reader thread saw the same shortage and has given
            // them back already: halving again would leave none.
            return;
        }
        let cap = dirs.fds / 2;
        self.dir_capacity
            .store(cap, std::sync::atomic::Ordering::Relaxed);
        let closed = dirs.fds;
        dirs.retain(|s| {
            s.fd = None;
            s.kept.is_some()
        });
        tracing::warn!(
            closed,
            capacity = cap,
            "out of file descriptors: kept cgroup directories closed"
        );
    }

    /// Called once per scrape.
    pub fn start_scrape(&self) {
        self.fds.next_generation();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut since = self.absent_since.lock();
        if since.elapsed() >= ABSENT_MEMO_TTL {
            *since = Instant::now();
            self.dirs.lock().retain(|s| {
                s.kept = None;
                s.fd.is_some()
            });
            self.absent.write().clear();
        }
    }

    /// Called when a scrape has read every tracked cgroup.
    pub fn end_complete_scrape(&self) {
        self.fds.close_unread();
        let g = self.generation.load(std::sync::atomic::Ordering::Relaxed);
        self.dirs.lock().retain(|s| s.used == g as u32);
    }

    /// The files of `cg` in hierarchy `h` known to be absent: looked up
    /// once per directory a scrape enters, not once per file.
    fn absent_in(&self, h: u8, cg: &CgroupPath) -> FileSet {
        self.absent
            .read()
            .get(cg)
            .and_then(|v| v.iter().find(|(id, _)| *id == h))
            .map_or(FileSet::EMPTY, |(_, set)| *set)
    }

    fn mark_absent(&self, h: u8, cg: &CgroupPath, file: File) {
        let mut memo = self.absent.write();
        let per_h = memo.entry(cg.clone()).or_default();
        match per_h.iter_mut().find(|(id, _)| *id == h) {
            Some((_, set)) => *set = set.with(file),
            None => per_h.push((h, FileSet::EMPTY.with(file))),
        }
    }
}

/// A set of controllers, a bit each: kept per cgroup2 directory, so
/// small.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Controllers(u8);

impl Controllers {
    fn contains(self, c: Controller) -> bool {
        self.0 & (1 << c as u8) != 0
    }
}

/// v2 controllers enabled for a cgroup (its `cgroup.controllers`, where
/// the io controller is named `io`): only their interface files exist.
fn v2_controllers(text: &str) -> Controllers {
    text.split_ascii_whitespace()
        .filter_map(|w| match w {
            "io" => Some(Controller::Blkio),
            "cpuacct" | "blkio" | "freezer" => None,
            other => Controller::from_name(other),
        })
        .fold(Controllers::default(), |s, c| {
            Controllers(s.0 | 1 << c as u8)
        })
}

/// Opens `path` as an `O_PATH` directory descriptor, relative to `base`
/// when given.
fn open_dir(
    base: Option<&rustix::fd::OwnedFd>,
    path: &Path,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match base {
        Some(b) => rustix::fs::openat(b, path, flags, Mode::empty()),
        None => rustix::fs::open(path, flags, Mode::empty()),
    }
}

/// Opens `rel` (relative to the hierarchy's root) read-only: relative to
/// the root's descriptor when there is one, else by the full path `full`.
fn open_file(base: Option<&rustix::fd::OwnedFd>, rel: &Path, full: &Path) -> io::Result<StdFile> {
    use rustix::fs::{Mode, OFlags};
    match base {
        Some(b) if !rel.as_os_str().is_empty() => {
            rustix::fs::openat(b, rel, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map(StdFile::from)
                .map_err(io::Error::from)
        }
        _ => StdFile::open(full),
    }
}

/// The directory of the cgroup being read in one hierarchy. Kept from an
/// earlier scrape when [`Shared::dirs`] has it; else opened (`O_PATH`)
/// once a second file of it misses the fd cache, and then kept if there
/// is room. With a directory descriptor a miss is `openat(dir, name)`, a
/// one-component lookup, instead of a walk of the cgroup's path
/// (`a/b/c/memory.stat` below the hierarchy's root descriptor), which
/// dominated the kernel's side of a profile of scrapes whose files do not
/// all fit the cache; a hierarchy with a single miss never pays for
/// opening it.
#[derive(Debug)]
enum DirFd {
    /// Not opened; the count of misses so far.
    Closed(u8),
    /// Opened in this scrape.
    Open(rustix::fd::OwnedFd),
    /// Kept from an earlier scrape: the directory may have been removed
    /// since, and maybe made again under the same name.
    Kept(rustix::fd::OwnedFd),
    /// Opening it failed (`emfile`: for want of descriptors): paths,
    /// which report the error as before.
    Failed { emfile: bool },
}

/// Misses in one cgroup directory before it is opened.
const DIRFD_AFTER_MISSES: u8 = 1;

/// Where a file of the cgroup being read is: the hierarchy root's
/// descriptor (if open), the cgroup's directory relative to the root and
/// in full, and the file's name.
struct Place<'a> {
    base: Option<&'a rustix::fd::OwnedFd>,
    rel_dir: &'a Path,
    dir: &'a Path,
    name: &'a str,
}

fn open_at(dir: &rustix::fd::OwnedFd, name: &str) -> rustix::io::Result<StdFile> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map(StdFile::from)
}

impl DirFd {
    /// Opens `at.name` in the directory `at` describes; `rel` and `full`
    /// are the file's paths relative to the root and in full.
    fn open(&mut self, at: &Place<'_>, rel: &Path, full: &Path) -> io::Result<StdFile> {
        if let DirFd::Kept(fd) = self {
            return match open_at(fd, at.name) {
                Ok(f) => Ok(f),
                Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NODEV => {
                    // The file is absent, or the kept directory is a
                    // removed one (kernfs answers ENOENT under it even
                    // when a cgroup of the same name exists again): the
                    // path tells which. Absent files are rare here (the
                    // absent memo skips them), so this costs little.
                    let by_path = open_file(at.base, rel, full);
                    if by_path.is_ok() {
                        *self = DirFd::Closed(DIRFD_AFTER_MISSES);
                    }
                    by_path
                }
                Err(e) => Err(e.into()),
            };
        }
        if let DirFd::Closed(misses) = self {
            if *misses < DIRFD_AFTER_MISSES {
                *misses += 1;
                return open_file(at.base, rel, full);
            }
            let dir = match at.base {
                Some(b) if !at.rel_dir.as_os_str().is_empty() => open_dir(Some(b), at.rel_dir),
                _ => open_dir(None, at.dir),
            };
            *self = match dir {
                Ok(fd) => DirFd::Open(fd),
                Err(e) => DirFd::Failed {
                    emfile: e == rustix::io::Errno::MFILE || e == rustix::io::Errno::NFILE,
                },
            };
        }
        match self {
            DirFd::Open(fd) => open_at(fd, at.name).map_err(io::Error::from),
            _ => open_file(at.base, rel, full),
        }
    }
}

/// Per-thread reader: owns the read buffer; shares the rest.
pub struct Reader {
    shared: Arc<Shared>,
    buf: Vec<u8>,
    /// The cgroup's directory in the hierarchy being read, in full and
    /// relative to the hierarchy's root (empty for the root cgroup), and
    /// its fd.
    dir: PathBuf,
    rel_dir: PathBuf,
    dirfd: DirFd,
    /// The file being read, relative to the hierarchy's root.
    rel: PathBuf,
    /// The settings kept for the directory being read.
    kept: Option<Kept>,
    path: PathBuf,
    /// Whether the probe file of the hierarchy being read was read (only
    /// then does an absent file teach the memo anything).
    probed: bool,
    /// The absent-file memo's entry for the directory being read.
    absent: FileSet,
}

impl Reader {
    pub fn new(shared: Arc<Shared>) -> Reader {
        Reader {
            shared,
            buf: Vec::with_capacity(8192),
            dir: PathBuf::new(),
            rel_dir: PathBuf::new(),
            dirfd: DirFd::Closed(0),
            rel: PathBuf::new(),
            kept: None,
            path: PathBuf::new(),
            probed: false,
            absent: FileSet::EMPTY,
        }
    }

    /// Moves to `cg`'s directory in `h`: what [`Reader::read`] reads in.
    fn enter(&mut self, h: &Hierarchy, cg: &CgroupPath) {
        self.dir.clear();
        self.dir.push(&h.root);
        self.rel_dir.clear();
        if !cg.is_root() {
            self.dir.push(cg.relative());
            self.rel_dir.push(cg.relative());
        }
        let (kept, fd) = self.shared.take_dir(h, cg);
        self.kept = kept;
        self.dirfd = match fd {
            Some(fd) => DirFd::Kept(fd),
            None => DirFd::Closed(0),
        };
        self.absent = if cg.is_root() {
            FileSet::EMPTY
        } else {
            self.shared.absent_in(h.id.0, cg)
        };
    }

    /// Leaves `cg`'s directory in `h`: keeps its settings and its
    /// descriptor (if one was opened, and there is room) for the next
    /// scrape.
    fn leave(&mut self, h: &Hierarchy, cg: &CgroupPath) {
        let fd = match std::mem::replace(&mut self.dirfd, DirFd::Closed(0)) {
            DirFd::Open(fd) | DirFd::Kept(fd) => Some(fd),
            DirFd::Failed { emfile: true } => {
                self.shared.dirs_back_off();
                None
            }
            DirFd::Closed(_) | DirFd::Failed { emfile: false } => None,
        };
        self.shared.put_dir(h, cg, self.kept.take(), fd);
    }

    /// Reads `name` of `cg` in `h` (the directory [`Reader::enter`]ed)
    /// into the buffer. Reads until EOF: a short read is not the end of a
    /// kernel file.
    fn read(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        name: &str,
        file: Option<File>,
    ) -> Result<&str, ReadError> {
        self.path.clone_from(&self.dir);
        self.path.push(name);
        let memo = file.filter(|_| !cg.is_root());
        if let Some(f) = memo {
            if self.absent.contains(f) {
                return Err(ReadError::Absent {
                    path: PathBuf::new(),
                });
            }
        }
        self.rel.clone_from(&self.rel_dir);
        self.rel.push(name);
        let at = Place {
            base: self
                .shared
                .roots
                .get(usize::from(h.id.0))
                .and_then(Option::as_ref),
            rel_dir: &self.rel_dir,
            dir: &self.dir,
            name,
        };
        let (dirfd, rel, full) = (&mut self.dirfd, &self.rel, &self.path);
        let backoffs = self.shared.fds.backoffs.load(Ordering::Relaxed);
        let read = self
            .shared
            .fds
            .read_with(full, &mut self.buf, || dirfd.open(&at, rel, full));
        if self.shared.fds.backoffs.load(Ordering::Relaxed) != backoffs {
            // Out of descriptors: the fd cache gave half of its back; the
            // kept directories go too.
            self.shared.dirs_back_off();
        }
        if let Err(e) = read {
            let e = ReadError::from_io(&self.path, e);
            if let Some(f) = memo {
                if self.probed && matches!(e, ReadError::Absent { .. }) {
                    self.shared.mark_absent(h.id.0, cg, f);
                    self.absent = self.absent.with(f);
                }
            }
            return Err(e);
        }
        std::str::from_utf8(&self.buf).map_err(|_| ReadError::Parse {
            path: self.path.clone(),
            source: ParseError::new(0, "not UTF-8"),
        })
    }

    /// Reads a file outside the hierarchies (`/proc/pressure/*`,
    /// `/proc/diskstats`), uncached, into the same buffer.
    pub fn read_other(&mut self, path: &Path) -> Result<&str, ReadError> {
        self.buf.clear();
        let mut f = StdFile::open(path).map_err(|e| ReadError::from_io(path, e))?;
        f.read_to_end(&mut self.buf)
            .map_err(|e| ReadError::from_io(path, e))?;
        std::str::from_utf8(&self.buf).map_err(|_| ReadError::Parse {
            path: path.to_path_buf(),
            source: ParseError::new(0, "not UTF-8"),
        })
    }

    /// Absent or unsupported: `Ok(false)`; vanished: `Err`; anything else
    /// is counted under `file` and `Ok(false)`.
    fn soft(
        file: &'static str,
        e: ReadError,
        soft: &mut Vec<SoftError>,
    ) -> Result<bool, ReadError> {
        match e {
            ReadError::Absent { .. } | ReadError::Unsupported { .. } => Ok(false),
            ReadError::Vanished { .. } => Err(e),
            other => {
                soft.push(SoftError { file, error: other });
                Ok(false)
            }
        }
    }

    /// Reads everything `plan` asks of `cg`. `Err(Vanished)` means drop it
    /// from this scrape; soft errors are pushed to `soft`.
    pub fn read_cgroup(
        &mut self,
        cg: &CgroupPath,
        hierarchies: HierarchySet,
        plan: &Plan,
        soft: &mut Vec<SoftError>,
    ) -> Result<CgroupFiles, ReadError> {
        let mut out = CgroupFiles::default();
        let layout = self.shared.layout.clone();
        let mut any_dir = false;
        for h in &layout.hierarchies {
            if !hierarchies.contains(h.id) {
                continue;
            }
            any_dir = true;
            self.probed = false;
            self.enter(h, cg);
            if h.unified {
                self.read_v2(h, cg, plan, &mut out, soft)?;
            } else {
                self.read_files(h, cg, plan, None, &mut out, soft)?;
            }
            self.leave(h, cg);
        }
        if !any_dir {
            return Err(ReadError::Vanished {
                path: PathBuf::from(cg.as_str()),
            });
        }
        Ok(out)
    }

    fn read_v2(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        plan: &Plan,
        out: &mut CgroupFiles,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        // cpu.stat exists in every v2 cgroup (usage even without the cpu
        // controller), so it is read first, as the "does this cgroup
        // exist" probe; then the controllers gate the rest.
        if plan.files.contains(File::CpuStat) {
            self.read_one(h, cg, File::CpuStat, out, soft)?;
        }
        let ctl = if cg.is_root() {
            None
        } else if self.shared.unified_without_controllers {
            // Hybrid: no controller is enabled in unified/ (its root lists
            // none), so no cgroup there can have any: skip the read.
            Some(Controllers::default())
        } else if let Some(kept) = self.kept.as_ref().and_then(|k| k.controllers) {
            Some(kept)
        } else {
            match self.read(h, cg, "cgroup.controllers", None) {
                Ok(t) => {
                    let ctl = v2_controllers(t);
                    if let Some(k) = self.kept.as_mut() {
                        k.controllers = Some(ctl);
                    }
                    Some(ctl)
                }
                Err(ReadError::Vanished { path }) | Err(ReadError::Absent { path }) => {
                    return Err(ReadError::Vanished { path })
                }
                Err(_) => None,
            }
        };
        self.read_files(h, cg, plan, ctl, out, soft)
    }

    /// Reads the planned files whose home is `h` ([`Shared::homes`]), in
    /// table order (the v2 probe, `cpu.stat`, is read before and not
    /// again). `ctl`: on cgroup2, the controllers enabled in the directory,
    /// which gate their files (`None`: not known, every file is tried).
    fn read_files(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        plan: &Plan,
        ctl: Option<Controllers>,
        out: &mut CgroupFiles,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        let home = self
            .shared
            .homes
            .get(usize::from(h.id.0))
            .copied()
            .unwrap_or(FileSet::EMPTY);
        for f in plan.files.intersect(home).iter() {
            if f == File::CpuStat {
                continue;
            }
            let info = f.info();
            let gated_off = match (info.home, ctl) {
                (Home::V2(Some(c)), Some(enabled)) => !enabled.contains(c),
                _ => false,
            };
            if gated_off
                || (cg.is_root() && !info.root)
                || plan.skip_when.iter().any(|(g, skip)| *g == f && skip(out))
            {
                continue;
            }
            match f {
                File::HugetlbCurrent | File::HugetlbMax => {
                    self.read_hugetlb(h, cg, f, &mut out.hugetlb, soft)?
                }
                File::HugetlbUsageV1 | File::HugetlbLimitV1 => {
                    self.read_hugetlb(h, cg, f, &mut out.hugetlb_v1, soft)?
                }
                _ => self.read_one(h, cg, f, out, soft)?,
            }
        }
        Ok(())
    }

    fn read_one(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        f: File,
        out: &mut CgroupFiles,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        let info = f.info();
        let keep = self.kept.is_some() && SETTINGS.contains(f);
        if keep {
            let kept = self.kept.as_ref().and_then(|k| k.texts.get(f));
            if let Some(text) = kept {
                if let Err(source) = out.store(f, text) {
                    self.path.clone_from(&self.dir);
                    self.path.push(info.name);
                    soft.push(SoftError {
                        file: info.name,
                        error: ReadError::Parse {
                            path: self.path.clone(),
                            source,
                        },
                    });
                }
                return Ok(());
            }
        }
        let mut fresh: Option<Box<str>> = None;
        let parsed = match self.read(h, cg, info.name, Some(f)) {
            Ok(text) => {
                if keep {
                    fresh = Some(text.into());
                }
                out.store(f, text)
            }
            // A probe file is in every cgroup of its hierarchy: its absence
            // means the directory is gone (the v2 root has no cpu.stat on
            // old kernels).
            Err(ReadError::Absent { path })
                if info.probe && !(cg.is_root() && matches!(info.home, Home::V2(_))) =>
            {
                return Err(ReadError::Vanished { path });
            }
            Err(e) => return Self::soft(info.name, e, soft).map(|_| ()),
        };
        if info.probe {
            self.probed = true;
        }
        if let (Some(text), Some(k)) = (fresh, self.kept.as_mut()) {
            k.texts.push(f, &text);
        }
        if let Err(source) = parsed {
            soft.push(SoftError {
                file: info.name,
                error: ReadError::Parse {
                    path: self.path.clone(),
                    source,
                },
            });
        }
        Ok(())
    }

    /// One of the per-page-size hugetlb files, for every size; the file
    /// label of an error is the size-free name, so it stays a small set.
    fn read_hugetlb(
        &mut self,
        h: &Hierarchy,
        cg: &CgroupPath,
        f: File,
        rows: &mut Vec<Hugetlb>,
        soft: &mut Vec<SoftError>,
    ) -> Result<(), ReadError> {
        let counted_as = f.info().name;
        let suffix = counted_as.trim_start_matches("hugetlb.");
        let usage = matches!(f, File::HugetlbCurrent | File::HugetlbUsageV1);
        let sizes = self.shared.hugetlb_sizes.clone();
        for size in sizes.iter() {
            let name = format!("hugetlb.{size}.{suffix}");
            let parsed = match self.read(h, cg, &name, Some(f)) {
                Ok(t) if usage => parse::parse_u64(t).map(|v| (Some(v), None)),
                Ok(t) => parse::parse_limit(t).map(|l| (None, Some(l))),
                Err(e) => {
                    Self::soft(counted_as, e, soft)?;
                    continue;
                }
            };
            let (u, l) = match parsed {
                Ok(v) => v,
                Err(source) => {
                    soft.push(SoftError {
                        file: counted_as,
                        error: ReadError::Parse {
                            path: self.path.clone(),
                            source,
                        },
                    });
                    continue;
                }
            };
            match rows.iter_mut().find(|r| r.size == *size) {
                Some(r) => {
                    r.usage = r.usage.or(u);
                    r.limit = r.limit.or(l);
                }
                None => rows.push(Hugetlb {
                    size: size.clone(),
                    usage: u,
                    limit: l,
                }),
            }
        }
        // In page-size order, whichever file found a size first.
        rows.sort_by(|a, b| a.size.cmp(&b.size));
        Ok(())
    }
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

    /// Opens `root/rel_dir/name` through `fd`, relative to `root`'s
    /// descriptor when `base` is given.
    fn open_in(
        fd: &mut DirFd,
        base: Option<&rustix::fd::OwnedFd>,
        root: &Path,
        rel_dir: &str,
        name: &str,
    ) -> io::Result<StdFile> {
        let rel_dir = Path::new(rel_dir);
        let dir = root.join(rel_dir);
        let at = Place {
            base,
            rel_dir,
            dir: &dir,
            name,
        };
        fd.open(&at, &rel_dir.join(name), &dir.join(name))
    }

    #[test]
    fn kept_texts_give_back_each_text_under_its_file_and_nothing_else() {
        let mut t = Texts::default();
        assert!(t.is_empty());
        assert_eq!(t.get(File::MemoryLimit), None);
        t.push(File::MemoryLimit, "9223372036854771712\n");
        t.push(File::ThrottleReadBps, "");
        t.push(File::ThrottleWriteBps, "8:0 1048576\n8:16 2097152\n");
        assert_eq!(t.get(File::MemoryLimit), Some("9223372036854771712\n"));
        assert_eq!(
            t.get(File::ThrottleReadBps),
            Some(""),
            "an empty file is kept"
        );
        assert_eq!(
            t.get(File::ThrottleWriteBps),
            Some("8:0 1048576\n8:16 2097152\n")
        );
        assert_eq!(t.get(File::MemorySoftLimit), None);
    }

    #[test]
    fn dirfd_opens_the_directory_on_the_second_miss_and_reads_the_same_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = open_dir(None, d.path()).expect("open the root");
        for rel_dir in ["", "cg", "cg/sub"] {
            std::fs::create_dir_all(d.path().join(rel_dir)).expect("mkdir");
            for name in ["a", "b", "c"] {
                std::fs::write(
                    d.path().join(rel_dir).join(name),
                    format!("{rel_dir}{name}\n"),
                )
                .expect("write");
            }
            for base in [None, Some(&root)] {
                let mut fd = DirFd::Closed(0);
                let mut text = String::new();
                for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
                    let mut f = open_in(&mut fd, base, d.path(), rel_dir, name).expect("open");
                    text.clear();
                    f.read_to_string(&mut text).expect("read");
                    assert_eq!(text, format!("{rel_dir}{name}\n"));
                    match (i, &fd) {
                        (0, DirFd::Closed(1)) | (1.., DirFd::Open(_)) => {}
                        _ => panic!("after {} opens: {fd:?}", i + 1),
                    }
                }
            }
        }
    }

    #[test]
    fn a_kept_directory_removed_and_made_again_is_left_for_the_path() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = open_dir(None, d.path()).expect("open the root");
        let cg = d.path().join("cg");
        std::fs::create_dir(&cg).expect("mkdir");
        std::fs::write(cg.join("f"), "old\n").expect("write");
        let mut fd = DirFd::Closed(DIRFD_AFTER_MISSES);
        open_in(&mut fd, Some(&root), d.path(), "cg", "f").expect("open");
        let DirFd::Open(dir) = fd else {
            panic!("not opened: {fd:?}")
        };
        // The next scrape reads through the kept descriptor.
        let mut fd = DirFd::Kept(dir);
        let mut text = String::new();
        let mut f = open_in(&mut fd, Some(&root), d.path(), "cg", "f").expect("open");
        f.read_to_string(&mut text).expect("read");
        assert_eq!(text, "old\n");
        // A file absent from a live kept directory: ENOENT, and the
        // descriptor stays.
        let err = open_in(&mut fd, Some(&root), d.path(), "cg", "nope").expect_err("absent");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        assert!(matches!(fd, DirFd::Kept(_)));
        // Removed and made again under the same name: the kept descriptor
        // is of the removed directory; the file is read by its path and
        // the descriptor dropped, to be opened afresh.
        std::fs::remove_dir_all(&cg).expect("rm");
        std::fs::create_dir(&cg).expect("mkdir again");
        std::fs::write(cg.join("f"), "new\n").expect("write");
        let mut f = open_in(&mut fd, Some(&root), d.path(), "cg", "f").expect("open");
        text.clear();
        f.read_to_string(&mut text).expect("read");
        assert_eq!(text, "new\n");
        assert!(matches!(fd, DirFd::Closed(DIRFD_AFTER_MISSES)), "{fd:?}");
        // Removed for good: ENOENT, as by the path.
        std::fs::remove_dir_all(&cg).expect("rm");
        let mut fd = DirFd::Kept(open_dir(None, d.path()).expect("a live dir"));
        let err = open_in(&mut fd, Some(&root), d.path(), "cg", "f").expect_err("gone");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn v2_controllers_names_map_to_the_reader_s_controllers() {
        let c = v2_controllers("cpuset cpu io memory pids\n");
        for yes in [
            Controller::Cpuset,
            Controller::Cpu,
            Controller::Blkio,
            Controller::Memory,
            Controller::Pids,
        ] {
            assert!(c.contains(yes), "{yes:?}");
        }
        assert!(!c.contains(Controller::Hugetlb));
        assert!(!c.contains(Controller::Cpuacct));
        assert_eq!(v2_controllers(""), Controllers::default());
        assert!(!v2_controllers("rdma misc\n").contains(Controller::Cpu));
    }

    #[test]
    fn auto_dirs_is_what_the_fd_cache_leaves_of_its_half() {
        // 20000 descriptors, 20 open, fd cache 3072: (19980 / 2) - 512 - 3072.
        assert_eq!(Shared::auto_dirs(Some(20000), 20, 3072), 6406);
        assert_eq!(Shared::auto_dirs(Some(1 << 20), 20, 3072), DIRS_AUTO_MAX);
        assert_eq!(Shared::auto_dirs(None, 20, 3072), DIRS_AUTO_MAX);
        assert_eq!(Shared::auto_dirs(Some(4096), 60, 1506), 0, "no room");
        assert_eq!(
            Shared::auto_dirs(Some(1 << 20), 20, 0),
            0,
            "fd_cache: 0 keeps nothing"
        );
    }

    #[test]
    fn dirfd_errors_are_the_kernels_for_the_full_path() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = open_dir(None, d.path()).expect("open the root");
        for base in [None, Some(&root)] {
            // A directory that does not exist: the open of the directory
            // fails, the file is opened by its path, and ENOENT comes back,
            // as without the directory descriptor.
            for misses in [0, DIRFD_AFTER_MISSES] {
                let mut fd = DirFd::Closed(misses);
                let err =
                    open_in(&mut fd, base, d.path(), "gone", "x").expect_err("no such directory");
                assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
            }
            let mut fd = DirFd::Closed(DIRFD_AFTER_MISSES);
            let _ = open_in(&mut fd, base, d.path(), "gone", "x");
            assert!(matches!(fd, DirFd::Failed { emfile: false }));
            // An open directory whose file is missing: ENOENT from openat.
            let mut fd = DirFd::Closed(DIRFD_AFTER_MISSES);
            let err = open_in(&mut fd, base, d.path(), "", "missing").expect_err("no such file");
            assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
            assert!(matches!(fd, DirFd::Open(_)));
            // The directory removed after it was opened: still ENOENT.
            let sub = d.path().join("sub");
            std::fs::create_dir(&sub).expect("mkdir");
            std::fs::write(sub.join("f"), "x").expect("write");
            let mut fd = DirFd::Closed(DIRFD_AFTER_MISSES);
            open_in(&mut fd, base, d.path(), "sub", "f").expect("open");
            std::fs::remove_dir_all(&sub).expect("rm");
            let err = open_in(&mut fd, base, d.path(), "sub", "f").expect_err("removed");
            assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        }
    }
}
