//! The host's files, for the root cgroup (`cgroup="/"`) where its own
//! files say nothing or the wrong thing: `/proc/diskstats` for IO on v1
//! and hybrid, `/proc/pressure/*` where the root has no pressure files,
//! `/proc/vmstat` for OOM kills. [`super::sample`] decides which value
//! wins; this module only reads.

use std::path::Path;

use crate::cgroupfs::files::{CgroupFiles, File, FileSet};
use crate::cgroupfs::parse::{self, Psi};
use crate::cgroupfs::reader::{ReadError, Reader, SoftError};

use super::sample::IoDevice;

/// The host's values, read for the root only. `None`: not read, or not
/// there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFiles {
    /// Whole disks with IO, in bytes.
    pub disks: Option<Vec<IoDevice>>,
    /// `oom_kill` of `/proc/vmstat` (Linux ≥ 4.13).
    pub oom_kill: Option<u64>,
    /// `/proc/pressure/{cpu,memory,io}`.
    pub pressure: [Option<Psi>; 3],
}

/// The host's IO for `cgroup="/"` on v1 and hybrid hosts, from
/// `/proc/diskstats`, as v2's root `io.stat` has it. Kernel quirk: the v1
/// root's `blkio.throttle.*_recursive` sums the live descendants and folds
/// a removed cgroup's counts in only after it is freed, so it dips for a
/// moment whenever a cgroup that did IO is removed, and a dip in a counter
/// reads as a reset (a spike of the whole total in `rate()`). It also
/// counts only what passed the throttle layer. The disks' counters do
/// neither. Without a readable diskstats the blkio values stay.
pub fn read_disks(reader: &mut Reader, procfs: &Path) -> Option<Vec<IoDevice>> {
    let text = reader.read_other(&procfs.join("diskstats")).ok()?;
    Some(
        parse::parse_diskstats(text)
            .into_iter()
            .filter(|d| d.reads + d.writes > 0)
            .map(|d| IoDevice {
                dev: d.dev,
                read_bytes: Some(d.read_bytes),
                write_bytes: Some(d.write_bytes),
                reads: Some(d.reads),
                writes: Some(d.writes),
            })
            .collect(),
    )
}

/// After the root's own files: the host's pressure for each resource the
/// root has no file for (v1, or a v2 root without pressure files), and
/// its OOM kills (the root cgroup has no counter: no `memory.events` at
/// the v2 root; v1's root `oom_control` counts only the root's own tasks).
pub fn read_after_root(
    reader: &mut Reader,
    procfs: &Path,
    wanted: FileSet,
    root: &CgroupFiles,
    host: &mut HostFiles,
    soft: &mut Vec<SoftError>,
) {
    let resources = [
        ("cpu", File::CpuPressure, root.cpu_pressure),
        ("memory", File::MemoryPressure, root.memory_pressure),
        ("io", File::IoPressure, root.io_pressure),
    ];
    for (slot, (res, file, own)) in host.pressure.iter_mut().zip(resources) {
        if !wanted.contains(file) || own.is_some_and(|p| p.some.is_some() || p.full.is_some()) {
            continue;
        }
        let path = procfs.join("pressure").join(res);
        let parsed = match reader.read_other(&path) {
            Ok(t) => parse::parse_psi(t).map_err(|source| ReadError::Parse {
                path: path.clone(),
                source,
            }),
            Err(e) => Err(e),
        };
        match parsed {
            Ok(p) => *slot = Some(p),
            Err(ReadError::Absent { .. }) | Err(ReadError::Unsupported { .. }) => {}
            Err(error) => soft.push(SoftError {
                file: "pressure",
                error,
            }),
        }
    }
    if wanted.contains(File::MemoryEvents) {
        if let Ok(text) = reader.read_other(&procfs.join("vmstat")) {
            let _ = parse::parse_flat_keyed(text, |k, v| {
                if k == "oom_kill" {
                    host.oom_kill = Some(v);
                }
            });
        }
    }
}
