//! The namespace collector against the real kernel: a process in its own
//! cgroup and its own net/uts/pid/ipc namespaces, and user namespaces with
//! and without a real-root mapping. Needs root, a writable cgroupfs,
//! `unshare` (util-linux), `ip` (iproute2) and `ping` (iputils-ping).
//!
//! Skips with `skipped: <reason>` when those are missing, and panics
//! instead when `CGPE_REQUIRE_KERNEL=1` or `CI=true`: CI never skips.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cgroup_psi_exporter::cgroupfs::CgroupPath;
use cgroup_psi_exporter::namespaces::parse::{parse_net_dev, parse_ns_link};
use cgroup_psi_exporter::namespaces::{NamespaceCollector, NsType};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

use crate::common;

const CGROUPFS: &str = "/sys/fs/cgroup";
const PROCFS: &str = "/proc";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// `common::skip`, then `true` (the caller returns).
fn skip(reason: &str) -> bool {
    common::skip(reason);
    true
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Why this machine cannot run the test, if it cannot.
fn missing_prerequisite(tools: &[&str]) -> Option<String> {
    common::gate::enter();
    if !is_root() {
        return Some("not root".into());
    }
    if hierarchies().is_empty() {
        return Some(format!(
            "no writable cgroup v2 or hybrid layout under {CGROUPFS}"
        ));
    }
    for t in tools {
        if !on_path(t) {
            return Some(format!("`{t}` not found on PATH"));
        }
    }
    None
}

/// Hierarchy roots a test cgroup must be made in: the v2 root on a pure
/// v2 host; `unified` and `memory` on a hybrid one, so the v2 line and the
/// memory line of `/proc/<pid>/cgroup` agree.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(CGROUPFS);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let unified = root.join("unified");
    let memory = root.join("memory");
    if unified.join("cgroup.procs").exists() && memory.join("cgroup.procs").exists() {
        return vec![unified, memory];
    }
    Vec::new()
}

/// Kills its processes and removes its cgroups on drop, panics included.
struct KernelGuard {
    children: Vec<Child>,
    cgroups: Vec<PathBuf>,
}

impl KernelGuard {
    fn new() -> Self {
        sweep_leftovers();
        Self {
            children: Vec::new(),
            cgroups: Vec::new(),
        }
    }

