//! Which cgroup hierarchies are mounted under `--path.cgroupfs`, and where.
//!
//! Three layouts exist in the wild:
//! - **v2**: one `cgroup2` mount at the root, every controller in it.
//! - **v1**: a `tmpfs` at the root with one `cgroup` mount per controller
//!   (or per co-mounted group, such as `cpu,cpuacct`).
//! - **hybrid**: v1 as above plus a `cgroup2` mount at `unified/` that
//!   carries no controllers but does carry PSI files and `cpu.stat`
//!   (systemd's default until v247, and this project's development machine).
//!
//! When the root is a mount point we believe `/proc/self/mountinfo`; when it
//! is a plain folder (fixture trees, a copy of a node's tree) we look at the
//! files, so that tests and users can point the exporter at any directory.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::info;

/// The v1 controllers whose files we read. `devices`, `net_cls` and the
/// named `systemd` hierarchy carry no statistics and are not tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    Cpu,
    Cpuacct,
    Cpuset,
    Memory,
    Blkio,
    Pids,
    Hugetlb,
    Freezer,
}

impl Controller {
    pub const ALL: [Controller; 8] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Blkio,
        Controller::Pids,
        Controller::Hugetlb,
        Controller::Freezer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Blkio => "blkio",
            Controller::Pids => "pids",
            Controller::Hugetlb => "hugetlb",
            Controller::Freezer => "freezer",
        }
    }

    pub fn from_name(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    V2,
    V1,
    Hybrid,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::V2 => "v2",
            Mode::V1 => "v1",
            Mode::Hybrid => "hybrid",
        })
    }
}

/// Index of a hierarchy in [`Layout::hierarchies`]; small so that a cgroup
/// can record the hierarchies it exists in as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HierarchyId(pub u8);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub id: HierarchyId,
    /// The directory of the hierarchy's root cgroup.
    pub root: PathBuf,
    /// True for the cgroup2 hierarchy (the whole tree in v2 mode,
    /// `unified/` in hybrid mode).
    pub unified: bool,
    /// v1 controllers mounted here (several when co-mounted); empty for v2.
    pub controllers: Vec<Controller>,
}

impl Hierarchy {
    /// A short name for logs and the `hierarchy` label of self metrics:
    /// `unified`, or the v1 mount's directory name (`cpu,cpuacct`).
    pub fn name(&self) -> String {
        if self.unified {
            return "unified".to_string();
        }
        let names: Vec<&str> = self.controllers.iter().map(|c| c.name()).collect();
        names.join(",")
    }
}

/// The hierarchies a cgroup exists in, as a bit set of [`HierarchyId`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HierarchySet(u32);

