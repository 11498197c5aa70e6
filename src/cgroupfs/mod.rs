//! The cgroupfs layer: the mount layout (v2, v1, hybrid), pure parsers for
//! each kernel file format, the table of files ([`files`]) and the reader
//! that reads a cgroup's planned files into parser types, in kernel units.
//! It knows no metric and imports nothing of the crate but the shared core
//! ([`crate::kernel`]).
//!
//! Kernel reference: <https://docs.kernel.org/admin-guide/cgroup-v2.html> and
//! <https://docs.kernel.org/admin-guide/cgroup-v1/index.html>.

pub mod fdcache;
pub mod files;
pub mod layout;
pub mod parse;
pub mod reader;
pub mod stamps;

use std::fmt;
use std::sync::Arc;

pub use layout::{Controller, Hierarchy, HierarchyId, HierarchySet, Layout, LayoutError, Mode};

/// A cgroup, named by its path relative to the hierarchy root: `/` for the
/// root, `/system.slice/nginx.service` below it. The same path in several
/// hierarchies (hybrid mode) is the same cgroup.
///
/// Cheap to clone: the registry, the collector and the PSI agent share one
/// allocation per cgroup, and label values borrow from it at encode time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CgroupPath(Arc<str>);

impl CgroupPath {
    pub fn root() -> Self {
        CgroupPath(Arc::from("/"))
    }

    /// Builds a path from components relative to a hierarchy root
    /// (`["a", "b"]` → `/a/b`). An empty slice is the root.
    pub fn from_components<S: AsRef<str>>(parts: &[S]) -> Self {
        if parts.is_empty() {
            return Self::root();
        }
        let mut s = String::new();
        for p in parts {
            s.push('/');
            s.push_str(p.as_ref());
        }
        CgroupPath(Arc::from(s))
    }

    /// Normalises a user- or kernel-given path (`a/b`, `/a/b/`, `//a`) into
    /// the canonical form.
    pub fn new(raw: &str) -> Self {
        let parts: Vec<&str> = raw.split('/').filter(|p| !p.is_empty()).collect();
        Self::from_components(&parts)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        &*self.0 == "/"
    }

    /// Number of components: 0 for the root.
    pub fn depth(&self) -> usize {
        if self.is_root() {
            0
        } else {
            self.0.matches('/').count()
        }
    }

    /// The path relative to a hierarchy root, for joining onto it
    /// (`/a/b` → `a/b`, root → empty).
    pub fn relative(&self) -> &str {
        self.0.trim_start_matches('/')
    }

    pub fn parent(&self) -> Option<CgroupPath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(Self::root()),
            Some(i) => Some(CgroupPath(Arc::from(&self.0[..i]))),
            None => None,
        }
    }

    /// The last component, or `/` for the root.
    pub fn name(&self) -> &str {
        if self.is_root() {
            return "/";
        }
        self.0.rsplit('/').next().unwrap_or("/")
    }

    /// Joins a child directory name.
    pub fn join(&self, child: &str) -> CgroupPath {
        if self.is_root() {
            CgroupPath(Arc::from(format!("/{child}")))
        } else {
            CgroupPath(Arc::from(format!("{}/{child}", self.0)))
        }
    }

    /// True when `self` is `other` or below it.
    pub fn is_within(&self, other: &CgroupPath) -> bool {
        if other.is_root() {
            return true;
        }
        self.0.len() >= other.0.len()
            && self.0.starts_with(&*other.0)
            && (self.0.len() == other.0.len() || self.0.as_bytes()[other.0.len()] == b'/')
    }

    pub fn arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl AsRef<str> for CgroupPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_to_a_leading_slash_and_no_trailing_one() {
        assert_eq!(CgroupPath::new("a/b/").as_str(), "/a/b");
        assert_eq!(CgroupPath::new("//a").as_str(), "/a");
        assert_eq!(CgroupPath::new("").as_str(), "/");
        assert_eq!(CgroupPath::new("/").depth(), 0);
        assert_eq!(CgroupPath::new("/a/b").depth(), 2);
    }

    #[test]
    fn parent_join_and_within_agree() {
        let p = CgroupPath::new("/kubepods.slice/pod1");
        assert_eq!(p.parent(), Some(CgroupPath::new("/kubepods.slice")));
        assert_eq!(CgroupPath::new("/a").parent(), Some(CgroupPath::root()));
        assert_eq!(CgroupPath::root().parent(), None);
        assert_eq!(
            CgroupPath::root().join("a").join("b"),
            CgroupPath::new("a/b")
        );
        assert!(p.is_within(&CgroupPath::new("/kubepods.slice")));
        assert!(!CgroupPath::new("/kubepods.slicex").is_within(&CgroupPath::new("/kubepods.slice")));
        assert!(p.is_within(&CgroupPath::root()));
        assert_eq!(p.name(), "pod1");
        assert_eq!(p.relative(), "kubepods.slice/pod1");
    }
}
