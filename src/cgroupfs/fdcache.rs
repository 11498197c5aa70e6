//! Open file descriptors of stat files kept between scrapes, re-read with
//! `pread(fd, 0)`: ~2 µs a file instead of ~13 µs for open/read/close on
//! this machine's kernel (kernfs regenerates the text on each read at
//! offset 0).
//!
//! Bounded: `RLIMIT_NOFILE` is finite (20000 here) and each open kernfs file
//! also pins a seq_file page of kernel memory, charged to the exporter's own
//! cgroup. When the cache is full, further files are read the plain way
//! (with cyclic scrapes, evicting to make room would make every access a
//! miss); entries a complete scrape did not read (removed cgroups,
//! disabled families) are closed at its end, making room for others, and
//! after a scrape cut by its deadline, entries idle for a few scrapes.
//!
//! Keys are the path's bytes hashed with [`FastHash`], not a `PathBuf`
//! through SipHash: a profile of a 2,000-cgroup scrape had SipHash over
//! `Path` components and the map lookups as the top user-space entries,
//! and the keys are paths the exporter builds itself from kernel
//! directory names, not attacker-chosen input that would call for a
//! DoS-resistant hash.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const SHARDS: usize = 32;
/// Default bound. Each kept fd pins ~4.4 KiB of kernel memory (measured on
/// Linux 6.18: struct file and the seq_file page), charged to the
/// exporter's cgroup, and saves an open and a close (~5 µs of CPU since
/// misses open relative to a kept directory) per scrape. 3072 fds pin
/// ~13 MiB; 8192 (the bound before) pinned ~36 MiB, which alone put the
/// exporter's cgroup over the 48 MiB budget at 2,000 cgroups for ~7 % less
/// CPU per scrape. `metrics.fd_cache` sets it.
pub const AUTO_MAX: usize = 3072;
/// Entries not read for this many scrapes are closed.
const IDLE_GENERATIONS: u64 = 3;

#[derive(Debug)]
struct Entry {
    file: File,
    used: u64,
}

/// A multiply-rotate hash over 8-byte words (the FxHash scheme) with a
/// final avalanche, so the low bits the map indexes by depend on every
/// byte. Not DoS-resistant: for keys the exporter generates only.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHash;

/// The hasher of [`FastHash`].
#[derive(Debug, Default)]
pub struct FastHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches the low bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

/// One shard's descriptors, and how many reads they served (kept under
/// the shard's lock, which a read takes anyway; the tests' evidence that
/// a re-read went through a kept descriptor).
#[derive(Debug, Default)]
struct ShardMap {
    map: HashMap<Box<[u8]>, Entry, FastHash>,
    hits: u64,
}

/// Aligned to 128 bytes (two cache lines: x86 prefetches in pairs), so
/// that what one reader thread writes never shares a line with what the
/// other reads. With hit and miss counters as atomics next to
/// `capacity` and `generation`, every file read by one thread made the
/// other's next read wait for that cache line: the two hottest
/// instructions of `Reader::read` in a profile of a 2,000-cgroup scrape
/// were the loads just after such a write.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

type Shard = Padded<Mutex<ShardMap>>;

#[derive(Debug)]
pub struct FdCache {
    shards: Box<[Shard]>,
    /// Read by every lookup, written only on a back-off.
    capacity: AtomicUsize,
    /// Read by every lookup, written once a scrape.
    generation: AtomicU64,
    /// Read by every lookup, written only on a back-off.
    pub backoffs: AtomicU64,
    /// Written on every insert and removal: a line of its own.
    len: Padded<AtomicUsize>,
}

impl FdCache {
    /// A cache of at most `capacity` descriptors (0 turns it off).
    pub fn new(capacity: usize) -> FdCache {
        FdCache {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            capacity: AtomicUsize::new(capacity),
            generation: AtomicU64::new(0),
            backoffs: AtomicU64::new(0),
            len: Padded(AtomicUsize::new(0)),
        }
    }

