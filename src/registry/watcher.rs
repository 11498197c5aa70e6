//! Keeps the registry current with inotify: `IN_CREATE`/`IN_DELETE` (and
//! moves) on every cgroup directory, recursively, on a thread of its own.
//!
//! - Its own OS thread, no async runtime: it blocks in `poll(2)` on the
//!   inotify descriptor, and its walks (start, overflow, fallback) cost the
//!   async workers nothing.
//! - Up to date at every scrape: whatever the kernel queued on the
//!   descriptor before a scrape took its snapshot is applied first
//!   ([`Registry::snapshot`] drains the descriptor itself, without waiting
//!   for this thread to be scheduled). Reading and applying events happen
//!   under one turn, so either side that takes it sees everything read
//!   before applied. Without this, a cgroup made just before a request was
//!   missing from it when the CPUs were busy (issue 11).
//! - Race-free: a new directory is watched first, then listed, so a
//!   `mkdir -p a/b/c` faster than events arrive is still seen whole.
//! - Kernel quirk: cgroupfs sends no `IN_IGNORED` when a cgroup directory is
//!   removed (seen on 6.18), so the watcher removes the watches of a deleted
//!   subtree itself; otherwise they leak until `max_user_watches`.
//! - `IN_Q_OVERFLOW` (events lost) → a full rescan brings the registry back
//!   to the truth.
//! - Watch limit (`ENOSPC`) → warn once, set a metric, and rescan
//!   periodically: the exporter keeps working, a little later.

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{Event, EventMask, Inotify, WatchMask, Watches};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{walk, Registry, RescanReason};
use crate::cgroupfs::files::{v2_setting_written, V2_CONTROLLERS_WRITTEN};
use crate::cgroupfs::{CgroupPath, HierarchyId};

/// Period of the rescans that replace inotify when it cannot be used.
pub const FALLBACK_RESCAN: Duration = Duration::from_secs(10);

/// The running discovery thread. Dropping it stops the thread.
pub struct WatcherHandle {
    started: watch::Receiver<bool>,
    shared: Arc<Shared>,
    stop: Option<OwnedFd>,
    join: Option<JoinHandle<()>>,
}

impl WatcherHandle {
    /// Becomes true once the initial walk is in the registry.
    pub fn started(&self) -> watch::Receiver<bool> {
        self.started.clone()
    }

    /// Runs `f` while no inotify event is read or applied (by the thread or
    /// by a snapshot, which waits): lets a test fill the kernel's queue
    /// until it overflows.
    pub fn paused<R>(&self, f: impl FnOnce() -> R) -> R {
        let _held = self.shared.turn(None);
        f()
    }

    /// Stops the thread and waits for it: at once, unless it is in the
    /// middle of a walk. Blocking; from async code call it on the blocking
    /// pool.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(fd) = self.stop.take() {
            // An eventfd write of 1 makes it readable: the thread wakes.
            let _ = rustix::io::write(&fd, &1u64.to_ne_bytes());
            if let Some(j) = self.join.take() {
                let _ = j.join();
            }
        }
    }
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts discovery on its own thread: the initial walk (with watches),
/// then the event loop. Scrapes get the registry's pending events applied
/// from then on.
pub fn spawn(registry: Arc<Registry>) -> io::Result<WatcherHandle> {
    let (tx, rx) = watch::channel(false);
    let stop = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
    let stop_thread = stop.try_clone()?;
    let shared = Arc::new(Shared::new(&registry));
    registry.attach(&shared);
    let thread_shared = shared.clone();
    let join = std::thread::Builder::new()
        .name("cgpe-discovery".into())
        .spawn(move || run(&registry, &thread_shared, &stop_thread, &tx))?;
    Ok(WatcherHandle {
        started: rx,
        shared,
        stop: Some(stop),
        join: Some(join),
    })
}

const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW);

