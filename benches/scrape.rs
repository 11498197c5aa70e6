//! Scrape cost on real cgroups: `cargo bench --bench scrape` (root).
//!
//! Makes N leaf cgroups (`cgpe-bench/s<i>/c<j>`, ten leaves a slice) in
//! every hierarchy this machine mounts, runs the exporter, and reports per N:
//! the median scrape time over HTTP, the same files read by a plain
//! single-threaded open/read/close loop (the naive floor), their ratio in
//! wall time and in CPU time, the exporter's CPU seconds per scrape, its
//! peak RSS, and the memory charged to its own cgroup (the exporter runs in
//! a memory cgroup of its own, so this counts RSS plus the kernel memory of
//! cached descriptors and inotify watches); then node_exporter (pressure
//! collector only) as the reference for one scrape's fixed cost.
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

/// CPU seconds of the calling thread (the loop runs on it alone), from
/// `/proc/self/task/<tid>/schedstat` (nanoseconds, finer than `stat`'s
/// clock ticks).
fn thread_cpu_seconds() -> f64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|ns| ns / 1e9)
        .unwrap_or(0.0)
}

/// The memory cgroup the exporter runs in, of its own: `memory.current`
/// (v2) or `memory.usage_in_bytes` (v1) is what the node pays for it,
/// kernel memory included.
struct OwnCgroup {
    dir: PathBuf,
}

impl OwnCgroup {
    fn new() -> OwnCgroup {
        let v1 = Path::new(BASE).join("memory");
        let parent = if v1.join("memory.usage_in_bytes").exists() {
            v1
        } else {
            PathBuf::from(BASE)
        };
        let dir = parent.join("cgpe-bench-exporter");
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