    /// Reads served by a kept descriptor, over the cache's life.
    pub fn hits(&self) -> u64 {
        self.shards.iter().map(|s| s.0.lock().hits).sum()
    }

    /// Half of the descriptors left under the soft `RLIMIT_NOFILE`
    /// (`soft`, `None` for unlimited; see [`crate::kernel::raise_nofile_limit`])
    /// after the `in_use` ones, less headroom for sockets, inotify, PSI
    /// trigger fds, OOM watchers and namespace scans, at most [`AUTO_MAX`].
    pub fn auto_capacity(soft: Option<u64>, in_use: usize) -> usize {
        let soft = soft.map_or(1 << 20, |s| usize::try_from(s).unwrap_or(usize::MAX));
        (soft.saturating_sub(in_use) / 2)
            .saturating_sub(512)
            .min(AUTO_MAX)
    }

    pub fn len(&self) -> usize {
        self.len.0.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Out of descriptors (EMFILE/ENFILE): close half the cache and halve
    /// its bound, so sockets, PSI triggers and plain reads get fds again.
    fn back_off(&self) {
        let len = self.len();
        self.capacity.store(len / 2, Ordering::Relaxed);
        let mut closed = 0;
        for s in self.shards.iter() {
            if closed > len / 2 {
                break;
            }
            let mut m = s.0.lock();
            closed += m.map.len();
            m.map.clear();
        }
        self.len
            .0
            .fetch_sub(closed.min(self.len()), Ordering::Relaxed);
        self.backoffs.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            closed,
            capacity = len / 2,
            "out of file descriptors: fd cache shrunk (raise RLIMIT_NOFILE or lower metrics.fd_cache)"
        );
    }

    /// The shard is chosen from bits the map itself does not use (it
    /// indexes by the low bits and tags by the top seven), so the keys of
    /// one shard still spread over its buckets.
    fn shard(&self, key: &[u8]) -> &Mutex<ShardMap> {
        &self.shards[((FastHash.hash_one(key) >> 40) as usize) % SHARDS].0
    }

    /// Starts a scrape: closes entries idle for a few scrapes.
    pub fn next_generation(&self) {
        let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        for s in self.shards.iter() {
            let m = &mut s.0.lock().map;
            let before = m.len();
            m.retain(|_, e| g.saturating_sub(e.used) <= IDLE_GENERATIONS);
            let dropped = before - m.len();
            if dropped > 0 {
                self.len.0.fetch_sub(dropped, Ordering::Relaxed);
            }
        }
    }

    /// Ends a scrape that read every tracked cgroup: closes the entries it
    /// did not read. Those belong to cgroups removed since the last scrape
    /// (or families turned off), and each pins a kernel file and its
    /// buffers of a cgroup that is gone; with pods coming and going they
    /// would otherwise pile up for [`IDLE_GENERATIONS`] scrapes. After a
    /// scrape cut by its deadline nothing is closed here: unread cgroups
    /// may well be alive.
    pub fn close_unread(&self) {
        let g = self.generation.load(Ordering::Relaxed);
        for s in self.shards.iter() {
            let m = &mut s.0.lock().map;
            let before = m.len();
            m.retain(|_, e| e.used == g);
            let dropped = before - m.len();
            if dropped > 0 {
                self.len.0.fetch_sub(dropped, Ordering::Relaxed);
            }
        }
    }

    /// Reads the whole file at `path` into `buf` (cleared first).
    pub fn read(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
        self.read_with(path, buf, || File::open(path))
    }

