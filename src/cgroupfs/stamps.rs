//! Per-directory write stamps: the registry's watcher stamps a cgroup
//! directory when a file in it is written, and the reader keeps the
//! cgroup's settings while the stamp is unchanged. Lives here, below the
//! registry, so that the reader needs nothing from above `cgroupfs`.

use parking_lot::{RwLock, RwLockWriteGuard};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cgroupfs::fdcache::FastHash;
use crate::cgroupfs::{CgroupPath, HierarchyId};

/// Write stamps per cgroup, by hierarchy.
type Stamps = std::collections::HashMap<CgroupPath, Vec<(HierarchyId, u64)>, FastHash>;

/// Per watched cgroup directory, a stamp that changes whenever a settings
/// file in it is written (`IN_MODIFY` on the directory's watch), the watch
/// is (re)made, or events may have been missed. The reader keeps a
/// cgroup's limits and settings while the stamp it read them under is
/// unchanged: a setting changes only when something writes it, and that
/// write is an `IN_MODIFY` the next scrape applies before it reads.
///
/// The kernel quirk: on cgroup2 the kernel itself reports `IN_MODIFY`
/// (kernfs_notify) on `cgroup.events`, `memory.events` and the other
/// `*.events` files whenever a counter in them moves, many times a second
/// for a cgroup at its memory limit. So on cgroup2 only a write to a
/// settings file by name moves the stamp
/// ([`crate::cgroupfs::files::v2_setting_written`]); on v1, where the
/// kernel notifies only `pids.events`, any write does. A cgroup2
/// `cgroup.subtree_control` write moves every stamp (a controller disabled
/// and enabled again resets the children's settings with no write in
/// their directories). The notifications still take room in the inotify
/// queue; an overflow moves every stamp ([`Modified::touch_all`]) and
/// costs one full read. A directory without a stamp (not watched: deeper
/// than `max_depth`, watch limit reached) has its settings read every
/// scrape.
#[derive(Debug, Default)]
pub struct Modified {
    next: AtomicU64,
    /// Per cgroup, its watched directories' stamps by hierarchy: keyed by
    /// the path alone, so a scrape's lookup (once per cgroup and
    /// hierarchy) borrows the path instead of building a key, under a
    /// read lock the reader threads share.
    stamps: RwLock<Stamps>,
}

impl Modified {
    fn write(&self) -> RwLockWriteGuard<'_, Stamps> {
        self.stamps.write()
    }

    fn fresh(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The directory's current stamp; `None`: not watched for writes.
    pub fn stamp(&self, h: HierarchyId, cg: &CgroupPath) -> Option<u64> {
        self.stamps
            .read()
            .get(cg)?
            .iter()
            .find(|(id, _)| *id == h)
            .map(|(_, s)| *s)
    }

    /// A watch with `IN_MODIFY` was made on the directory.
    pub(crate) fn watched(&self, h: HierarchyId, cg: &CgroupPath) {
        let v = self.fresh();
        let mut m = self.write();
        let per_h = m.entry(cg.clone()).or_default();
        match per_h.iter_mut().find(|(id, _)| *id == h) {
            Some((_, s)) => *s = v,
            None => per_h.push((h, v)),
        }
    }

    /// A file in the directory was written.
    pub(crate) fn touch(&self, h: HierarchyId, cg: &CgroupPath) {
        let v = self.fresh();
        if let Some(per_h) = self.write().get_mut(cg) {
            if let Some((_, s)) = per_h.iter_mut().find(|(id, _)| *id == h) {
                *s = v;
            }
        }
    }

    /// The directory's watch is gone.
    pub(crate) fn unwatched(&self, h: HierarchyId, cg: &CgroupPath) {
        let mut m = self.write();
        if let Some(per_h) = m.get_mut(cg) {
            per_h.retain(|(id, _)| *id != h);
            if per_h.is_empty() {
                m.remove(cg);
            }
        }
    }

    /// Events may have been lost (queue overflow, a scrape that could not
    /// apply them): every stamp changes.
    pub fn touch_all(&self) {
        let mut m = self.write();
        for per_h in m.values_mut() {
            for (_, s) in per_h.iter_mut() {
                *s = self.next.fetch_add(1, Ordering::Relaxed) + 1;
            }
        }
    }
}
