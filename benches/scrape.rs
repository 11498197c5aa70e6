//! Scrape cost on real cgroups: `cargo bench --bench scrape` (root).
//!
//! Makes N leaf cgroups (`cgpe-bench/s<i>/c<j>`, ten leaves a slice) in
//! every hierarchy this machine mounts, runs the exporter, and reports per N:
//! the median scrape time over HTTP, the same files read by a plain
//! single-threaded open/read/close loop (the naive floor), their ratio in
//! wall time and in CPU time, the exporter's CPU seconds per scrape, its
//! peak RSS, and the memory charged to its own cgroup (the exporter runs in
//! a memory cgroup of its own, so this counts RSS plus the kernel memory of
//! cached descriptors and inotify watches); the floor (what any reader pays
//! for the files that must be read every scrape, with no work of its own,
//! and how many kept descriptors would bring each ratio to 0.3); then
//! node_exporter (pressure collector only) as the reference for one
//! scrape's fixed cost.
//!
//! The plain loop runs once after each timed scrape, so each ratio compares
//! the two under the same conditions (kernfs read speed on the development
//! VM drifts by ±10 % over tens of seconds).
//!
//! The plain loop's file list (`FILES`) is frozen: it is the set a scrape
//! read when the yardstick was set (about 28 files per hybrid cgroup), so a
//! scrape that reads fewer files shows as a gain instead of moving the
//! yardstick.
//!
//! Environment: `CGPE_BENCH_N` (default `1000,2000,5000,10000`),
//! `CGPE_BENCH_REPS` (default 15), `CGPE_BENCH_ATTACH` (a command run
//! against the default-cache exporter during its timed scrapes, `{pid}`
//! replaced by its pid, stopped with SIGINT after them: e.g.
//! `perf record -g -o /tmp/scrape.data -p {pid}` or
//! `perf stat -e instructions:u,instructions:k -p {pid}`),
//! `CGPE_BENCH_BIG=0` (skip the run with `metrics.fd_cache: 18000`),
//! `CGPE_BENCH_VERBOSE=1` (the exporter's anonymous and file RSS after
//! the scrapes), `CGPE_BENCH_EXE` (another build of the exporter, for
//! A/B runs back to back), `CGPE_BENCH_FD_CACHE` (`metrics.fd_cache` of
//! the default run instead of the default).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = "/sys/fs/cgroup";
const TREE: &str = "cgpe-bench";

/// The files a scrape read when this yardstick was set (those that exist
/// are read by the loop). Frozen on purpose: do not follow the reader.
const FILES: &[&str] = &[
    "cgroup.controllers",
    "cgroup.events",
    "cpu.stat",
    "cpu.max",
    "cpu.weight",
    "cpuset.cpus.effective",
    "memory.current",
    "memory.peak",
    "memory.max",
    "memory.high",
    "memory.low",
    "memory.min",
    "memory.swap.current",
    "memory.swap.max",
    "memory.stat",
    "memory.events",
    "io.stat",
    "io.weight",
    "io.max",
    "pids.current",
    "pids.max",
    "cpu.pressure",
    "memory.pressure",
    "io.pressure",
    "cpuacct.usage",
    "cpuacct.usage_user",
    "cpuacct.usage_sys",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "cpuset.effective_cpus",
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.memsw.usage_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.failcnt",
    "memory.oom_control",
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_serviced_recursive",
    "blkio.weight",
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
    "freezer.state",
];

/// The files of `FILES` whose values change only when something writes
/// them (limits and settings: the issue lets a scrape keep those until an
/// `IN_MODIFY` says otherwise) and `cgroup.controllers` (changed only by a
/// write to the parent's `cgroup.subtree_control`). Every other file holds
/// a value the kernel derives itself (counters, pressure, `*.events`,
/// `cpuset.cpus.effective`, watermarks) and must be read every scrape: those
/// make the floor below, what any reader that follows that rule pays.
/// Written out here rather than taken from the reader's `SETTINGS`: the
/// floor states the rule, so a reader that kept more would show below it.
const WRITTEN_ONLY: &[&str] = &[
    "cgroup.controllers",
    "cpu.max",
    "cpu.weight",
    "memory.max",
    "memory.high",
    "memory.low",
    "memory.min",
    "memory.swap.max",
    "io.weight",
    "io.max",
    "pids.max",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "blkio.weight",
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
];