    /// [`FdCache::read`], opening a file that is not cached with `open`
    /// (which must open `path`; the reader opens it relative to a kept
    /// directory descriptor, a one-component lookup). `open` is called
    /// again after a back-off on `EMFILE`.
    pub fn read_with(
        &self,
        path: &Path,
        buf: &mut Vec<u8>,
        mut open: impl FnMut() -> io::Result<File>,
    ) -> io::Result<()> {
        buf.clear();
        if self.capacity() == 0 {
            let mut f = open()?;
            return f.read_to_end(buf).map(|_| ());
        }
        let key = path.as_os_str().as_bytes();
        let g = self.generation.load(Ordering::Relaxed);
        let shard = self.shard(key);
        {
            let mut m = shard.lock();
            if let Some(e) = m.map.get_mut(key) {
                e.used = g;
                match read_from_start(&e.file, buf) {
                    Ok(()) => {
                        m.hits += 1;
                        return Ok(());
                    }
                    Err(_) => {
                        // ENODEV: the cgroup was removed (maybe recreated
                        // under the same name): forget the fd, open afresh.
                        m.map.remove(key);
                        self.len.0.fetch_sub(1, Ordering::Relaxed);
                        buf.clear();
                    }
                }
            }
        }
        let file = match open() {
            Ok(f) => f,
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
                    && !self.is_empty() =>
            {
                self.back_off();
                open()?
            }
            Err(e) => return Err(e),
        };
        read_from_start(&file, buf)?;
        if self.len() < self.capacity() {
            let mut m = shard.lock();
            if m.map.insert(key.into(), Entry { file, used: g }).is_none() {
                self.len.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

thread_local! {
    /// Where `pread` writes: initialised once and kept, so a read does not
    /// zero a buffer first (zeroing the 8 KiB read buffer before each
    /// `pread`, which needs an initialised slice, was ~3 % of a scrape's
    /// CPU in a profile); the text is then copied into the caller's buffer.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 8192]);
}

/// Reads the whole file with `pread` from offset 0 into `buf` (kernfs
/// regenerates the text when a read starts at offset 0).
///
/// A short read that ends a line is the end of the file: every cgroup
/// file the reader reads is a single-record kernfs seq_file (kernfs
/// serves files without their own `seq_start` as one record, like
/// `single_open`), and one `read` of such a file returns the whole record
/// unless the caller's buffer is smaller; the kernel grows its own buffer
/// until the record fits. So the `pread` that would return 0 is skipped:
/// it was half of the `pread` calls of a scrape. Any other short read
/// (a text not ending in a newline) is not trusted as the end, and the
/// file is read on until EOF. Not for multi-record seq_files
/// (`cgroup.procs`, `tasks`), whose reads stop at page boundaries between
/// records; the reader reads none.
fn read_from_start(f: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let mut off = 0u64;
        loop {
            // rustix's `pread` is the system call itself; glibc's wraps
            // it in thread-cancellation bookkeeping (two more calls a
            // read, ~1 % of a scrape's CPU in a profile).
            let n = rustix::io::pread(f, &mut scratch[..], off)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&scratch[..n]);
            off += n as u64;
            if n < scratch.len() && scratch[n - 1] == b'\n' {
                return Ok(());
            }
            if n == scratch.len() {
                // A file larger than the scratch: grow it for next time.
                let len = scratch.len() * 2;
                scratch.resize(len, 0);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_capacity_is_half_of_what_is_left_less_headroom() {
        assert_eq!(FdCache::auto_capacity(Some(6000), 100), 2950 - 512);
        assert_eq!(FdCache::auto_capacity(Some(4096), 60), 2018 - 512);
        assert_eq!(FdCache::auto_capacity(Some(1024), 30), 0, "no room: off");
        assert_eq!(FdCache::auto_capacity(Some(1 << 20), 10), AUTO_MAX);
        assert_eq!(FdCache::auto_capacity(None, 10), AUTO_MAX);
    }

    #[test]
    fn cached_reads_see_new_contents_and_bounded_capacity_holds() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = FdCache::new(2);
        let mut buf = Vec::new();
        for i in 0..4 {
            std::fs::write(d.path().join(format!("f{i}")), format!("v{i}\n")).expect("write");
        }
        for i in 0..4 {
            c.read(&d.path().join(format!("f{i}")), &mut buf)
                .expect("read");
            assert_eq!(buf, format!("v{i}\n").as_bytes());
        }
        assert_eq!(c.len(), 2, "capacity bounds the cache");
        // A cached fd re-reads from offset 0 and sees the new contents.
        std::fs::write(d.path().join("f0"), "changed, and longer than before\n").expect("write");
        c.read(&d.path().join("f0"), &mut buf).expect("read");
        assert_eq!(buf, b"changed, and longer than before\n");
        assert!(c.hits() >= 1);
        // Idle entries are closed after a few generations.
        for _ in 0..=IDLE_GENERATIONS + 1 {
            c.next_generation();
        }
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_complete_scrape_closes_what_it_did_not_read() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = FdCache::new(10);
        let mut buf = Vec::new();
        for i in 0..3 {
            std::fs::write(d.path().join(format!("f{i}")), "x").expect("write");
        }
        c.next_generation();
        for i in 0..3 {
            c.read(&d.path().join(format!("f{i}")), &mut buf)
                .expect("read");
        }
        assert_eq!(c.len(), 3);
        // Next scrape: f2's cgroup is gone, only f0 and f1 are read.
        c.next_generation();
        for i in 0..2 {
            c.read(&d.path().join(format!("f{i}")), &mut buf)
                .expect("read");
        }
        c.close_unread();
        assert_eq!(c.len(), 2);
        assert!(c.hits() >= 2);
    }

    #[test]
    fn large_files_are_read_whole() {
        let d = tempfile::tempdir().expect("tempdir");
        let big = "x".repeat(100_000);
        std::fs::write(d.path().join("big"), &big).expect("write");
        let c = FdCache::new(4);
        let mut buf = Vec::new();
        c.read(&d.path().join("big"), &mut buf).expect("read");
        assert_eq!(buf.len(), 100_000);
        c.read(&d.path().join("big"), &mut buf).expect("read again");
        assert_eq!(buf.len(), 100_000);
    }

    #[test]
    fn read_with_opens_only_on_a_miss_and_not_at_all_cached_after() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("f");
        std::fs::write(&p, "v1\n").expect("write");
        let c = FdCache::new(4);
        let mut buf = Vec::new();
        let mut opens = 0;
        for _ in 0..3 {
            c.read_with(&p, &mut buf, || {
                opens += 1;
                File::open(&p)
            })
            .expect("read");
            assert_eq!(buf, b"v1\n");
        }
        assert_eq!(opens, 1, "cached after the first read");
        // With the cache off, every read opens.
        let off = FdCache::new(0);
        for _ in 0..3 {
            off.read_with(&p, &mut buf, || {
                opens += 1;
                File::open(&p)
            })
            .expect("read");
        }
        assert_eq!(opens, 4);
        // An opener's error comes back as is.
        let err = c
            .read_with(&d.path().join("nope"), &mut buf, || {
                File::open(d.path().join("nope"))
            })
            .expect_err("absent");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn fast_hash_spreads_generated_paths_over_buckets_and_shards() {
        // Paths as the reader builds them: only a few bytes differ.
        let mut buckets = vec![0u32; 1024];
        let mut shards = [0u32; SHARDS];
        let c = FdCache::new(0);
        let mut n = 0;
        for s in 0..100 {
            for j in 0..10 {
                for f in ["memory.stat", "memory.usage_in_bytes", "cpu.stat"] {
                    let p = format!("/sys/fs/cgroup/memory/cgpe-bench/s{s}/c{j}/{f}");
                    let h = FastHash.hash_one(p.as_bytes());
                    buckets[(h % 1024) as usize] += 1;
                    let shard = c.shard(p.as_bytes()) as *const Mutex<ShardMap>;
                    let i = c.shards.iter().position(|x| std::ptr::eq(&x.0, shard));
                    shards[i.expect("a shard")] += 1;
                    n += 1;
                }
            }
        }
        // 3,000 keys: ~2.9 a bucket and ~94 a shard if uniform.
        let worst = buckets.iter().copied().max().unwrap_or(0);
        assert!(worst <= 14, "worst bucket {worst} of {n} keys");
        let (lo, hi) = (
            shards.iter().copied().min().unwrap_or(0),
            shards.iter().copied().max().unwrap_or(0),
        );
        assert!(lo >= 50 && hi <= 150, "shards {lo}..{hi}");
    }
}