    /// Makes `cgpe-ns-<pid>-<n>` in every hierarchy; returns its dirs and
    /// the cgroup path the scan should report.
    fn cgroup(&mut self) -> (Vec<PathBuf>, CgroupPath) {
        let name = format!(
            "cgpe-ns-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut dirs = Vec::new();
        for h in hierarchies() {
            let d = h.join(&name);
            std::fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            self.cgroups.push(d.clone());
            dirs.push(d);
        }
        (dirs, CgroupPath::new(&name))
    }

    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Members die asynchronously (pid-namespace teardown): retry.
        for d in self.cgroups.iter().rev() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(d).is_err() && d.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Removes `cgpe-ns-<pid>-*` cgroups left by aborted runs whose pid is gone.
fn sweep_leftovers() {
    for h in hierarchies() {
        let Ok(entries) = std::fs::read_dir(&h) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("cgpe-ns-") else {
                continue;
            };
            let owner = rest.split('-').next().unwrap_or("");
            if !Path::new(PROCFS).join(owner).exists() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

fn ns_inode(pid: &str, t: NsType) -> u64 {
    let target = std::fs::read_link(format!("{PROCFS}/{pid}/ns/{t}")).expect("readlink ns");
    parse_ns_link(t, target.to_str().expect("utf-8")).expect("ns link parses")
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn first_child(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("{PROCFS}/{pid}/task/{pid}/children")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("{PROCFS}/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn cgroup_in_own_namespaces_maps_to_them_and_counts_lo_pings() {
    if let Some(reason) = missing_prerequisite(&["unshare", "ip", "ping"]) {
        if skip(&reason) {
            return;
        }
    }
    let mut guard = KernelGuard::new();
    let (dirs, cgroup) = guard.cgroup();
    // The outer `unshare` stays outside the cgroup: with --pid it remains in
    // the host's pid namespace and only its forked child enters the new one.
    // The child moves itself (`0` = the writer) into the cgroup first.
    let script = "for d in \"$@\"; do echo 0 > \"$d/cgroup.procs\"; done; \
                  ip link set lo up; ping -c 5 -i 0.2 127.0.0.1 >/dev/null; exec sleep 60";
    let outer = guard.spawn(
        Command::new("unshare")
            .args(["--net", "--uts", "--pid", "--ipc", "--fork", "--kill-child"])
            .args(["sh", "-c", script, "sh"])
            .args(&dirs),
    );
    let child = wait_for("unshare's child", || first_child(outer));
    // `exec sleep` happens once the pings are done.
    wait_for("pings to finish", || (comm(child) == "sleep").then_some(()));

    let kernel_lo = || {
        let dev = std::fs::read_to_string(format!("{PROCFS}/{child}/net/dev")).expect("net/dev");
        parse_net_dev(&dev)
            .expect("kernel net/dev parses")
            .into_iter()
            .find(|l| l.interface == "lo")
            .expect("lo in the new netns")
    };
    let before = kernel_lo();

    let collector = NamespaceCollector::new(PathBuf::from(PROCFS));
    let snap = collector.scan();
    let c = snap
        .cgroups
        .get(&cgroup)
        .unwrap_or_else(|| panic!("{cgroup} not in the scan"));
    assert_eq!(c.processes, 1, "only the namespaced sleep is in the cgroup");
    for d in &dirs {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).expect("cgroup.procs");
        assert_eq!(
            procs.split_whitespace().collect::<Vec<_>>(),
            vec![child.to_string()],
            "kernel's {}/cgroup.procs",
            d.display()
        );
    }

    let child_s = child.to_string();
    for t in [NsType::Net, NsType::Uts, NsType::Pid, NsType::Ipc] {
        let seen: BTreeSet<u64> = c
            .namespaces
            .iter()
            .filter(|(ty, _)| *ty == t)
            .map(|(_, i)| *i)
            .collect();
        let want = ns_inode(&child_s, t);
        assert_eq!(seen, BTreeSet::from([want]), "{t}");
        assert_ne!(want, ns_inode("self", t), "{t} is a new namespace");
        assert_eq!(
            c.host_namespace.get(&t),
            Some(&false),
            "{t} is not the host's"
        );
    }
    assert_eq!(
        c.host_namespace.get(&NsType::Mnt),
        Some(&true),
        "mnt is shared"
    );

    let net = ns_inode(&child_s, NsType::Net);
    let lo = snap.network[&net]
        .iter()
        .find(|l| l.interface == "lo")
        .expect("scan has lo of the new netns");
    assert!(lo.rx_packets >= 10, "5 pings are 10 packets on lo: {lo:?}");
    let after = kernel_lo();
    assert!(
        before.rx_packets <= lo.rx_packets && lo.rx_packets <= after.rx_packets,
        "scan {} vs kernel {}..{}",
        lo.rx_packets,
        before.rx_packets,
        after.rx_packets
    );

    // The same through the exposition.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NamespaceCollector::new(PathBuf::from(PROCFS))));
    let mut text = String::new();
    encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(&format!(
            "cgroup_host_namespace{{cgroup=\"{cgroup}\",type=\"net\"}} 0\n"
        )),
        "exposition lacks the net series for {cgroup}"
    );
    assert!(text.contains(&format!(
        "cgroup_host_namespace{{cgroup=\"{cgroup}\",type=\"mnt\"}} 1\n"
    )));
}

#[test]
fn user_namespace_root_mapping_is_reported() {
    if let Some(reason) = missing_prerequisite(&["unshare", "sleep"]) {
        if skip(&reason) {
            return;
        }
    }
    let mut guard = KernelGuard::new();
    // Rootless: no map at first; we write `0 100000 65536` as its parent would.
    let rootless = guard.spawn(Command::new("unshare").args(["--user", "sleep", "60"]));
    // Root running `--map-root-user` maps 0 to 0: the container's root IS
    // real root, which is exactly what the metric is there to flag.
    let mapped =
        guard.spawn(Command::new("unshare").args(["--user", "--map-root-user", "sleep", "60"]));
    wait_for("unshare to exec sleep", || {
        (comm(rootless) == "sleep" && comm(mapped) == "sleep").then_some(())
    });
    std::fs::write(format!("{PROCFS}/{rootless}/uid_map"), "0 100000 65536\n")
        .expect("write uid_map");

    let snap = NamespaceCollector::new(PathBuf::from(PROCFS)).scan();
    let host_user = ns_inode("self", NsType::User);
    let rootless_user = ns_inode(&rootless.to_string(), NsType::User);
    let mapped_user = ns_inode(&mapped.to_string(), NsType::User);
    assert_ne!(rootless_user, host_user);
    assert_eq!(
        snap.user_root_mapped_to_host.get(&rootless_user),
        Some(&false)
    );
    assert_eq!(snap.user_root_mapped_to_host.get(&mapped_user), Some(&true));
    assert_eq!(snap.user_root_mapped_to_host.get(&host_user), Some(&true));
}

/// Not a timed test: it measures and prints the scan cost, and asserts only
/// that a warm scan reads (almost) nothing. For the figures in
/// docs/namespaces.md run, as root:
/// `CGPE_NS_BENCH_PROCS=3000 cargo test --release --test kernel kernel_namespaces::scan_cost -- --nocapture`
#[test]
fn scan_cost_cold_and_warm() {
    if let Some(reason) = missing_prerequisite(&["sleep"]) {
        if skip(&reason) {
            return;
        }
    }
    let n: usize = std::env::var("CGPE_NS_BENCH_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut guard = KernelGuard::new();
    for _ in 0..n {
        guard.spawn(Command::new("sleep").arg("300"));
    }
    // Young processes are re-read until they are SETTLE (5 s) old: let
    // them age so the warm scan measures the cache.
    std::thread::sleep(Duration::from_millis(5500));

    let collector = NamespaceCollector::new(PathBuf::from(PROCFS));
    let t = Instant::now();
    let cold = collector.scan();
    let cold_time = t.elapsed();
    let t = Instant::now();
    let warm = collector.scan();
    let warm_time = t.elapsed();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut text = String::new();
    let t = Instant::now();
    encode(&mut text, &registry).expect("encode");
    let encode_time = t.elapsed();
    println!(
        "namespace scan: {} processes; cold {:?} ({} read); warm {:?} ({} read); warm scan + encode {:?} ({} bytes)",
        cold.processes,
        cold_time,
        cold.processes_read,
        warm_time,
        warm.processes_read,
        encode_time,
        text.len()
    );
    assert!(cold.processes >= n, "{} < {n}", cold.processes);
    assert!(
        warm.processes_read <= n / 10 + 5,
        "warm scan read {} processes",
        warm.processes_read
    );
}

/// A task that exited but is not reaped yet (a zombie) still names its
/// cgroup in `/proc/<pid>/cgroup`, but the kernel's `cgroup.procs` no
/// longer lists it, and its cgroup may already be removed (`cgroup.kill`
/// then `rmdir`, with the parent not waiting yet). Counting it kept that
/// removed cgroup in /metrics with `cgroup_processes` > 0 until the reap
/// (seen first in the pure-v2 VM of scripts/vm).
#[test]
fn an_exited_unreaped_task_is_no_process_of_its_cgroup() {
    if let Some(reason) = missing_prerequisite(&["sleep"]) {
        if skip(&reason) {
            return;
        }
    }
    let mut guard = KernelGuard::new();
    let (dirs, path) = guard.cgroup();
    let join: String = dirs
        .iter()
        .map(|d| format!("echo $$ > '{}/cgroup.procs'; ", d.display()))
        .collect();
    // Not waited for until the guard drops: a zombie once `sleep` ends.
    let pid = guard.spawn(
        Command::new("sh")
            .arg("-c")
            .arg(format!("{join} exec sleep 2")),
    );
    let collector = NamespaceCollector::new(PathBuf::from(PROCFS));
    wait_for("the task in its cgroup", || {
        let snap = collector.scan();
        snap.cgroups
            .get(&path)
            .is_some_and(|c| c.processes == 1)
            .then_some(())
    });
    let state = || {
        std::fs::read_to_string(format!("{PROCFS}/{pid}/stat"))
            .ok()
            .and_then(|s| s[s.rfind(')')? + 2..].chars().next())
    };
    wait_for("the task to exit unreaped", || {
        (state() == Some('Z')).then_some(())
    });
    let snap = collector.scan();
    assert_eq!(
        snap.cgroups.get(&path).map(|c| c.processes),
        None,
        "a zombie is no process of {path}"
    );
    for d in dirs.iter().rev() {
        std::fs::remove_dir(d)
            .unwrap_or_else(|e| panic!("rmdir {} (only a zombie left): {e}", d.display()));
    }
    assert!(
        !collector.scan().cgroups.contains_key(&path),
        "the removed cgroup is not reported while its zombie waits"
    );
}