/// Set in the child that [`kept_fd_bytes`] starts: the file listing the
/// paths it is to hold open.
const HOLD_ENV: &str = "CGPE_BENCH_HOLD";

/// On pure v2 every controller is handed down to the leaves, as on a
/// Kubernetes node (the kubelet's pods and containers have them all), so a
/// leaf has its memory, cpu, io and pids files to read.
fn make_tree(n: usize) {
    for r in common::roots() {
        let pure_v2 = r == Path::new(BASE);
        let top = r.join(TREE);
        let _ = fs::create_dir(&top);
        let ctl = fs::read_to_string(r.join("cgroup.controllers")).unwrap_or_default();
        let plus: Vec<String> = ctl.split_whitespace().map(|c| format!("+{c}")).collect();
        let delegate = |d: &Path| {
            if pure_v2 {
                let _ = fs::write(d.join("cgroup.subtree_control"), plus.join(" "));
            }
        };
        delegate(&r);
        delegate(&top);
        for i in 0..n.div_ceil(10) {
            let s = top.join(format!("s{i}"));
            let _ = fs::create_dir(&s);
            delegate(&s);
            for j in 0..10.min(n - i * 10) {
                let _ = fs::create_dir(s.join(format!("c{j}")));
            }
        }
    }
}

fn destroy_tree() {
    for r in common::roots() {
        let top = r.join(TREE);
        if !top.exists() {
            continue;
        }
        common::kill_and_remove(&top);
    }
}

/// Every existing stat file of every cgroup on the machine that a scrape
/// reads. On hybrid hosts the exporter skips `cgroup.controllers` (the
/// cgroup2 root has none) and `cpuacct.*` (unified/cpu.stat gives usage),
/// so the loop skips them too: same files on both sides.
fn all_files() -> Vec<PathBuf> {
    let hybrid = !Path::new(BASE).join("cgroup.controllers").exists()
        && Path::new(BASE).join("unified").exists();
    let skip = |f: &str| hybrid && (f == "cgroup.controllers" || f.starts_with("cpuacct."));
    let mut files = Vec::new();
    for r in common::roots() {
        let mut dirs = Vec::new();
        common::collect_dirs(&r, &mut dirs);
        for d in dirs {
            for f in FILES.iter().filter(|f| !skip(f)) {
                let p = d.join(f);
                if p.exists() {
                    files.push(p);
                }
            }
        }
    }
    files
}

/// One pass of the plain loop: its wall time and the CPU time this process
/// spent in it (user + system).
fn plain_loop(files: &[PathBuf]) -> (Duration, f64) {
    let mut buf = Vec::with_capacity(65536);
    let cpu0 = thread_cpu_seconds();
    let t = Instant::now();
    for p in files {
        buf.clear();
        if let Ok(mut f) = fs::File::open(p) {
            let _ = f.read_to_end(&mut buf);
        }
    }
    (t.elapsed(), thread_cpu_seconds() - cpu0)
}

/// The files of `files` a scrape must read every time (see
/// [`WRITTEN_ONLY`]).
fn must_read(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !WRITTEN_ONLY.contains(&n))
        })
        .cloned()
        .collect()
}

/// The must-read files grouped by directory, each directory held open
/// (`O_PATH`) across passes, as the exporter keeps its directories: the
/// cheapest way known to open a kernfs file is a one-component `openat`
/// relative to its directory.
struct ByDir {
    /// A directory, held open if there was room, and its files' names.
    dirs: Vec<(Option<rustix::fd::OwnedFd>, PathBuf, Vec<String>)>,
}

