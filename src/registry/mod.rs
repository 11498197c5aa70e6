//! The live set of cgroups, per hierarchy: filled by one walk at start, kept
//! current by the inotify watcher (`watcher`, an OS thread of its own), and
//! read by the collector (a snapshot per scrape, with every inotify event
//! queued before it applied: a scrape never lists a directory) and by the
//! PSI agent (add/remove events, in order). Every full walk, with or
//! without watches, is `Registry::rescan_with`.
//!
//! In hybrid mode the same path in several hierarchies is one cgroup: an
//! entry records the set of hierarchies it exists in.

pub mod walk;
pub mod watcher;

use parking_lot::{Mutex, MutexGuard};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cgroupfs::{CgroupPath, HierarchyId, Layout};
use crate::glob::Glob;
use crate::kubernetes::path::{self as labels, PathLabels};

/// Kept beside the reader that consults it; the watcher here stamps it.
pub use crate::cgroupfs::stamps::Modified;
/// Defined with the layout it indexes; re-exported for the registry's users.
pub use crate::cgroupfs::HierarchySet;

/// One tracked cgroup. Everything the kernel does not change (its labels)
/// is computed here once, not per scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    pub path: CgroupPath,
    pub hierarchies: HierarchySet,
    pub labels: PathLabels,
}

/// The tracked cgroups at one moment, sorted by path.
pub type Snapshot = Arc<[Arc<CgroupEntry>]>;

/// What subscribers hear, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    Added {
        path: CgroupPath,
        hierarchy: HierarchyId,
    },
    Removed {
        path: CgroupPath,
        hierarchy: HierarchyId,
    },
}

/// Which cgroups are tracked (`cgroups:` in the config).
#[derive(Debug, Clone)]
pub struct Filter {
    pub include: Vec<Glob>,
    pub exclude: Vec<Glob>,
    pub max_depth: usize,
    pub max_cgroups: usize,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            include: Glob::new("**").into_iter().collect(),
            exclude: Vec::new(),
            max_depth: 10,
            max_cgroups: 20000,
        }
    }
}

impl Filter {
    pub fn from_config(c: &crate::config::CgroupsConfig) -> Filter {
        Filter {
            // Validated with the config: a pattern that does not compile
            // cannot reach here, and would only be dropped.
            include: c.include.iter().filter_map(|g| Glob::new(g).ok()).collect(),
            exclude: c.exclude.iter().filter_map(|g| Glob::new(g).ok()).collect(),
            max_depth: c.max_depth,
            max_cgroups: c.max_cgroups,
        }
    }

    /// Whether a cgroup is exported (descendants of an excluded one may still
    /// be: the walk goes on below it, bounded by depth).
    pub fn tracks(&self, path: &CgroupPath) -> bool {
        path.depth() <= self.max_depth
            && self.include.iter().any(|g| g.matches(path.as_str()))
            && !self.exclude.iter().any(|g| g.matches(path.as_str()))
    }
}

/// Counters shown as self metrics.
#[derive(Debug, Default)]
pub struct RegistryStats {
    pub added: AtomicU64,
    pub removed: AtomicU64,
    pub skipped_max_cgroups: AtomicU64,
    pub rescans_initial: AtomicU64,
    pub rescans_overflow: AtomicU64,
    pub rescans_fallback: AtomicU64,
    pub rescans_manual: AtomicU64,
    pub watches: AtomicU64,
    pub watch_limit_reached: AtomicBool,
    pub watch_errors: AtomicU64,
}

/// Why a rescan ran, for `cgroup_psi_exporter_rescans_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescanReason {
    Initial,
    Overflow,
    Fallback,
    Manual,
}

impl RescanReason {
    /// The counter behind `cgroup_psi_exporter_rescans_total{reason}`.
    pub fn counter(self, stats: &RegistryStats) -> &AtomicU64 {
        match self {
            RescanReason::Initial => &stats.rescans_initial,
            RescanReason::Overflow => &stats.rescans_overflow,
            RescanReason::Fallback => &stats.rescans_fallback,
            RescanReason::Manual => &stats.rescans_manual,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Per hierarchy, the tracked paths.
    per_hierarchy: Vec<BTreeSet<CgroupPath>>,
    entries: BTreeMap<CgroupPath, Arc<CgroupEntry>>,
    snapshot: Option<Snapshot>,
    subscribers: Vec<mpsc::UnboundedSender<RegistryEvent>>,
    max_warned: bool,
}

/// How long [`Registry::snapshot`] waits for a walk in progress (start,
/// queue overflow, fallback) before it takes the set as it is.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Registry {
    layout: Arc<Layout>,
    filter: Filter,
    state: Mutex<State>,
    /// The running watcher, whose queued events a snapshot applies first.
    discovery: Mutex<Weak<watcher::Shared>>,
    pub stats: RegistryStats,
    /// Write stamps of watched v1 directories, for the reader.
    pub modified: Arc<Modified>,
}

impl Registry {
    pub fn new(layout: Arc<Layout>, filter: Filter) -> Arc<Registry> {
        let n = layout.hierarchies.len();
        Arc::new(Registry {
            layout,
            filter,
            state: Mutex::new(State {
                per_hierarchy: vec![BTreeSet::new(); n],
                ..State::default()
            }),
            discovery: Mutex::new(Weak::new()),
            stats: RegistryStats::default(),
            modified: Arc::new(Modified::default()),
        })
    }

