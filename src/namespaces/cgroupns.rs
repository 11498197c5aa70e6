//! Host paths for `/proc/<pid>/cgroup` when the exporter itself runs in a
//! private cgroup namespace.
//!
//! Kernel quirk: the paths in `/proc/<pid>/cgroup` are rendered relative to
//! the cgroup namespace of the task *reading* the file, not of the process
//! it describes. An unprivileged container on a cgroup v2 node (containerd,
//! CRI-O) gets its own cgroup namespace, so even with the host's `/proc`
//! mounted, a pod's process shows as `0::/../../kubepods.slice/...` and the
//! exporter's own as `0::/`. The host's cgroupfs, bind-mounted at
//! `--path.cgroupfs`, still shows the whole tree, so the namespace's root
//! can be found there: it is the cgroup whose `cgroup.procs` lists the
//! exporter's own pid, less the part of the path the exporter sees of
//! itself. Joining that root with each process's relative path gives the
//! host path, the one the cgroup metrics are labelled with.
//!
//! Found once, at the first scan: the exporter does not move between
//! cgroups, and searching the tree costs one `cgroup.procs` read per
//! cgroup.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::{debug, info};

use crate::cgroupfs::{Controller, Hierarchy, Layout};

/// Directories visited at most while looking for the exporter's cgroup.
const SEARCH_LIMIT: usize = 200_000;

/// Which hierarchy a `/proc/<pid>/cgroup` line is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LineKey {
    Unified,
    /// A v1 hierarchy, named by one of its controllers.
    V1(Controller),
}

impl LineKey {
    fn of(id: &str, controllers: &str) -> Option<LineKey> {
        if id == "0" && controllers.is_empty() {
            return Some(LineKey::Unified);
        }
        controllers
            .split(',')
            .find_map(Controller::from_name)
            .map(LineKey::V1)
    }

    fn hierarchy<'a>(&self, layout: &'a Layout) -> Option<&'a Hierarchy> {
        match self {
            LineKey::Unified => layout.unified(),
            LineKey::V1(c) => layout.v1(*c),
        }
    }
}

/// Namespace roots per hierarchy; empty when the exporter shares the
/// host's cgroup namespace (the usual case outside containers).
#[derive(Debug, Default)]
pub(crate) struct CgroupNsRoots {
    roots: Vec<(LineKey, String)>,
}

impl CgroupNsRoots {
    /// Compares what `<procfs>/self/cgroup` says with where the exporter's
    /// pid really is in each hierarchy of `layout`.
    pub(crate) fn detect(procfs: &Path, layout: &Layout) -> CgroupNsRoots {
        let mut pids: Vec<String> = Vec::new();
        if let Ok(target) = fs::read_link(procfs.join("self")) {
            if let Some(s) = target.to_str() {
                pids.push(s.to_string());
            }
        }
        let own = std::process::id().to_string();
        if !pids.contains(&own) {
            pids.push(own);
        }
        let Ok(content) = fs::read_to_string(procfs.join("self").join("cgroup")) else {
            return CgroupNsRoots::default();
        };
        let mut roots = Vec::new();
        for line in content.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(seen)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(key) = LineKey::of(id, ctrls) else {
                continue;
            };
            let Some(h) = key.hierarchy(layout) else {
                continue;
            };
            if roots.iter().any(|(k, _)| *k == key) || !seen.starts_with('/') {
                continue;
            }
            // Where we appear to be is where we are: the host's namespace.
            if lists_pid(&dir_of(&h.root, seen), &pids) {
                continue;
            }
            let Some(actual) = find_pid(&h.root, &pids) else {
                // Fixture trees and a procfs of another pid namespace end
                // here too; the scan warns once if it then meets a path
                // that really is relative.
                debug!(
                    hierarchy = %h.name(),
                    "the exporter's own cgroup was not found under --path.cgroupfs"
                );
                continue;
            };
            let root = if seen == "/" {
                Some(actual.clone())
            } else {
                actual.strip_suffix(seen).map(|r| {
                    if r.is_empty() {
                        "/".to_string()
                    } else {
                        r.to_string()
                    }
                })
            };
            match root {
                Some(root) if root != "/" => {
                    info!(
                        hierarchy = %h.name(),
                        namespace_root = %root,
                        "the exporter runs in a private cgroup namespace: process cgroup paths are mapped to host paths"
                    );
                    roots.push((key, root));
                }
                _ => {}
            }
        }
        CgroupNsRoots { roots }
    }

    /// `content` of a `/proc/<pid>/cgroup` with each path made a host path;
    /// `None` when nothing changes.
    pub(crate) fn rewrite(&self, content: &str) -> Option<String> {
        if self.roots.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(content.len() + 64);
        for line in content.lines() {
            let mut parts = line.splitn(3, ':');
            let rewritten = match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(ctrls), Some(path)) if path.starts_with('/') => {
                    LineKey::of(id, ctrls)
                        .and_then(|k| self.roots.iter().find(|(key, _)| *key == k))
                        .map(|(_, root)| {
                            // ` (deleted)` stays a suffix, as the parser expects.
                            let (p, deleted) = match path.strip_suffix(" (deleted)") {
                                Some(p) => (p, " (deleted)"),
                                None => (path, ""),
                            };
                            format!("{id}:{ctrls}:{}{deleted}", join(root, p))
                        })
                }
                _ => None,
            };
            out.push_str(rewritten.as_deref().unwrap_or(line));
            out.push('\n');
        }
        Some(out)
    }
}