/// Directories the floor holds open: all of a hybrid tree of 2,000 cgroups
/// (17,600), more than the exporter can keep besides its other descriptors
/// (a floor may be optimistic); past that, files are opened by their full
/// path (the exporter, past its own bound, opens relative to the
/// hierarchy's root: a few components fewer). This process's descriptor limit
/// is 20,000 here; the `pread` floor opens its 4,000 after these are
/// closed.
const FLOOR_KEPT_DIRS: usize = 18_000;

impl ByDir {
    fn new(files: &[PathBuf]) -> ByDir {
        use rustix::fs::{Mode, OFlags};
        let mut dirs: Vec<(Option<rustix::fd::OwnedFd>, PathBuf, Vec<String>)> = Vec::new();
        for p in files {
            let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str()))
            else {
                continue;
            };
            if dirs.last().map(|d| d.1.as_path()) != Some(dir) {
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let fd = (dirs.len() < FLOOR_KEPT_DIRS)
                    .then(|| rustix::fs::open(dir, flags, Mode::empty()).ok())
                    .flatten();
                dirs.push((fd, dir.to_path_buf(), Vec::new()));
            }
            if let Some(d) = dirs.last_mut() {
                d.2.push(name.to_string());
            }
        }
        ByDir { dirs }
    }

    /// One pass, directories split round-robin over `threads` threads,
    /// each file opened relative to its directory, read with one `read`
    /// (a kernfs file's whole text comes in one read into a buffer larger
    /// than it) and closed: the wall time, and the CPU time of all the
    /// threads together.
    fn pass(&self, threads: usize) -> (Duration, f64) {
        use rustix::fs::{Mode, OFlags};
        let t = Instant::now();
        let cpu: f64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    s.spawn(move || {
                        let mut buf = vec![0u8; 65536];
                        let cpu0 = thread_cpu_seconds();
                        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
                        for (fd, dir, names) in self.dirs.iter().skip(k).step_by(threads) {
                            for name in names {
                                let file = match fd {
                                    Some(fd) => rustix::fs::openat(fd, name, flags, Mode::empty()),
                                    None => rustix::fs::open(dir.join(name), flags, Mode::empty()),
                                };
                                if let Ok(file) = file {
                                    let _ = rustix::io::read(&file, &mut buf[..]);
                                }
                            }
                        }
                        thread_cpu_seconds() - cpu0
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).sum()
        });
        (t.elapsed(), cpu)
    }
}

/// CPU seconds per file of one `pread` at offset 0 on a kept descriptor
/// (one thread), over up to 4,000 of `files` (well inside this process's
/// descriptor limit), median of `passes`.
fn pread_cost(files: &[PathBuf], passes: usize) -> f64 {
    use std::os::unix::fs::FileExt;
    let kept: Vec<fs::File> = files
        .iter()
        .step_by((files.len() / 4000).max(1))
        .filter_map(|p| fs::File::open(p).ok())
        .collect();
    let mut buf = vec![0u8; 65536];
    let mut per_file: Vec<f64> = (0..passes.max(1))
        .map(|_| {
            let cpu0 = thread_cpu_seconds();
            for f in &kept {
                let _ = f.read_at(&mut buf, 0);
            }
            (thread_cpu_seconds() - cpu0) / kept.len().max(1) as f64
        })
        .collect();
    per_file.sort_by(f64::total_cmp);
    per_file[per_file.len() / 2]
}

/// The floor at one N: what reading only the files a scrape must read
/// costs, against the plain loop over the frozen list, passes interleaved.
struct Floor {
    files: usize,
    /// One thread, open/read/close: CPU over the plain loop's CPU.
    cpu_ratio: f64,
    /// The same files on the time floor's threads: their CPU together
    /// over the plain loop's (the kernel's locks and cache lines shared
    /// by two threads cost CPU that one thread does not pay).
    cpu_ratio_threads: f64,
    /// As many threads as the exporter uses: wall time over the plain
    /// loop's.
    time_ratio: f64,
    threads: usize,
    /// CPU per file, µs: open/read/close (one thread), and `pread` on a
    /// kept descriptor.
    open_us: f64,
    pread_us: f64,
    /// Kept descriptors a reader would need for a CPU ratio of 0.3, and
    /// for a time ratio of 0.3 (estimated: `pread` assumed to scale over
    /// the threads as open/read/close does); `None`: not even with every
    /// file kept.
    fds_for_cpu: Option<f64>,
    fds_for_time: Option<f64>,
    /// Kernel memory a kept descriptor pins ([`kept_fd_bytes`]).
    fd_bytes: Option<KeptFdBytes>,
}