impl HierarchySet {
    pub fn contains(self, id: HierarchyId) -> bool {
        self.0 & (1 << id.0) != 0
    }
    pub fn with(self, id: HierarchyId) -> Self {
        HierarchySet(self.0 | (1 << id.0))
    }
    pub fn without(self, id: HierarchyId) -> Self {
        HierarchySet(self.0 & !(1 << id.0))
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub mode: Mode,
    pub hierarchies: Vec<Hierarchy>,
    /// How the layout was found, for the startup log.
    pub detected_from: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: cannot read cgroupfs: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no cgroup hierarchy found (neither cgroup.controllers nor v1 controller folders such as memory/ or cpu/)")]
    NoHierarchy { path: PathBuf },
}

impl Layout {
    /// Detects the layout under `cgroupfs`, using `procfs/self/mountinfo`
    /// when `cgroupfs` is a mount point there.
    pub fn detect(cgroupfs: &Path, procfs: &Path) -> Result<Layout, LayoutError> {
        let meta = fs::metadata(cgroupfs).map_err(|source| LayoutError::Unreadable {
            path: cgroupfs.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(LayoutError::Unreadable {
                path: cgroupfs.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
            });
        }
        fs::read_dir(cgroupfs).map_err(|source| LayoutError::Unreadable {
            path: cgroupfs.to_path_buf(),
            source,
        })?;
        let canonical = fs::canonicalize(cgroupfs).unwrap_or_else(|_| cgroupfs.to_path_buf());
        let layout = match fs::read_to_string(procfs.join("self/mountinfo")) {
            Ok(text) => Self::from_mountinfo(&canonical, cgroupfs, &text),
            Err(_) => None,
        };
        let layout = match layout {
            Some(l) => l,
            None => Self::from_files(cgroupfs)?,
        };
        info!(
            mode = %layout.mode,
            detected_from = layout.detected_from,
            hierarchies = %layout.hierarchies.iter().map(|h| h.name()).collect::<Vec<_>>().join(" "),
            "cgroup layout detected"
        );
        Ok(layout)
    }

    /// Builds the layout from mountinfo when `canonical` is a mount point (or
    /// a `cgroup2` mount) in it; `None` for a plain folder.
    pub fn from_mountinfo(canonical: &Path, given: &Path, mountinfo: &str) -> Option<Layout> {
        let mounts = parse_mountinfo(mountinfo);
        let root = mounts
            .iter()
            .rev()
            .find(|m| Path::new(&m.mount_point) == canonical)?;
        if root.fs_type == "cgroup2" {
            return Some(Layout {
                mode: Mode::V2,
                hierarchies: vec![Hierarchy {
                    id: HierarchyId(0),
                    root: given.to_path_buf(),
                    unified: true,
                    controllers: Vec::new(),
                }],
                detected_from: "mountinfo",
            });
        }
        let mut hierarchies = Vec::new();
        let mut unified = None;
        let mut seen = BTreeSet::new();
        for m in &mounts {
            let mp = Path::new(&m.mount_point);
            let Ok(rel) = mp.strip_prefix(canonical) else {
                continue;
            };
            if rel.components().count() != 1 {
                continue;
            }
            let dir = given.join(rel);
            match m.fs_type.as_str() {
                "cgroup2" => unified = Some(dir),
                "cgroup" => add_v1(&mut hierarchies, &mut seen, dir, m.controllers.clone()),
                _ => {}
            }
        }
        if unified.is_none() && hierarchies.is_empty() {
            return None;
        }
        Some(Self::assemble(unified, hierarchies, "mountinfo"))
    }

    /// Detects the layout of a plain folder by its files: `cgroup.controllers`
    /// at the root means v2; `unified/cgroup.controllers` means hybrid;
    /// controller-named folders holding `cgroup.procs` mean v1.
    pub fn from_files(cgroupfs: &Path) -> Result<Layout, LayoutError> {
        if cgroupfs.join("cgroup.controllers").is_file() {
            return Ok(Layout {
                mode: Mode::V2,
                hierarchies: vec![Hierarchy {
                    id: HierarchyId(0),
                    root: cgroupfs.to_path_buf(),
                    unified: true,
                    controllers: Vec::new(),
                }],
                detected_from: "files",
            });
        }
        let unified = cgroupfs.join("unified");
        let unified = unified
            .join("cgroup.controllers")
            .is_file()
            .then_some(unified);
        let mut names: Vec<String> = fs::read_dir(cgroupfs)
            .map_err(|source| LayoutError::Unreadable {
                path: cgroupfs.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        // Real directories before symlinks (`cpu -> cpu,cpuacct`), so a
        // co-mounted hierarchy is found under its own name.
        names.sort();
        let mut seen = BTreeSet::new();
        let mut hierarchies = Vec::new();
        for name in names {
            let dir = cgroupfs.join(&name);
            let is_link = fs::symlink_metadata(&dir)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            if is_link || !dir.join("cgroup.procs").is_file() {
                continue;
            }
            let controllers = name.split(',').filter_map(Controller::from_name);
            add_v1(&mut hierarchies, &mut seen, dir, controllers);
        }
        if unified.is_none() && hierarchies.is_empty() {
            return Err(LayoutError::NoHierarchy {
                path: cgroupfs.to_path_buf(),
            });
        }
        Ok(Self::assemble(unified, hierarchies, "files"))
    }

    fn assemble(
        unified: Option<PathBuf>,
        v1: Vec<(PathBuf, Vec<Controller>)>,
        detected_from: &'static str,
    ) -> Layout {
        let mode = match (&unified, v1.is_empty()) {
            (Some(_), true) => Mode::V2,
            (Some(_), false) => Mode::Hybrid,
            (None, _) => Mode::V1,
        };
        let mut hierarchies = Vec::new();
        if let Some(root) = unified {
            hierarchies.push(Hierarchy {
                id: HierarchyId(0),
                root,
                unified: true,
                controllers: Vec::new(),
            });
        }
        for (root, controllers) in v1 {
            let id = HierarchyId(hierarchies.len() as u8);
            hierarchies.push(Hierarchy {
                id,
                root,
                unified: false,
                controllers,
            });
        }
        Layout {
            mode,
            hierarchies,
            detected_from,
        }
    }

    pub fn unified(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.unified)
    }

    /// The v1 hierarchy carrying `controller`, if mounted.
    pub fn v1(&self, controller: Controller) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| !h.unified && h.controllers.contains(&controller))
    }

    pub fn get(&self, id: HierarchyId) -> Option<&Hierarchy> {
        self.hierarchies.get(id.0 as usize)
    }
}

/// Adds the v1 hierarchy at `dir` carrying `controllers` (`cpu,cpuacct`),
/// those not already seen elsewhere.
fn add_v1(
    hierarchies: &mut Vec<(PathBuf, Vec<Controller>)>,
    seen: &mut BTreeSet<Controller>,
    dir: PathBuf,
    controllers: impl IntoIterator<Item = Controller>,
) {
    let controllers: Vec<Controller> = controllers
        .into_iter()
        .filter(|c| seen.insert(*c))
        .collect();
    if !controllers.is_empty() {
        hierarchies.push((dir, controllers));
    }
}

/// One mount of `/proc/<pid>/mountinfo` (proc(5)), the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_point: String,
    pub fs_type: String,
    /// The v1 controllers among the superblock options, in the kernel's
    /// order (the order it prints them in, `cpu,cpuacct`).
    pub controllers: Vec<Controller>,
}

