//! Real memory pressure in a test cgroup: cap its memory, then have readers
//! inside re-read a file several times the cap after dropping its page
//! cache, so the kernel reclaims and refaults and the cgroup's
//! `memory.pressure` grows (about 2 s of `some` stall in 8 s on the
//! development machine with a 16 MiB cap and two readers).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::KernelCgroup;

/// A file of random bytes, removed on drop.
pub struct BigFile {
    pub path: PathBuf,
}

impl BigFile {
    /// A new file per call: tests of one process may hold several at once,
    /// and each removes its own on drop.
    pub fn new(bytes: usize) -> BigFile {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let path = Path::new("/var/tmp").join(format!(
            "cgpe-pressure-{}-{}-{bytes}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "head -c {bytes} /dev/urandom > '{}' && sync",
                path.display()
            ))
            .status()
            .expect("make the pressure file");
        assert!(status.success(), "could not write {}", path.display());
        BigFile { path }
    }

    /// Drops the file's page cache so the first read faults it in.
    pub fn drop_cache(&self) {
        let _ = Command::new("dd")
            .arg(format!("if={}", self.path.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status();
    }
}

impl Drop for BigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub const LIMIT: u64 = 16 << 20;

/// Caps `cg`'s memory at `limit` bytes (v2 `memory.max`, or the v1 memory
/// controller on hybrid hosts).
pub fn cap_memory(cg: &KernelCgroup, limit: u64) {
    if super::pure_v2() {
        cg.write("", "memory.max", &limit.to_string());
    } else {
        cg.write("memory", "memory.limit_in_bytes", &limit.to_string());
    }
}

/// Shell commands that re-read `file` for `secs` seconds: one reader.
pub fn reader_script(file: &BigFile, secs: u64) -> String {
    format!(
        "end=$(( $(date +%s) + {secs} )); while [ $(date +%s) -lt $end ]; do dd if={} of=/dev/null bs=1M status=none; done",
        file.path.display()
    )
}

/// Starts `readers` processes in `cg` re-reading `file` for `secs` seconds.
pub fn start_readers(cg: &mut KernelCgroup, file: &BigFile, secs: u64, readers: usize) {
    file.drop_cache();
    for _ in 0..readers {
        cg.spawn(&reader_script(file, secs));
    }
}