/// What the discovery thread and a scrape share. Whoever holds the turn
/// reads the inotify descriptor and applies what it read before giving the
/// turn back, so the other side never sees events read but not applied.
pub(super) struct Shared {
    busy: Mutex<bool>,
    free: Condvar,
    state: Mutex<State>,
    /// A second descriptor for the inotify instance, polled by the thread
    /// without holding the turn.
    readable: Option<OwnedFd>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Discovery's own state, touched only under the turn.
struct State {
    buf: Vec<u8>,
    w: Watched,
}

/// The watches held, both ways.
struct Watched {
    inotify: Option<Inotify>,
    watches: Option<Watches>,
    /// The watched directories, looked up by watch descriptor.
    by_wd: HashSet<WatchedDir>,
    /// Per hierarchy (indexed by its id), the watched directories and
    /// their watch descriptors. One ordered map per hierarchy, keyed by
    /// the path alone and holding the bare descriptor number, instead of
    /// one keyed by `(hierarchy, path)` holding the `inotify` crate's
    /// `WatchDescriptor` (which carries a `Weak` of the instance): ~0.5 MiB
    /// less at 2,000 hybrid cgroups (17,600 watches). Removal goes through
    /// `inotify_rm_watch` on the instance's descriptor.
    by_path: Vec<BTreeMap<CgroupPath, i32>>,
    limit_hit: bool,
}

/// A watched directory, and whether its hierarchy is cgroup2: an element
/// of a set that hashes and compares by `wd` alone, so the set is a map
/// from descriptor to directory in 24 bytes an entry. As a
/// `HashMap<i32, (HierarchyId, CgroupPath, bool)>` it took 32 (the `i32`
/// key padded to the value's alignment): 0.25 MiB more for the 17,600
/// watches of 2,000 hybrid cgroups.
#[derive(Debug)]
struct WatchedDir {
    path: CgroupPath,
    wd: i32,
    h: HierarchyId,
    unified: bool,
}

impl PartialEq for WatchedDir {
    fn eq(&self, other: &Self) -> bool {
        self.wd == other.wd
    }
}

impl Eq for WatchedDir {}

impl std::hash::Hash for WatchedDir {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.wd.hash(state);
    }
}

impl std::borrow::Borrow<i32> for WatchedDir {
    fn borrow(&self) -> &i32 {
        &self.wd
    }
}

impl Watched {
    fn watched(&self) -> usize {
        self.by_path.iter().map(BTreeMap::len).sum()
    }

    fn by_path_of(&mut self, h: HierarchyId) -> &mut BTreeMap<CgroupPath, i32> {
        let i = usize::from(h.0);
        if self.by_path.len() <= i {
            self.by_path.resize_with(i + 1, BTreeMap::new);
        }
        &mut self.by_path[i]
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// The turn: the state, and the flag given back on drop (also when the
/// holder panicked). The state's lock is only taken with the turn, so it is
/// uncontended but for the moment of hand-over; it is what gives the holder
/// `&mut State` without `unsafe`, and the flag is what can be waited for
/// with a timeout.
struct Turn<'a> {
    state: MutexGuard<'a, State>,
    shared: &'a Shared,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *lock(&self.shared.busy) = false;
        self.shared.free.notify_all();
    }
}

impl std::ops::Deref for Turn<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Turn<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Shared {
    fn new(registry: &Registry) -> Shared {
        let inotify = match Inotify::init() {
            Ok(i) => Some(i),
            Err(e) => {
                warn!(error = %e, "inotify unavailable: discovery by periodic rescans only");
                registry
                    .stats
                    .watch_limit_reached
                    .store(true, Ordering::Relaxed);
                None
            }
        };
        let readable = inotify.as_ref().and_then(|i| {
            i.as_fd()
                .try_clone_to_owned()
                .inspect_err(|e| {
                    // Scrapes still apply events; the thread rescans.
                    warn!(error = %e, "cannot poll the inotify descriptor: periodic rescans as well");
                    registry
                        .stats
                        .watch_limit_reached
                        .store(true, Ordering::Relaxed);
                })
                .ok()
        });
        let watches = inotify.as_ref().map(|i| i.watches());
        Shared {
            busy: Mutex::new(false),
            free: Condvar::new(),
            state: Mutex::new(State {
                buf: vec![0u8; 64 * 1024],
                w: Watched {
                    inotify,
                    watches,
                    by_wd: HashSet::new(),
                    by_path: Vec::new(),
                    limit_hit: false,
                },
            }),
            readable,
        }
    }

