//! Keeps the registry current with inotify: `IN_CREATE`/`IN_DELETE` (and
//! moves) on every cgroup directory, recursively.
//!
//! - Race-free: a new directory is watched first, then listed, so a
//!   `mkdir -p a/b/c` faster than events arrive is still seen whole.
//! - Kernel quirk: cgroupfs sends no `IN_IGNORED` when a cgroup directory is
//!   removed (seen on 6.18), so the watcher removes the watches of a deleted
//!   subtree itself; otherwise they leak until `max_user_watches`.
//! - `IN_Q_OVERFLOW` (events lost) → a full rescan brings the registry back
//!   to the truth.
//! - Watch limit (`ENOSPC`) → warn once, set a metric, and rescan
//!   periodically: the exporter keeps working, a little later.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{walk, Registry, RescanReason};
use crate::cgroupfs::{CgroupPath, HierarchyId};

/// Period of the rescans that replace inotify when it cannot be used.
pub const FALLBACK_RESCAN: Duration = Duration::from_secs(10);

pub struct WatcherHandle {
    started: watch::Receiver<bool>,
    join: JoinHandle<()>,
}

impl WatcherHandle {
    /// Becomes true once the initial walk is in the registry.
    pub fn started(&self) -> watch::Receiver<bool> {
        self.started.clone()
    }

    pub async fn join(self) {
        let _ = self.join.await;
    }
}

/// Starts discovery: the initial walk (with watches), then the event loop.
pub fn spawn(registry: Arc<Registry>, shutdown: CancellationToken) -> WatcherHandle {
    let (tx, rx) = watch::channel(false);
    let join = tokio::spawn(async move {
        run(registry, shutdown, tx).await;
    });
    WatcherHandle { started: rx, join }
}

const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW);

/// The watches held, both ways.
struct Watched {
    by_wd: HashMap<i32, (HierarchyId, CgroupPath)>,
    by_path: BTreeMap<(HierarchyId, CgroupPath), WatchDescriptor>,
    limit_hit: bool,
}

struct Ctx<'a> {
    registry: &'a Registry,
    watches: Watches,
    w: Watched,
}

