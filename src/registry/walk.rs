//! A walk of one hierarchy: every cgroup directory down to a depth bound.
//! Used at start, after an inotify queue overflow, and as the periodic
//! fallback when the watch limit is reached.

use std::fs;
use std::io;
use std::path::Path;

use tracing::debug;

use crate::cgroupfs::CgroupPath;

/// Lists `root` and its cgroup subdirectories down to `max_depth`.
/// `before_list` runs on each directory before it is listed (the watcher
/// adds its inotify watch there, so nothing created during the walk is
/// missed). A directory that vanishes mid-walk is skipped.
pub fn walk(
    root: &Path,
    max_depth: usize,
    before_list: impl FnMut(&CgroupPath) -> io::Result<()>,
) -> Vec<CgroupPath> {
    walk_from(root, &CgroupPath::root(), max_depth, before_list)
}

/// As [`walk`], from the cgroup `start` down (a newly created subtree).
pub fn walk_from(
    root: &Path,
    start: &CgroupPath,
    max_depth: usize,
    mut before_list: impl FnMut(&CgroupPath) -> io::Result<()>,
) -> Vec<CgroupPath> {
    let mut out = Vec::new();
    let mut stack = vec![start.clone()];
    while let Some(cg) = stack.pop() {
        if let Err(e) = before_list(&cg) {
            debug!(cgroup = %cg, error = %e, "before-list hook failed");
        }
        let dir = root.join(cg.relative());
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                debug!(dir = %dir.display(), error = %e, "cgroup vanished during walk");
                if !cg.is_root() {
                    continue;
                }
                return out;
            }
        };
        out.push(cg.clone());
        if cg.depth() >= max_depth {
            continue;
        }
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            stack.push(cg.join(&name));
        }
    }
    out.sort();
    out
}