    /// The turn, once free, waiting at most until `until` (`None`: as long
    /// as it takes). `None` when time ran out.
    fn turn(&self, until: Option<Instant>) -> Option<Turn<'_>> {
        let mut busy = lock(&self.busy);
        while *busy {
            match until {
                None => self.free.wait(&mut busy),
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.free.wait_for(&mut busy, left);
                }
            }
        }
        *busy = true;
        drop(busy);
        Some(Turn {
            state: lock(&self.state),
            shared: self,
        })
    }

    /// Applies every event the kernel has queued on the descriptor so far.
    /// False when another holder (a walk) kept the turn past `until`.
    pub(super) fn apply_pending(&self, registry: &Registry, until: Option<Instant>) -> bool {
        match self.turn(until) {
            Some(mut t) => {
                t.drain(registry);
                true
            }
            None => false,
        }
    }
}

impl State {
    /// Reads and applies events until the descriptor has none left.
    fn drain(&mut self, registry: &Registry) {
        loop {
            let Some(ino) = self.w.inotify.as_mut() else {
                return;
            };
            let events = match ino.read_events(&mut self.buf) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!(error = %e, "inotify read failed; rescanning");
                    self.w.rescan(registry, RescanReason::Overflow);
                    return;
                }
            };
            for ev in events {
                self.w.apply(registry, &ev);
            }
        }
    }
}