impl Ctx<'_> {
    fn watch_dir(&mut self, h: HierarchyId, cg: &CgroupPath) -> io::Result<()> {
        if cg.depth() >= self.registry.filter().max_depth {
            // Its children would be deeper than tracked.
            return Ok(());
        }
        if self.w.by_path.contains_key(&(h, cg.clone())) {
            return Ok(());
        }
        let Some(root) = self.registry.layout().get(h).map(|h| h.root.clone()) else {
            return Ok(());
        };
        let dir = root.join(cg.relative());
        match self.watches.add(&dir, MASK) {
            Ok(wd) => {
                self.w
                    .by_wd
                    .insert(wd.get_watch_descriptor_id(), (h, cg.clone()));
                self.w.by_path.insert((h, cg.clone()), wd);
                self.registry
                    .stats
                    .watches
                    .store(self.w.by_path.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                if !self.w.limit_hit {
                    self.w.limit_hit = true;
                    self.registry
                        .stats
                        .watch_limit_reached
                        .store(true, Ordering::Relaxed);
                    warn!(
                        watches = self.w.by_path.len(),
                        "inotify watch limit reached (fs.inotify.max_user_watches): falling back to periodic rescans every {}s",
                        FALLBACK_RESCAN.as_secs()
                    );
                }
                Err(e)
            }
            Err(e) => {
                self.registry
                    .stats
                    .watch_errors
                    .fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Watches then lists the subtree at `start`, adding what it finds.
    fn discover(&mut self, h: HierarchyId, start: &CgroupPath) {
        let Some(root) = self.registry.layout().get(h).map(|x| x.root.clone()) else {
            return;
        };
        let max_depth = self.registry.filter().max_depth;
        let found = walk::walk_from(&root, start, max_depth, |cg| self.watch_dir(h, cg));
        for p in &found {
            self.registry.add(h, p);
        }
    }

    fn forget_subtree(&mut self, h: HierarchyId, top: &CgroupPath) {
        let keys: Vec<(HierarchyId, CgroupPath)> = self
            .w
            .by_path
            .range((h, top.clone())..)
            .take_while(|((hh, p), _)| *hh == h && p.as_str().starts_with(top.as_str()))
            .filter(|((_, p), _)| p.is_within(top))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(wd) = self.w.by_path.remove(&k) {
                self.w.by_wd.remove(&wd.get_watch_descriptor_id());
                // EINVAL when the kernel already dropped it: fine.
                let _ = self.watches.remove(wd);
            }
        }
        self.registry
            .stats
            .watches
            .store(self.w.by_path.len() as u64, Ordering::Relaxed);
    }

    /// Walks everything again (watching what is new) and reconciles.
    fn rescan(&mut self, reason: RescanReason) {
        let counter = match reason {
            RescanReason::Initial => &self.registry.stats.rescans_initial,
            RescanReason::Overflow => &self.registry.stats.rescans_overflow,
            RescanReason::Fallback => &self.registry.stats.rescans_fallback,
            RescanReason::Manual => &self.registry.stats.rescans_manual,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let layout = self.registry.layout().clone();
        let max_depth = self.registry.filter().max_depth;
        for hier in &layout.hierarchies {
            let found = walk::walk(&hier.root, max_depth, |cg| self.watch_dir(hier.id, cg));
            let set: std::collections::BTreeSet<CgroupPath> = found.iter().cloned().collect();
            // Drop watches of directories that are gone.
            let stale: Vec<CgroupPath> = self
                .w
                .by_path
                .keys()
                .filter(|(h, p)| *h == hier.id && !set.contains(p))
                .map(|(_, p)| p.clone())
                .collect();
            for p in stale {
                self.forget_subtree(hier.id, &p);
            }
            let tracked = found
                .into_iter()
                .filter(|p| self.registry.filter().tracks(p))
                .collect();
            self.registry.reconcile(hier.id, &tracked);
        }
    }
}

async fn run(registry: Arc<Registry>, shutdown: CancellationToken, started: watch::Sender<bool>) {
    let inotify = match Inotify::init() {
        Ok(i) => i,
        Err(e) => {
            warn!(error = %e, "inotify unavailable: discovery by periodic rescans only");
            registry
                .stats
                .watch_limit_reached
                .store(true, Ordering::Relaxed);
            registry.rescan(RescanReason::Initial);
            let _ = started.send(true);
            fallback_loop(&registry, &shutdown).await;
            return;
        }
    };
    let watches = inotify.watches();
    let mut ctx = Ctx {
        registry: &registry,
        watches,
        w: Watched {
            by_wd: HashMap::new(),
            by_path: BTreeMap::new(),
            limit_hit: false,
        },
    };
    ctx.rescan(RescanReason::Initial);
    info!(
        cgroups = registry.len(),
        watches = ctx.w.by_path.len(),
        "discovery started"
    );
    let _ = started.send(true);
    let mut stream = match inotify.into_event_stream(vec![0u8; 64 * 1024]) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "inotify stream failed: discovery by periodic rescans only");
            registry
                .stats
                .watch_limit_reached
                .store(true, Ordering::Relaxed);
            fallback_loop(&registry, &shutdown).await;
            return;
        }
    };
    let mut fallback = tokio::time::interval(FALLBACK_RESCAN);
    fallback.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    use inotify::StreamExt as _;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = fallback.tick(), if ctx.w.limit_hit => {
                ctx.rescan(RescanReason::Fallback);
            }
            ev = stream.next() => {
                let Some(ev) = ev else { break };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        warn!(error = %e, "inotify read failed; rescanning");
                        ctx.rescan(RescanReason::Overflow);
                        continue;
                    }
                };
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    warn!("inotify queue overflowed: events lost, rescanning");
                    ctx.rescan(RescanReason::Overflow);
                    continue;
                }
                let Some((h, parent)) = ctx.w.by_wd.get(&ev.wd.get_watch_descriptor_id()).cloned() else {
                    continue;
                };
                if ev.mask.contains(EventMask::IGNORED) {
                    ctx.forget_subtree(h, &parent);
                    continue;
                }
                if !ev.mask.contains(EventMask::ISDIR) {
                    continue;
                }
                let Some(name) = ev.name.as_ref().and_then(|n| n.to_str()) else { continue };
                let child = parent.join(name);
                if ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                    ctx.discover(h, &child);
                } else if ev.mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
                    ctx.forget_subtree(h, &child);
                    registry.remove_subtree(h, &child);
                }
                debug!(cgroup = %child, mask = ?ev.mask, "inotify event");
            }
        }
    }
}

async fn fallback_loop(registry: &Registry, shutdown: &CancellationToken) {
    let mut t = tokio::time::interval(FALLBACK_RESCAN);
    t.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = t.tick() => registry.rescan(RescanReason::Fallback),
        }
    }
}