/// The order of the kernel's cgroup subsystems
/// (`include/linux/cgroup_subsys.h`), in which a v1 mount lists them.
const KERNEL_ORDER: [Controller; 8] = [
    Controller::Cpuset,
    Controller::Cpu,
    Controller::Cpuacct,
    Controller::Blkio,
    Controller::Memory,
    Controller::Freezer,
    Controller::Hugetlb,
    Controller::Pids,
];

/// Parses mountinfo with procfs-core, line by line so that a malformed line
/// is skipped, not fatal. procfs-core leaves the mount point as the kernel
/// escapes it (`\040` for a space) and the superblock options as a map, so
/// the mount point is unescaped here and the controllers put back in the
/// kernel's order.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let parse = procfs::process::MountInfo::from_line;
    text.lines()
        .filter_map(|line| parse(line).ok())
        .map(|m| {
            let mut controllers: Vec<Controller> = m
                .super_options
                .keys()
                .filter_map(|k| Controller::from_name(k))
                .collect();
            controllers.sort_by_key(|c| KERNEL_ORDER.iter().position(|k| k == c));
            MountInfo {
                mount_point: unescape_octal(&m.mount_point.to_string_lossy()),
                fs_type: m.fs_type,
                controllers,
            }
        })
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from this project's hybrid development machine (kernel 6.18).
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_mountinfo_gives_unified_plus_v1_controllers() {
        let root = Path::new("/sys/fs/cgroup");
        let l = Layout::from_mountinfo(root, root, HYBRID).expect("mount point");
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(
            l.unified().map(|h| h.root.clone()),
            Some(root.join("unified"))
        );
        assert_eq!(
            l.v1(Controller::Memory).map(|h| h.root.clone()),
            Some(root.join("memory"))
        );
        assert_eq!(l.v1(Controller::Hugetlb), None);
        // devices and name=systemd are not tracked.
        assert_eq!(l.hierarchies.len(), 8);
    }

    #[test]
    fn pure_v2_mountinfo() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let root = Path::new("/sys/fs/cgroup");
        let l = Layout::from_mountinfo(root, Path::new("/host/cg"), text).expect("v2");
        assert_eq!(l.mode, Mode::V2);
        assert_eq!(l.hierarchies[0].root, Path::new("/host/cg"));
    }

    #[test]
    fn comounted_v1_controllers_share_a_hierarchy() {
        let text = "\
25 18 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let root = Path::new("/sys/fs/cgroup");
        let l = Layout::from_mountinfo(root, root, text).expect("v1");
        assert_eq!(l.mode, Mode::V1);
        assert_eq!(l.v1(Controller::Cpu), l.v1(Controller::Cpuacct));
        assert_eq!(
            l.v1(Controller::Cpu).map(|h| h.name()),
            Some("cpu,cpuacct".to_string())
        );
    }

    #[test]
    fn comounted_controllers_are_named_in_the_kernels_order() {
        // The superblock options come back as a map: the name must not
        // depend on its order.
        let text =
            "29 25 0:26 / /sys/fs/cgroup/x rw - cgroup cgroup rw,cpuacct,memory,cpu,cpuset\n";
        let m = parse_mountinfo(text);
        use Controller::*;
        assert_eq!(m[0].controllers, [Cpuset, Cpu, Cpuacct, Memory]);
    }

    #[test]
    fn a_plain_folder_is_not_found_in_mountinfo() {
        assert!(Layout::from_mountinfo(Path::new("/tmp/x"), Path::new("/tmp/x"), HYBRID).is_none());
    }

    #[test]
    fn mount_points_with_escaped_spaces_are_unescaped() {
        let m = parse_mountinfo("1 2 0:1 / /mnt/a\\040b rw - cgroup2 cgroup2 rw\nbroken line\n");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point, "/mnt/a b");
    }

    #[test]
    fn files_detect_each_layout() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Layout::from_files(d.path()),
            Err(LayoutError::NoHierarchy { .. })
        ));
        fs::create_dir_all(d.path().join("memory")).expect("mkdir");
        fs::write(d.path().join("memory/cgroup.procs"), "").expect("write");
        assert_eq!(Layout::from_files(d.path()).expect("v1").mode, Mode::V1);
        fs::create_dir_all(d.path().join("unified")).expect("mkdir");
        fs::write(d.path().join("unified/cgroup.controllers"), "").expect("write");
        assert_eq!(
            Layout::from_files(d.path()).expect("hybrid").mode,
            Mode::Hybrid
        );
        fs::write(d.path().join("cgroup.controllers"), "cpu memory\n").expect("write");
        assert_eq!(Layout::from_files(d.path()).expect("v2").mode, Mode::V2);
    }
}
