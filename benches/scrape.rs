//! Scrape cost on real cgroups: `cargo bench --bench scrape` (root).
//!
//! Makes N leaf cgroups (`cgpe-bench/s<i>/c<j>`, ten leaves a slice) in
//! every hierarchy this machine mounts, runs the exporter, and reports per N:
//! the median scrape time over HTTP, the same files read by a plain
//! single-threaded open/read/close loop (the naive floor), their ratio, the
//! exporter's CPU seconds per scrape, and its peak RSS; then node_exporter
//! (pressure collector only) as the reference for one scrape's fixed cost.
//!
//! Environment: `CGPE_BENCH_N` (default `1000,2000,5000`), `CGPE_BENCH_REPS`
//! (default 15).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = "/sys/fs/cgroup";
const TREE: &str = "cgpe-bench";

/// The files the exporter reads (those that exist are read by the loop).
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

fn make_tree(n: usize) {
    for r in common::roots() {
        let pure_v2 = r == Path::new(BASE);
        let top = r.join(TREE);
        let _ = fs::create_dir(&top);
        if pure_v2 {
            let ctl = fs::read_to_string(r.join("cgroup.controllers")).unwrap_or_default();
            let plus: Vec<String> = ctl.split_whitespace().map(|c| format!("+{c}")).collect();
            let _ = fs::write(r.join("cgroup.subtree_control"), plus.join(" "));
            let _ = fs::write(top.join("cgroup.subtree_control"), plus.join(" "));
        }
        for i in 0..n.div_ceil(10) {
            let s = top.join(format!("s{i}"));
            let _ = fs::create_dir(&s);
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

fn plain_loop(files: &[PathBuf]) -> Duration {
    let mut buf = Vec::with_capacity(65536);
    let t = Instant::now();
    for p in files {
        buf.clear();
        if let Ok(mut f) = fs::File::open(p) {
            let _ = f.read_to_end(&mut buf);
        }
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
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
}

fn bench_server(mut child: Child, port: u16, path: &str, reps: usize, count_cgroups: bool) -> Run {
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
    let cpu0 = cpu_seconds(pid);
    let mut times = Vec::new();
    let mut last = String::new();
    for _ in 0..reps {
        let t = Instant::now();
        last = get(port, path).unwrap_or_default();
        times.push(t.elapsed());
    }
    let cpu = (cpu_seconds(pid) - cpu0) / reps as f64;
    let peak = common::proc_status(pid, "VmHWM:");
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
        .unwrap_or_else(|_| "1000,2000,5000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let reps: usize = std::env::var("CGPE_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let exe = env!("CARGO_BIN_EXE_cgroup-psi-exporter");
    let cfg = std::env::temp_dir().join("cgpe-bench.yaml");
    let _ = fs::write(&cfg, "namespaces: { enabled: false }\n");
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
        let plain = median((0..reps.min(7)).map(|_| plain_loop(&files)).collect());
        let start = |cfg: &Path| {
            let port = common::free_port();
            let child = Command::new(exe)
                .args([
                    "--web.listen-address",
                    &format!("127.0.0.1:{port}"),
                    "--log.level",
                    "warn",
                ])
                .arg("--config.file")
                .arg(cfg)
                .stdout(Stdio::null())
                .spawn()
                .expect("start exporter");
            bench_server(child, port, "/metrics", reps, true)
        };
        let big_run = start(&big);
        let big_ratio = big_run.median.as_secs_f64() / plain.as_secs_f64();
        println!(
            "N={n}: with fd_cache 18000: scrape_median={:.1}ms ratio={big_ratio:.2} cpu_per_scrape={:.3}s peak_rss={:.1}MiB",
            big_run.median.as_secs_f64() * 1e3,
            big_run.cpu_per_scrape,
            big_run.peak_rss_kb as f64 / 1024.0
        );
        big_rows.push((n, big_ratio, big_run.median));
        let run = start(&cfg);
        let ratio = run.median.as_secs_f64() / plain.as_secs_f64();
        println!(
            "N={n}: files={} scrape_median={:.1}ms plain_loop={:.1}ms ratio={:.2} cpu_per_scrape={:.3}s peak_rss={:.1}MiB bench_cgroups_exported={}/{}",
            files.len(),
            run.median.as_secs_f64() * 1e3,
            plain.as_secs_f64() * 1e3,
            ratio,
            run.cpu_per_scrape,
            run.peak_rss_kb as f64 / 1024.0,
            run.cgroups_in_exposition,
            n
        );
        rows.push((n, files.len(), run, plain, ratio));
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
        bench_server(child, port, "/metrics", reps, false)
    });
    println!();
    println!("| N cgroups | files | scrape (median) | plain open/read/close loop | ratio | CPU s / scrape | peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (n, files, run, plain, ratio) in &rows {
        println!(
            "| {n} | {files} | {:.1} ms | {:.1} ms | {:.2} | {:.3} | {:.1} MiB |",
            run.median.as_secs_f64() * 1e3,
            plain.as_secs_f64() * 1e3,
            ratio,
            run.cpu_per_scrape,
            run.peak_rss_kb as f64 / 1024.0
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
