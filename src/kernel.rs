//! The small shared core for code that reads kernel files: one errno
//! classification, one parse error, the real page size. Every layer may use
//! it; it uses nothing of the crate.
//!
//! `cgroupfs` is converted; `namespaces` and `psi` keep their own copies
//! until they adopt these (issue 14, P4 of the architecture review).

use std::io;
use std::sync::OnceLock;

/// What an `io::Error` from opening or reading a kernel file means, the same
/// for every caller. Each module maps these onto its own error variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrnoClass {
    /// ENOENT: the file is not there (a controller that is off, an older
    /// kernel, pressure files hidden with `cgroup.pressure`).
    Absent,
    /// ENODEV (a read on an open file of a removed cgroup) or ESRCH (a
    /// process gone): the object went away while being read.
    Vanished,
    /// EOPNOTSUPP: compiled in but off (`psi=0`).
    Unsupported,
    /// EACCES / EPERM.
    Permission,
    Other,
}

/// The one errno table.
pub fn classify(err: &io::Error) -> ErrnoClass {
    match err.raw_os_error() {
        Some(libc::ENOENT) => ErrnoClass::Absent,
        Some(libc::ENODEV) | Some(libc::ESRCH) => ErrnoClass::Vanished,
        Some(libc::EOPNOTSUPP) => ErrnoClass::Unsupported,
        Some(libc::EACCES) | Some(libc::EPERM) => ErrnoClass::Permission,
        _ if err.kind() == io::ErrorKind::NotFound => ErrnoClass::Absent,
        _ => ErrnoClass::Other,
    }
}

/// Why a kernel file did not parse. `line` is 1-based; 0 when the file as a
/// whole is wrong (empty, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
}

impl ParseError {
    pub fn new(line: usize, reason: &'static str) -> Self {
        ParseError { line, reason }
    }
}

/// The kernel's page size (`sysconf(_SC_PAGESIZE)`): 4 KiB on x86-64,
/// often 64 KiB on arm64 and ppc64le. The unit of v1 `memory.numa_stat`
/// and of `/proc/<pid>/statm`. Asked once.
pub fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(procfs::page_size)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go programs do
/// at start: the soft limit (often 1024) is a guard for `select(2)`,
/// which this program does not use, and the fd cache, PSI triggers and
/// OOM watchers all need descriptors. A hard limit of "unlimited" is
/// capped at `fs.nr_open`, the most the kernel allows. Returns the soft
/// limit in force afterwards (`None`: unlimited).
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    if let (Some(soft), Some(hard)) = (lim.current, hard) {
        if soft < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: lim.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::debug!(from = soft, to = hard, "raised the soft RLIMIT_NOFILE"),
                Err(e) => tracing::debug!(error = %e, "cannot raise the soft RLIMIT_NOFILE"),
            }
        }
    }
    getrlimit(Resource::Nofile).current
}

/// glibc's allocator, set for a program whose heap is one scrape's
/// transient data: at most 2 arenas (glibc makes up to 8 per core, one per
/// thread that allocates, and the scrape fans out over threads, each arena
/// keeping its freed pages), and blocks over 256 KiB (a scrape's response
/// buffers) mapped and unmapped on their own rather than left in an arena,
/// with the heap's top trimmed past 256 KiB. Measured at 2,000 cgroups
/// (`cargo bench --bench scrape`, docs/performance.md): peak RSS 35 -> 26
/// MiB, the exporter's own cgroup 45 -> 30 MiB. A `MALLOC_*` variable the
/// user set wins: glibc reads those at start, and this leaves that knob
/// alone. Other C libraries: nothing to do.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune_allocator() {
    let set = |var: &str, param: libc::c_int, value: libc::c_int| {
        if std::env::var_os(var).is_none() {
            // SAFETY: mallopt only changes glibc's allocator parameters,
            // under glibc's own lock; it takes plain integers, touches no
            // memory of ours and is called before the scrape threads start.
            unsafe { libc::mallopt(param, value) };
        }
    };
    set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2);
    set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 256 << 10);
    set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 256 << 10);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

/// Descriptors this process has open now.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(classify(&e(libc::ENOENT)), ErrnoClass::Absent);
        assert_eq!(classify(&e(libc::ENODEV)), ErrnoClass::Vanished);
        assert_eq!(classify(&e(libc::ESRCH)), ErrnoClass::Vanished);
        assert_eq!(classify(&e(libc::EOPNOTSUPP)), ErrnoClass::Unsupported);
        assert_eq!(classify(&e(libc::EACCES)), ErrnoClass::Permission);
        assert_eq!(classify(&e(libc::EIO)), ErrnoClass::Other);
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::NotFound)),
            ErrnoClass::Absent
        );
    }

    #[test]
    fn the_page_size_is_the_kernels() {
        let p = page_size();
        assert!(p.is_power_of_two() && p >= 4096, "{p}");
        assert_eq!(p, procfs::page_size());
    }
}