    /// Called by [`watcher::spawn`]: from now on a snapshot first applies
    /// what the kernel queued for this watcher.
    fn attach(&self, discovery: &Arc<watcher::Shared>) {
        *self.discovery.lock() = Arc::downgrade(discovery);
    }

    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The tracked cgroups now: every inotify event the kernel queued before
    /// this call is applied first (a cgroup made just before a scrape is in
    /// it, one removed is not). Waits at most [`SNAPSHOT_WAIT`] for a walk
    /// in progress. Cheap when nothing changed: the set is rebuilt only
    /// after a change.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_until(Instant::now() + SNAPSHOT_WAIT)
    }

    /// As [`Registry::snapshot`], waiting for a walk at most until `until`
    /// (a scrape's deadline).
    pub fn snapshot_until(&self, until: Instant) -> Snapshot {
        let discovery = self.discovery.lock().upgrade();
        if let Some(d) = discovery {
            if !d.apply_pending(self, Some(until)) {
                // Writes may be queued unapplied: re-read every setting.
                self.modified.touch_all();
                debug!("a discovery walk is still running: snapshot taken without waiting for it");
            }
        }
        let mut st = self.lock();
        if let Some(s) = &st.snapshot {
            return s.clone();
        }
        let s: Snapshot = st.entries.values().cloned().collect();
        st.snapshot = Some(s.clone());
        s
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tracked cgroups per hierarchy, for self metrics.
    pub fn counts(&self) -> Vec<(HierarchyId, usize)> {
        let st = self.lock();
        st.per_hierarchy
            .iter()
            .enumerate()
            .map(|(i, s)| (HierarchyId(i as u8), s.len()))
            .collect()
    }

    pub fn get(&self, path: &CgroupPath) -> Option<Arc<CgroupEntry>> {
        self.lock().entries.get(path).cloned()
    }

    /// The current set as `Added` events plus a receiver of every later
    /// change, taken atomically so no change is missed or seen twice.
    pub fn subscribe(&self) -> (Vec<RegistryEvent>, mpsc::UnboundedReceiver<RegistryEvent>) {
        let mut st = self.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut current = Vec::new();
        for (i, set) in st.per_hierarchy.iter().enumerate() {
            for p in set {
                current.push(RegistryEvent::Added {
                    path: p.clone(),
                    hierarchy: HierarchyId(i as u8),
                });
            }
        }
        st.subscribers.push(tx);
        (current, rx)
    }

    /// Records that `path` exists in `hierarchy`. Returns false when it is
    /// not tracked (filtered out, over `max_cgroups`, or already known).
    /// The tracked cgroup's own path for `path`, if tracked: one
    /// allocation per cgroup shared by every hierarchy's watch and set,
    /// instead of one per (cgroup, hierarchy) (8 on a hybrid host: ~0.8 MiB
    /// at 2,000 cgroups).
    pub fn intern(&self, path: &CgroupPath) -> CgroupPath {
        self.lock()
            .entries
            .get_key_value(path)
            .map_or_else(|| path.clone(), |(k, _)| k.clone())
    }

    pub fn add(&self, hierarchy: HierarchyId, path: &CgroupPath) -> bool {
        if !self.filter.tracks(path) {
            return false;
        }
        let mut st = self.lock();
        let Some(set) = st.per_hierarchy.get(hierarchy.0 as usize) else {
            return false;
        };
        if set.contains(path) {
            return false;
        }
        let known = st.entries.get(path).cloned();
        // Known from another hierarchy: share its path (see `intern`).
        let path = &known
            .as_ref()
            .map_or_else(|| path.clone(), |e| e.path.clone());
        if known.is_none() && st.entries.len() >= self.filter.max_cgroups {
            self.stats
                .skipped_max_cgroups
                .fetch_add(1, Ordering::Relaxed);
            if !st.max_warned {
                st.max_warned = true;
                warn!(
                    max_cgroups = self.filter.max_cgroups,
                    cgroup = %path,
                    "cgroup limit reached: new cgroups are skipped and counted in cgroup_psi_exporter_cgroups_skipped_total"
                );
            }
            return false;
        }
        let entry = match known {
            Some(e) => CgroupEntry {
                hierarchies: e.hierarchies.with(hierarchy),
                ..(*e).clone()
            },
            None => CgroupEntry {
                path: path.clone(),
                hierarchies: HierarchySet::default().with(hierarchy),
                labels: labels::from_path(path),
            },
        };
        if let Some(set) = st.per_hierarchy.get_mut(hierarchy.0 as usize) {
            set.insert(path.clone());
        }
        st.entries.insert(path.clone(), Arc::new(entry));
        st.snapshot = None;
        self.stats.added.fetch_add(1, Ordering::Relaxed);
        debug!(cgroup = %path, hierarchy = hierarchy.0, "cgroup added");
        Self::publish(
            &mut st,
            RegistryEvent::Added {
                path: path.clone(),
                hierarchy,
            },
        );
        true
    }

    /// Records that `path` and everything below it left `hierarchy`.
    /// Returns the paths removed.
    pub fn remove_subtree(&self, hierarchy: HierarchyId, path: &CgroupPath) -> Vec<CgroupPath> {
        let mut st = self.lock();
        let Some(set) = st.per_hierarchy.get_mut(hierarchy.0 as usize) else {
            return Vec::new();
        };
        let gone: Vec<CgroupPath> = set
            .range(path.clone()..)
            .take_while(|p| p.as_str().starts_with(path.as_str()))
            .filter(|p| p.is_within(path))
            .cloned()
            .collect();
        // Children first, so subscribers see leaves go before parents.
        for p in gone.iter().rev() {
            self.remove_locked(&mut st, hierarchy, p);
        }
        gone
    }

    fn remove_locked(&self, st: &mut State, hierarchy: HierarchyId, path: &CgroupPath) {
        if let Some(set) = st.per_hierarchy.get_mut(hierarchy.0 as usize) {
            if !set.remove(path) {
                return;
            }
        }
        if let Some(e) = st.entries.get(path).cloned() {
            let rest = e.hierarchies.without(hierarchy);
            if rest.is_empty() {
                st.entries.remove(path);
            } else {
                st.entries.insert(
                    path.clone(),
                    Arc::new(CgroupEntry {
                        hierarchies: rest,
                        ..(*e).clone()
                    }),
                );
            }
        }
        st.snapshot = None;
        self.stats.removed.fetch_add(1, Ordering::Relaxed);
        debug!(cgroup = %path, hierarchy = hierarchy.0, "cgroup removed");
        Self::publish(
            st,
            RegistryEvent::Removed {
                path: path.clone(),
                hierarchy,
            },
        );
    }

    /// Makes `hierarchy`'s set equal to `found` (a fresh walk), emitting the
    /// differences as events.
    pub fn reconcile(&self, hierarchy: HierarchyId, found: &BTreeSet<CgroupPath>) {
        let current: Vec<CgroupPath> = {
            let st = self.lock();
            match st.per_hierarchy.get(hierarchy.0 as usize) {
                Some(s) => s.iter().cloned().collect(),
                None => return,
            }
        };
        for p in current.iter().rev() {
            if !found.contains(p) {
                let mut st = self.lock();
                self.remove_locked(&mut st, hierarchy, p);
            }
        }
        for p in found {
            self.add(hierarchy, p);
        }
    }

    /// Walks every hierarchy and reconciles the registry with what is there.
    pub fn rescan(&self, reason: RescanReason) {
        self.rescan_with(reason, |_, _| Ok(()));
    }

    /// The one rescan: counts it under `reason`, walks every hierarchy
    /// (`before_list` runs on each directory before it is listed: the
    /// watcher adds its watch there) and reconciles. Returns, per hierarchy
    /// in layout order, every directory the walk found, tracked or not.
    pub(crate) fn rescan_with(
        &self,
        reason: RescanReason,
        mut before_list: impl FnMut(HierarchyId, &CgroupPath) -> std::io::Result<()>,
    ) -> Vec<(HierarchyId, BTreeSet<CgroupPath>)> {
        reason.counter(&self.stats).fetch_add(1, Ordering::Relaxed);
        let mut walked = Vec::with_capacity(self.layout.hierarchies.len());
        for h in &self.layout.hierarchies {
            let found: BTreeSet<CgroupPath> =
                walk::walk(&h.root, self.filter.max_depth, |cg| before_list(h.id, cg))
                    .into_iter()
                    .collect();
            let tracked: BTreeSet<CgroupPath> = found
                .iter()
                .filter(|p| self.filter.tracks(p))
                .cloned()
                .collect();
            self.reconcile(h.id, &tracked);
            walked.push((h.id, found));
        }
        walked
    }

    fn publish(st: &mut State, ev: RegistryEvent) {
        st.subscribers.retain(|tx| tx.send(ev.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_write_stamp_changes_on_every_write_rewatch_and_lost_event() {
        let m = Modified::default();
        let (h, cg) = (HierarchyId(1), CgroupPath::from_components(&["a", "b"]));
        assert_eq!(
            m.stamp(h, &cg),
            None,
            "not watched: settings read every scrape"
        );
        m.touch(h, &cg);
        assert_eq!(
            m.stamp(h, &cg),
            None,
            "a write to an unwatched directory adds nothing"
        );
        m.watched(h, &cg);
        let s0 = m.stamp(h, &cg).expect("watched");
        assert_eq!(m.stamp(h, &cg), Some(s0), "stable while nothing is written");
        assert_eq!(m.stamp(HierarchyId(2), &cg), None, "per hierarchy");
        m.touch(h, &cg);
        let s1 = m.stamp(h, &cg).expect("watched");
        assert_ne!(s0, s1);
        m.touch_all();
        let s2 = m.stamp(h, &cg).expect("watched");
        assert!(s2 != s1 && s2 != s0);
        // Removed and made again under the same name: a new stamp.
        m.unwatched(h, &cg);
        assert_eq!(m.stamp(h, &cg), None);
        m.watched(h, &cg);
        let s3 = m.stamp(h, &cg).expect("watched");
        assert!(![s0, s1, s2].contains(&s3));
    }
    use super::*;
    use crate::cgroupfs::layout::Hierarchy;
    use crate::cgroupfs::Mode;
    use std::path::PathBuf;

    fn layout() -> Arc<Layout> {
        Arc::new(Layout {
            mode: Mode::Hybrid,
            hierarchies: vec![
                Hierarchy {
                    id: HierarchyId(0),
                    root: PathBuf::from("/nonexistent/unified"),
                    unified: true,
                    controllers: vec![],
                },
                Hierarchy {
                    id: HierarchyId(1),
                    root: PathBuf::from("/nonexistent/memory"),
                    unified: false,
                    controllers: vec![crate::cgroupfs::Controller::Memory],
                },
            ],
            detected_from: "test",
        })
    }

    #[test]
    fn same_path_in_two_hierarchies_is_one_cgroup() {
        let r = Registry::new(layout(), Filter::default());
        let p = CgroupPath::new("/a");
        assert!(r.add(HierarchyId(0), &p));
        assert!(r.add(HierarchyId(1), &p));
        assert!(!r.add(HierarchyId(1), &p));
        let s = r.snapshot();
        assert_eq!(s.len(), 1);
        assert!(
            s[0].hierarchies.contains(HierarchyId(0)) && s[0].hierarchies.contains(HierarchyId(1))
        );
        r.remove_subtree(HierarchyId(0), &p);
        assert_eq!(r.snapshot().len(), 1);
        r.remove_subtree(HierarchyId(1), &p);
        assert!(r.snapshot().is_empty());
    }

    #[test]
    fn subtree_removal_sends_children_first() {
        let r = Registry::new(layout(), Filter::default());
        for p in ["/a", "/a/b", "/a/b/c", "/ab"] {
            r.add(HierarchyId(0), &CgroupPath::new(p));
        }
        let (_, mut rx) = r.subscribe();
        let gone = r.remove_subtree(HierarchyId(0), &CgroupPath::new("/a"));
        assert_eq!(gone.len(), 3);
        let mut order = Vec::new();
        while let Ok(RegistryEvent::Removed { path, .. }) = rx.try_recv() {
            order.push(path.to_string());
        }
        assert_eq!(order, ["/a/b/c", "/a/b", "/a"]);
        assert_eq!(r.snapshot().len(), 1, "/ab is not below /a");
    }

    #[test]
    fn max_cgroups_skips_and_counts_without_dropping_tracked_ones() {
        let f = Filter {
            max_cgroups: 2,
            ..Filter::default()
        };
        let r = Registry::new(layout(), f);
        for p in ["/a", "/b", "/c", "/d"] {
            r.add(HierarchyId(0), &CgroupPath::new(p));
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.stats.skipped_max_cgroups.load(Ordering::Relaxed), 2);
        // A known cgroup appearing in another hierarchy is not "new".
        assert!(r.add(HierarchyId(1), &CgroupPath::new("/a")));
    }

    #[test]
    fn subscribe_gives_current_set_then_changes() {
        let r = Registry::new(layout(), Filter::default());
        r.add(HierarchyId(0), &CgroupPath::new("/a"));
        let (now, mut rx) = r.subscribe();
        assert_eq!(now.len(), 1);
        r.add(HierarchyId(1), &CgroupPath::new("/b"));
        assert_eq!(
            rx.try_recv().ok(),
            Some(RegistryEvent::Added {
                path: CgroupPath::new("/b"),
                hierarchy: HierarchyId(1)
            })
        );
    }
}