impl Floor {
    /// The cells of its row in the floor table, after N.
    fn row(&self) -> String {
        format!(
            "{} | {:.2} | {:.2} | {:.2} ({} threads) | {:.2} | {:.2} | {} | {} | {}",
            self.files,
            self.cpu_ratio,
            self.cpu_ratio_threads,
            self.time_ratio,
            self.threads,
            self.open_us,
            self.pread_us,
            kept_fds(self.fds_for_cpu, self.fd_bytes.map(|b| b.read)),
            kept_fds(self.fds_for_time, self.fd_bytes.map(|b| b.read)),
            self.fd_bytes.map_or("n/a".to_string(), |b| format!(
                "{:.0} ({:.0} if only opened)",
                b.read, b.opened
            )),
        )
    }
}

/// Kernel bytes per descriptor, once opened and once also read.
#[derive(Clone, Copy)]
struct KeptFdBytes {
    opened: f64,
    read: f64,
}

/// Kept descriptors, and the kernel memory they pin at `bytes` each.
fn kept_fds(k: Option<f64>, bytes: Option<f64>) -> String {
    match (k, bytes) {
        (Some(k), Some(b)) => format!("{k:.0} ({:.0} MiB)", k * b / 1048576.0),
        (Some(k), None) => format!("{k:.0}"),
        (None, _) => "none suffice".to_string(),
    }
}

/// Kernel memory one kept kernfs descriptor pins, measured: a child (this
/// bench, run again with [`HOLD_ENV`]) in a memory cgroup of its own opens
/// up to 10,000 of `files`, then reads each once, and the cgroup's charge
/// (`memory.current`, or v1 `memory.usage_in_bytes`, kernel memory
/// included) is read before, after the opens and after the reads. Opened:
/// the `struct file`, `kernfs_open_file` and `seq_file` of each (~335
/// bytes on Linux 6.18); read: plus the seq_file's page-sized buffer,
/// which the kernel allocates at the first read and frees only at close
/// (~4,450 bytes). `None` if the child could not be run.
fn kept_fd_bytes(files: &[PathBuf]) -> Option<KeptFdBytes> {
    use std::io::{BufRead, BufReader, Write};
    let list = std::env::temp_dir().join("cgpe-bench-hold.list");
    let sample: Vec<String> = files
        .iter()
        .step_by((files.len() / 10_000).max(1))
        .map(|p| p.display().to_string())
        .collect();
    fs::write(&list, sample.join("\n")).ok()?;
    let own = OwnCgroup::named("cgpe-bench-hold");
    let exe = std::env::current_exe().ok()?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{} '{}'", own.enter(), exe.display()))
        .env(HOLD_ENV, &list)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    let mut stdin = child.stdin.take()?;
    let measured = (|| {
        (lines.next()?.ok()? == "ready").then_some(())?;
        let before = own.charged_bytes();
        writeln!(stdin).ok()?;
        let opened: f64 = lines.next()?.ok()?.strip_prefix("opened ")?.parse().ok()?;
        let after_open = own.charged_bytes();
        writeln!(stdin).ok()?;
        (lines.next()?.ok()? == "read").then_some(())?;
        let after_read = own.charged_bytes();
        (opened > 0.0).then(|| KeptFdBytes {
            opened: after_open.saturating_sub(before) as f64 / opened,
            read: after_read.saturating_sub(before) as f64 / opened,
        })
    })();
    drop(stdin);
    let _ = child.wait();
    let _ = fs::remove_file(&list);
    measured
}