impl Watched {
    fn watch_dir(
        &mut self,
        registry: &Registry,
        h: HierarchyId,
        cg: &CgroupPath,
    ) -> io::Result<()> {
        if cg.depth() >= registry.filter().max_depth {
            // Its children would be deeper than tracked.
            return Ok(());
        }
        if self
            .by_path
            .get(usize::from(h.0))
            .is_some_and(|m| m.contains_key(cg))
        {
            return Ok(());
        }
        let cg = &registry.intern(cg);
        let Some(watches) = self.watches.as_mut() else {
            return Ok(());
        };
        let Some((root, unified)) = registry
            .layout()
            .get(h)
            .map(|h| (h.root.clone(), h.unified))
        else {
            return Ok(());
        };
        let dir = root.join(cg.relative());
        // Directories also report writes, for the reader's kept settings
        // (see `Modified`); on cgroup2 only a settings file's write moves
        // the stamp (see `apply`).
        match watches.add(&dir, MASK | WatchMask::MODIFY) {
            Ok(wd) => {
                registry.modified.watched(h, cg);
                let wd = wd.get_watch_descriptor_id();
                self.by_wd.replace(WatchedDir {
                    path: cg.clone(),
                    wd,
                    h,
                    unified,
                });
                self.by_path_of(h).insert(cg.clone(), wd);
                registry
                    .stats
                    .watches
                    .store(self.watched() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                if !self.limit_hit {
                    self.limit_hit = true;
                    registry
                        .stats
                        .watch_limit_reached
                        .store(true, Ordering::Relaxed);
                    warn!(
                        watches = self.watched(),
                        "inotify watch limit reached (fs.inotify.max_user_watches): falling back to periodic rescans every {}s",
                        FALLBACK_RESCAN.as_secs()
                    );
                }
                Err(e)
            }
            Err(e) => {
                registry.stats.watch_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Watches then lists the subtree at `start`, adding what it finds.
    fn discover(&mut self, registry: &Registry, h: HierarchyId, start: &CgroupPath) {
        let Some(root) = registry.layout().get(h).map(|x| x.root.clone()) else {
            return;
        };
        let max_depth = registry.filter().max_depth;
        let found = walk::walk_from(&root, start, max_depth, |cg| {
            self.watch_dir(registry, h, cg)
        });
        for p in &found {
            registry.add(h, p);
        }
    }

    fn forget_subtree(&mut self, registry: &Registry, h: HierarchyId, top: &CgroupPath) {
        let Some(by_path) = self.by_path.get_mut(usize::from(h.0)) else {
            return;
        };
        let keys: Vec<CgroupPath> = by_path
            .range(top.clone()..)
            .take_while(|(p, _)| p.as_str().starts_with(top.as_str()))
            .filter(|(p, _)| p.is_within(top))
            .map(|(p, _)| p.clone())
            .collect();
        for p in keys {
            registry.modified.unwatched(h, &p);
            if let Some(wd) = by_path.remove(&p) {
                self.by_wd.remove(&wd);
                if let Some(ino) = self.inotify.as_ref() {
                    // EINVAL when the kernel already dropped it: fine.
                    let _ = rustix::fs::inotify::remove_watch(ino.as_fd(), wd);
                }
            }
        }
        registry
            .stats
            .watches
            .store(self.watched() as u64, Ordering::Relaxed);
    }

    /// Walks everything again (watching what is new), reconciles, and drops
    /// the watches of directories that are gone.
    fn rescan(&mut self, registry: &Registry, reason: RescanReason) {
        let walked = registry.rescan_with(reason, |h, cg| self.watch_dir(registry, h, cg));
        for (h, found) in walked {
            let stale: Vec<CgroupPath> = self
                .by_path
                .get(usize::from(h.0))
                .into_iter()
                .flat_map(BTreeMap::keys)
                .filter(|p| !found.contains(p))
                .cloned()
                .collect();
            for p in stale {
                self.forget_subtree(registry, h, &p);
            }
        }
    }

    /// One inotify event.
    fn apply(&mut self, registry: &Registry, ev: &Event<&std::ffi::OsStr>) {
        if ev.mask.contains(EventMask::Q_OVERFLOW) {
            warn!("inotify queue overflowed: events lost, rescanning");
            registry.modified.touch_all();
            self.rescan(registry, RescanReason::Overflow);
            return;
        }
        let Some((h, parent, unified)) = self
            .by_wd
            .get(&ev.wd.get_watch_descriptor_id())
            .map(|w| (w.h, w.path.clone(), w.unified))
        else {
            return;
        };
        if ev.mask.contains(EventMask::IGNORED) {
            self.forget_subtree(registry, h, &parent);
            return;
        }
        if !ev.mask.contains(EventMask::ISDIR) {
            if ev.mask.contains(EventMask::MODIFY) {
                let name = ev.name.map(|n| n.as_encoded_bytes()).unwrap_or_default();
                if !unified || v2_setting_written(name) {
                    registry.modified.touch(h, &parent);
                } else if name == V2_CONTROLLERS_WRITTEN.as_bytes() {
                    // A controller disabled and enabled again below
                    // resets its children's settings without a write in
                    // their directories: rare, so every stamp moves.
                    registry.modified.touch_all();
                }
            }
            return;
        }
        let Some(name) = ev.name.and_then(|n| n.to_str()) else {
            return;
        };
        let child = parent.join(name);
        if ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            self.discover(registry, h, &child);
        } else if ev
            .mask
            .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
        {
            self.forget_subtree(registry, h, &child);
            registry.remove_subtree(h, &child);
        }
        debug!(cgroup = %child, mask = ?ev.mask, "inotify event");
    }
}

/// The thread: the initial walk, then wait for events (or the stop
/// eventfd, or the next fallback rescan) and apply them.
fn run(registry: &Registry, shared: &Shared, stop: &OwnedFd, started: &watch::Sender<bool>) {
    let watches = match shared.turn(None) {
        Some(mut t) => {
            t.w.rescan(registry, RescanReason::Initial);
            t.w.watched()
        }
        None => 0,
    };
    info!(cgroups = registry.len(), watches, "discovery started");
    started.send_replace(true);
    let mut next_fallback = Instant::now() + FALLBACK_RESCAN;
    loop {
        // Set when inotify is unavailable or the watch limit was hit.
        let fallback = registry.stats.watch_limit_reached.load(Ordering::Relaxed);
        let timeout = fallback
            .then(|| Timespec::try_from(next_fallback.saturating_duration_since(Instant::now())))
            .and_then(Result::ok);
        let mut fds = vec![PollFd::new(stop, PollFlags::IN)];
        if let Some(r) = &shared.readable {
            fds.push(PollFd::new(r, PollFlags::IN));
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                // Not expected; do not spin on it.
                warn!(error = %e, "poll on the inotify descriptor failed");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if !fds[0].revents().is_empty() {
            return;
        }
        if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
            shared.apply_pending(registry, None);
        }
        if fallback && Instant::now() >= next_fallback {
            if let Some(mut t) = shared.turn(None) {
                t.w.rescan(registry, RescanReason::Fallback);
            }
            next_fallback = Instant::now() + FALLBACK_RESCAN;
        }
    }
}
