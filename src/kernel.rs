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