/// The child of [`kept_fd_bytes`]: says it is ready, waits for a line,
/// opens every file listed and says how many, waits for a line, reads
/// each once and says so, and keeps them open until its stdin closes.
fn hold(list: &Path) {
    use std::io::{BufRead, Write};
    let paths = fs::read_to_string(list).unwrap_or_default();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    let _ = stdin.read_line(&mut line);
    let mut buf = Vec::with_capacity(65536);
    let held: Vec<fs::File> = paths
        .lines()
        .filter_map(|p| fs::File::open(p).ok())
        .collect();
    let _ = writeln!(out, "opened {}", held.len());
    let _ = out.flush();
    let _ = stdin.read_line(&mut line);
    for mut f in &held {
        buf.clear();
        let _ = f.read_to_end(&mut buf);
    }
    let _ = writeln!(out, "read");
    let _ = out.flush();
    let _ = stdin.read_line(&mut line);
}

fn floor(files: &[PathBuf], passes: usize) -> Floor {
    let must = must_read(files);
    // The exporter's own rule for its reader threads (`CgroupCollector::new`).
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let by_dir = ByDir::new(&must);
    let (mut plain, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..passes {
        plain.push(plain_loop(files));
        one.push(by_dir.pass(1));
        many.push(by_dir.pass(threads));
    }
    drop(by_dir);
    // The pass of median wall time, with its own CPU time: wall and CPU
    // of one pass belong together (a pass slowed by the machine is slow
    // in both).
    let mid = |v: &mut Vec<(Duration, f64)>| {
        v.sort_by_key(|p| p.0);
        v[v.len() / 2]
    };
    let (plain, one, many) = (mid(&mut plain), mid(&mut one), mid(&mut many));
    let m = must.len().max(1) as f64;
    let open = one.1 / m;
    let pread = pread_cost(&must, 2 * passes + 1);
    let fd_bytes = kept_fd_bytes(&must);
    // CPU: (m - k) * open + k * pread = 0.3 * plain.
    let need = |total: f64, goal: f64, per_open: f64, per_pread: f64| {
        let k = (total - goal) / (per_open - per_pread).max(1e-12);
        let all = m * per_pread;
        if all > goal {
            None
        } else {
            Some(k.max(0.0))
        }
    };
    let speedup = one.0.as_secs_f64() / many.0.as_secs_f64().max(1e-9);
    Floor {
        files: must.len(),
        cpu_ratio: one.1 / plain.1.max(1e-9),
        cpu_ratio_threads: many.1 / plain.1.max(1e-9),
        time_ratio: many.0.as_secs_f64() / plain.0.as_secs_f64().max(1e-9),
        threads,
        open_us: open * 1e6,
        pread_us: pread * 1e6,
        fds_for_cpu: need(one.1, 0.3 * plain.1, open, pread),
        fds_for_time: need(
            many.0.as_secs_f64(),
            0.3 * plain.0.as_secs_f64(),
            many.0.as_secs_f64() / m,
            pread / speedup,
        ),
        fd_bytes,
    }
}

/// CPU seconds of the calling thread (the loops run on it alone), from
/// `CLOCK_THREAD_CPUTIME_ID`: exact, where `/proc/thread-self/schedstat`
/// lags a running thread by up to a scheduler tick (4 ms here, more than
/// a whole pass of the `pread` floor).
fn thread_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// The memory cgroup the exporter runs in, of its own: `memory.current`
/// (v2) or `memory.usage_in_bytes` (v1) is what the node pays for it,
/// kernel memory included.
struct OwnCgroup {
    dir: PathBuf,
}

impl OwnCgroup {
    fn new() -> OwnCgroup {
        OwnCgroup::named("cgpe-bench-exporter")
    }

    fn named(name: &str) -> OwnCgroup {
        let v1 = Path::new(BASE).join("memory");
        let parent = if v1.join("memory.usage_in_bytes").exists() {
            v1
        } else {
            PathBuf::from(BASE)
        };
        let dir = parent.join(name);
        if dir.exists() {
            common::kill_and_remove(&dir);
        }
        fs::create_dir(&dir).expect("mkdir the exporter's own cgroup");
        OwnCgroup { dir }
    }

    /// A shell prefix that moves the shell into the cgroup before it execs
    /// the exporter, so every allocation is charged there from the start.
    fn enter(&self) -> String {
        format!("echo $$ > '{}/cgroup.procs' && exec", self.dir.display())
    }

    fn charged_bytes(&self) -> u64 {
        ["memory.current", "memory.usage_in_bytes"]
            .iter()
            .find_map(|f| fs::read_to_string(self.dir.join(f)).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        common::kill_and_remove(&self.dir);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The body of `GET path` (the exporter streams it chunked).
fn get(port: u16, path: &str) -> Option<String> {
    common::http_get(port, path).ok().map(|(_, body)| body)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

struct Run {
    median: Duration,
    cpu_per_scrape: f64,
    peak_rss_kb: u64,
    cgroups_in_exposition: usize,
    /// Memory charged to the exporter's own cgroup after the scrapes.
    charged_bytes: u64,
    /// Size of the last response.
    body_bytes: usize,
    /// The plain loop's passes, one after each timed scrape (when asked).
    plain: Vec<(Duration, f64)>,
}

#[allow(clippy::too_many_arguments, reason = "a bench helper, called thrice")]
fn bench_server(
    mut child: Child,
    port: u16,
    path: &str,
    reps: usize,
    count_cgroups: bool,
    own: Option<&OwnCgroup>,
    attach: Option<&str>,
    plain_files: Option<&[PathBuf]>,
) -> Run {
    // The exporter is ready once its first discovery is done; before that
    // /metrics answers with what is known so far.
    common::wait_ok(
        port,
        if count_cgroups { "/readyz" } else { path },
        Duration::from_secs(30),
    );
    for _ in 0..3 {
        get(port, path);
    }
    let pid = child.id();
    let attached = attach.map(|cmd| {
        let c = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", cmd.replace("{pid}", &pid.to_string())))
            .spawn()
            .expect("start the attached command");
        // perf needs a moment to attach before the first timed scrape.
        std::thread::sleep(Duration::from_millis(500));
        c
    });
    let mut cpu = 0.0;
    let mut times = Vec::new();
    let mut plain = Vec::new();
    let mut last = String::new();
    for _ in 0..reps {
        let cpu0 = cpu_seconds(pid);
        let t = Instant::now();
        last = get(port, path).unwrap_or_default();
        times.push(t.elapsed());
        cpu += cpu_seconds(pid) - cpu0;
        // The yardstick right after each scrape, so both sides of a ratio
        // see the same machine: on this VM the speed of kernfs reads
        // drifts by ±10 % over tens of seconds.
        if let Some(files) = plain_files {
            plain.push(plain_loop(files));
        }
    }
    let cpu = cpu / reps as f64;
    if let Some(mut a) = attached {
        // SIGINT, so perf writes its data and summary.
        let _ = Command::new("kill")
            .args(["-INT", &a.id().to_string()])
            .status();
        let _ = a.wait();
    }
    let peak = common::proc_status(pid, "VmHWM:");
    if std::env::var_os("CGPE_BENCH_VERBOSE").is_some() {
        eprintln!(
            "after the scrapes: RssAnon {} KiB, RssFile {} KiB, threads {}",
            common::proc_status(pid, "RssAnon:"),
            common::proc_status(pid, "RssFile:"),
            common::proc_status(pid, "Threads:")
        );
    }
    let charged_bytes = own.map(OwnCgroup::charged_bytes).unwrap_or(0);
    let cgroups = if count_cgroups {
        last.lines()
            .filter(|l| {
                l.starts_with("cgroup_cpu_usage_seconds_total{")
                    && l.contains(&format!("cgroup=\"/{TREE}/"))
            })
            .count()
    } else {
        0
    };
    let _ = child.kill();
    let _ = child.wait();
    Run {
        median: median(times),
        cpu_per_scrape: cpu,
        peak_rss_kb: peak,
        cgroups_in_exposition: cgroups,
        charged_bytes,
        body_bytes: last.len(),
        plain,
    }
}

fn main() {
    if let Some(list) = std::env::var_os(HOLD_ENV) {
        hold(Path::new(&list));
        return;
    }
    if fs::read_to_string("/proc/self/status")
        .map(|s| !s.lines().any(|l| l.starts_with("Uid:\t0")))
        .unwrap_or(true)
    {
        eprintln!("skipped: the scrape benchmark makes cgroups and needs root");
        return;
    }
    let ns: Vec<usize> = std::env::var("CGPE_BENCH_N")
        .unwrap_or_else(|_| "1000,2000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let reps: usize = std::env::var("CGPE_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let exe = std::env::var("CGPE_BENCH_EXE")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cgroup-psi-exporter").to_string());
    let cfg = std::env::temp_dir().join("cgpe-bench.yaml");
    let _ = fs::write(
        &cfg,
        match std::env::var("CGPE_BENCH_FD_CACHE") {
            Ok(n) => format!("namespaces: {{ enabled: false }}\nmetrics: {{ fd_cache: {n} }}\n"),
            Err(_) => "namespaces: { enabled: false }\n".to_string(),
        },
    );
    // The same with every file cached, as far as RLIMIT_NOFILE allows: the
    // cost of that is kernel memory (see docs/performance.md).
    let big = std::env::temp_dir().join("cgpe-bench-bigcache.yaml");
    let _ = fs::write(
        &big,
        "namespaces: { enabled: false }\nmetrics: { fd_cache: 18000 }\n",
    );
    destroy_tree();
    let mut rows = Vec::new();
    let mut big_rows: Vec<(usize, f64, Duration)> = Vec::new();
    let mut floors: Vec<(usize, Floor)> = Vec::new();
    for &n in &ns {
        make_tree(n);
        let files = all_files();
        // A first pass warms the dentry cache as the exporter's warm-up
        // scrapes do; the timed passes interleave with the scrapes.
        let first = plain_loop(&files);
        let attach = std::env::var("CGPE_BENCH_ATTACH").ok();
        let start = |cfg: &Path, attach: Option<&str>, plain: Option<&[PathBuf]>| {
            let port = common::free_port();
            let own = OwnCgroup::new();
            let child = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{} '{exe}' --web.listen-address 127.0.0.1:{port} --log.level warn --config.file '{}'",
                    own.enter(),
                    cfg.display()
                ))
                .stdout(Stdio::null())
                .spawn()
                .expect("start exporter");
            bench_server(
                child,
                port,
                "/metrics",
                reps,
                true,
                Some(&own),
                attach,
                plain,
            )
        };
        if std::env::var("CGPE_BENCH_BIG").as_deref() != Ok("0") {
            let big_run = start(&big, None, Some(&files));
            let big_plain = median(big_run.plain.iter().map(|p| p.0).collect());
            let big_ratio = big_run.median.as_secs_f64() / big_plain.as_secs_f64();
            println!(
            "N={n}: with fd_cache 18000: scrape_median={:.1}ms ratio={big_ratio:.2} cpu_per_scrape={:.3}s peak_rss={:.1}MiB",
            big_run.median.as_secs_f64() * 1e3,
            big_run.cpu_per_scrape,
            big_run.peak_rss_kb as f64 / 1024.0
        );
            big_rows.push((n, big_ratio, big_run.median));
        }
        let run = start(&cfg, attach.as_deref(), Some(&files));
        let passes = if run.plain.is_empty() {
            vec![first]
        } else {
            run.plain.clone()
        };
        let plain_cpu = passes.iter().map(|p| p.1).sum::<f64>() / passes.len() as f64;
        let plain = median(passes.into_iter().map(|p| p.0).collect());
        let ratio = run.median.as_secs_f64() / plain.as_secs_f64();
        let cpu_ratio = run.cpu_per_scrape / plain_cpu.max(1e-9);
        println!(
            "N={n}: files={} scrape_median={:.1}ms plain_loop={:.1}ms ratio={:.2} cpu_per_scrape={:.3}s plain_loop_cpu={:.3}s cpu_ratio={:.2} peak_rss={:.1}MiB own_cgroup={:.1}MiB bench_cgroups_exported={}/{} response={:.1}MiB",
            files.len(),
            run.median.as_secs_f64() * 1e3,
            plain.as_secs_f64() * 1e3,
            ratio,
            run.cpu_per_scrape,
            plain_cpu,
            cpu_ratio,
            run.peak_rss_kb as f64 / 1024.0,
            run.charged_bytes as f64 / 1048576.0,
            run.cgroups_in_exposition,
            n,
            run.body_bytes as f64 / 1048576.0
        );
        let fl = floor(&files, 5);
        println!("N={n}: floor (must-read files | CPU ratio, one thread | on the threads | time ratio | open/read/close µs | pread µs | kept fds for CPU 0.3 | for time 0.3 | kernel bytes a kept fd): {}", fl.row());
        floors.push((n, fl));
        rows.push((n, files.len(), run, plain, ratio, plain_cpu, cpu_ratio));
        destroy_tree();
    }
    // Reference: node_exporter's pressure collector (host PSI only).
    let node = ["prometheus-node-exporter", "node_exporter"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok());
    let node_run = node.map(|bin| {
        let port = common::free_port();
        let child = Command::new(bin)
            .args([
                "--collector.disable-defaults",
                "--collector.pressure",
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter");
        bench_server(child, port, "/metrics", reps, false, None, None, None)
    });
    println!();
    println!("| N cgroups | files | scrape (median) | plain open/read/close loop | time ratio | CPU s / scrape | plain loop CPU s | CPU ratio | peak RSS | own cgroup's memory | exported |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (n, files, run, plain, ratio, plain_cpu, cpu_ratio) in &rows {
        println!(
            "| {n} | {files} | {:.1} ms | {:.1} ms | {:.2} | {:.3} | {plain_cpu:.3} | {cpu_ratio:.2} | {:.1} MiB | {:.1} MiB | {}/{n} |",
            run.median.as_secs_f64() * 1e3,
            plain.as_secs_f64() * 1e3,
            ratio,
            run.cpu_per_scrape,
            run.peak_rss_kb as f64 / 1024.0,
            run.charged_bytes as f64 / 1048576.0,
            run.cgroups_in_exposition,
        );
    }
    println!();
    println!("| N cgroups | must-read files | floor CPU ratio (1 thread, no kept fds) | on the time floor's threads | floor time ratio (no kept fds) | open/read/close µs | pread µs | kept fds for CPU 0.3 | kept fds for time 0.3 | kernel bytes a kept fd |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (n, fl) in &floors {
        println!("| {n} | {} |", fl.row());
    }
    // Growth: least-squares slope of peak RSS and of the own cgroup's
    // memory over N, per 1,000 cgroups.
    if rows.len() >= 2 {
        let slope = |ys: Vec<f64>| {
            let xs: Vec<f64> = rows.iter().map(|r| r.0 as f64 / 1000.0).collect();
            let n = xs.len() as f64;
            let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
            let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
            let den: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
            num / den.max(1e-9)
        };
        let rss = slope(
            rows.iter()
                .map(|r| r.2.peak_rss_kb as f64 / 1024.0)
                .collect(),
        );
        let own = slope(
            rows.iter()
                .map(|r| r.2.charged_bytes as f64 / 1048576.0)
                .collect(),
        );
        println!();
        println!(
            "growth per 1,000 cgroups: peak RSS +{rss:.2} MiB, own cgroup's memory +{own:.2} MiB"
        );
    }
    println!();
    println!("| N cgroups | scrape with `metrics.fd_cache: 18000` | ratio |");
    println!("| --- | --- | --- |");
    for (n, ratio, median) in &big_rows {
        println!(
            "| {n} | {:.1} ms | {ratio:.2} |",
            median.as_secs_f64() * 1e3
        );
    }
    match node_run {
        Some(r) => println!(
            "| node_exporter (pressure only) | 3 | {:.1} ms | | | {:.3} | {:.1} MiB |",
            r.median.as_secs_f64() * 1e3,
            r.cpu_per_scrape,
            r.peak_rss_kb as f64 / 1024.0
        ),
        None => println!("(node_exporter not installed: apt-get install prometheus-node-exporter)"),
    }
}