/// `root` joined with a namespace-relative `path`, `..` resolved; never
/// above `/`.
pub(crate) fn join(root: &str, path: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for s in root.split('/').chain(path.split('/')) {
        match s {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    if segs.is_empty() {
        "/".to_string()
    } else {
        let mut out = String::new();
        for s in segs {
            out.push('/');
            out.push_str(s);
        }
        out
    }
}

fn dir_of(root: &Path, cgroup: &str) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn lists_pid(dir: &Path, pids: &[String]) -> bool {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|procs| procs.lines().any(|l| pids.iter().any(|p| p == l.trim())))
        .unwrap_or(false)
}

/// Breadth-first: containers sit a few levels down, so this stops early.
fn find_pid(root: &Path, pids: &[String]) -> Option<String> {
    let mut queue = VecDeque::from([(root.to_path_buf(), String::from("/"))]);
    let mut visited = 0usize;
    while let Some((dir, path)) = queue.pop_front() {
        visited += 1;
        if visited > SEARCH_LIMIT {
            return None;
        }
        if lists_pid(&dir, pids) {
            return Some(path);
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                let child = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                queue.push_back((e.path(), child));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_namespace_root() {
        let root = "/kubepods.slice/kubepods-burstable.slice/pod1.slice/cri-abc.scope";
        assert_eq!(
            join(root, "/../../../../system.slice/kubelet.service"),
            "/system.slice/kubelet.service"
        );
        assert_eq!(join(root, "/"), root);
        assert_eq!(join(root, "/child"), format!("{root}/child"));
        assert_eq!(join("/a", "/../../../.."), "/", "never above the root");
        assert_eq!(join("/", "/x/./y"), "/x/y");
    }

    #[test]
    fn rewrite_maps_each_known_hierarchy_and_keeps_the_rest() {
        let ns = CgroupNsRoots {
            roots: vec![
                (LineKey::Unified, "/kubepods/pod1/c1".to_string()),
                (
                    LineKey::V1(Controller::Memory),
                    "/kubepods/pod1/c1".to_string(),
                ),
            ],
        };
        let out = ns
            .rewrite(
                "12:memory:/../../pod2/c2\n1:name=systemd:/../x\n0::/../../pod2/c2 (deleted)\n",
            )
            .expect("rewritten");
        assert_eq!(
            out,
            "12:memory:/kubepods/pod2/c2\n1:name=systemd:/../x\n0::/kubepods/pod2/c2 (deleted)\n"
        );
        assert!(CgroupNsRoots::default().rewrite("0::/a\n").is_none());
    }
}
