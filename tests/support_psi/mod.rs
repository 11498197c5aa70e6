//! Helpers shared by the PSI agent's tests: the skip rule, cgroup and
//! process guards, a memory-pressure recipe, a webhook capture server and
//! a real Alertmanager. Included with `#[path = "support_psi/mod.rs"] mod`.
#![allow(dead_code)]

pub mod alertmanager;
pub mod capture;
pub mod pager;

use std::fs;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgroup_psi_exporter::cgroupfs::{CgroupPath, Controller, HierarchyId, Layout};
use cgroup_psi_exporter::config::Config;
use cgroup_psi_exporter::psi::{self, AgentHandle, PsiMetrics};
use cgroup_psi_exporter::registry::{Filter, Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const CGROUPFS: &str = "/sys/fs/cgroup";

/// Kernel tests share cgroups and the machine's memory: one at a time. An
/// async lock, as it is held across awaits (each test has its own runtime;
/// tokio's mutex works across runtimes).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn must_not_skip() -> bool {
    std::env::var("CGPE_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Why kernel tests cannot run here, if they cannot.
fn kernel_unusable() -> Option<String> {
    // SAFETY-free: geteuid via /proc.
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("1");
    if uid != "0" {
        return Some("not root".into());
    }
    if !Path::new("/proc/pressure/memory").exists() {
        return Some("no PSI (/proc/pressure/memory missing; boot with psi=1)".into());
    }
    let l = match layout() {
        Some(l) => l,
        None => return Some(format!("no cgroupfs at {CGROUPFS}")),
    };
    match l.unified() {
        Some(h)
            if h.root.join("memory.pressure").exists() || h.root.join("cgroup.procs").exists() => {}
        _ => return Some("no cgroup2 hierarchy with pressure files".into()),
    }
    None
}

/// True when the test may run; otherwise prints `skipped: <reason>` (or
/// panics when CI forbids skipping).
pub fn kernel_ok() -> bool {
    match kernel_unusable() {
        None => true,
        Some(reason) => {
            if must_not_skip() {
                panic!("kernel test cannot run ({reason}) and CGPE_REQUIRE_KERNEL=1 / CI=true forbids skipping");
            }
            println!("skipped: {reason}");
            false
        }
    }
}

pub fn layout() -> Option<Arc<Layout>> {
    Layout::from_files(Path::new(CGROUPFS)).ok().map(Arc::new)
}

/// A registry over the real hierarchies that the test fills by hand
/// (`registry.add`), as the watcher would.
pub fn registry() -> Arc<Registry> {
    let l = layout().expect("layout");
    Registry::new(l, Filter::default())
}

pub fn unified_id(r: &Registry) -> HierarchyId {
    r.layout().unified().expect("unified").id
}

pub fn memory_id(r: &Registry) -> Option<HierarchyId> {
    r.layout().v1(Controller::Memory).map(|h| h.id)
}

pub fn unified_root() -> PathBuf {
    layout()
        .expect("layout")
        .unified()
        .expect("unified")
        .root
        .clone()
}

pub fn memory_root() -> Option<PathBuf> {
    layout()?.v1(Controller::Memory).map(|h| h.root.clone())
}

/// A unique top-level name for this process: `cgpe-psi-<pid>-<n>-<tag>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "cgpe-psi-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes cgroups left by earlier aborted runs (their pid is gone).
pub fn sweep() {
    let mut roots = vec![unified_root()];
    roots.extend(memory_root());
    for root in roots {
        let Ok(rd) = fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("cgpe-psi-") else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if pid == std::process::id().to_string() || Path::new(&format!("/proc/{pid}")).exists()
            {
                continue;
            }
            remove_tree(&e.path());
        }
    }
}

fn kill_members(dir: &Path) {
    for _ in 0..100 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            let _ = Command::new("kill").arg("-9").arg(p.to_string()).status();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills everything inside and removes the directory tree, leaves first.
pub fn remove_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    kill_members(dir);
    for _ in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A cgroup made for a test, in the cgroup2 hierarchy and optionally in
/// the v1 memory hierarchy (hybrid machines), removed on drop.
pub struct TestCgroup {
    pub rel: String,
    pub v2: PathBuf,
    pub v1: Option<PathBuf>,
}

impl TestCgroup {
    pub fn new(rel: &str, with_memory: bool) -> TestCgroup {
        let v2 = unified_root().join(rel);
        fs::create_dir_all(&v2).expect("mkdir cgroup2");
        let v1 = if with_memory {
            memory_root().map(|r| {
                let d = r.join(rel);
                fs::create_dir_all(&d).expect("mkdir memory");
                d
            })
        } else {
            None
        };
        TestCgroup {
            rel: rel.to_string(),
            v2,
            v1,
        }
    }

    pub fn path(&self) -> CgroupPath {
        CgroupPath::new(&self.rel)
    }

    /// Caps memory (v1 `memory.limit_in_bytes` on hybrid, else v2 `memory.max`).
    pub fn limit_memory(&self, bytes: u64) {
        match &self.v1 {
            Some(d) => fs::write(d.join("memory.limit_in_bytes"), bytes.to_string())
                .expect("memory.limit_in_bytes"),
            None => fs::write(self.v2.join("memory.max"), bytes.to_string()).expect("memory.max"),
        }
    }

    /// Shell words that move the running shell into this cgroup.
    pub fn enter_script(&self) -> String {
        let mut s = format!("echo $$ > {}/cgroup.procs", self.v2.display());
        if let Some(d) = &self.v1 {
            s.push_str(&format!(" && echo $$ > {}/cgroup.procs", d.display()));
        }
        s
    }

    /// Kills members and removes the cgroup2 directory now (for `Gone`).
    pub fn rmdir_v2(&self) {
        remove_tree(&self.v2);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove_tree(&self.v2);
        if let Some(d) = &self.v1 {
            remove_tree(d);
        }
    }
}

/// A process group killed on drop.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn sh(script: &str) -> Proc {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        Proc { child }
    }

    pub fn wait_timeout(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .arg("-9")
            .arg("--")
            .arg(format!("-{pgid}"))
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file of random bytes, removed on drop.
pub struct BigFile(pub PathBuf);

impl BigFile {
    pub fn new(bytes: u64) -> BigFile {
        let p = PathBuf::from(format!(
            "/var/tmp/cgpe-psi-{}-{}.dat",
            std::process::id(),
            unique("f")
        ));
        let mut f = fs::File::create(&p).expect("create big file");
        let mut src = fs::File::open("/dev/urandom").expect("urandom");
        io::copy(&mut io::Read::take(&mut src, bytes), &mut f).expect("fill");
        f.flush().expect("flush");
        f.sync_all().expect("sync");
        BigFile(p)
    }
}

impl Drop for BigFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Real memory pressure in `cg` for `secs`: caps it at 16 MiB and has two
/// readers re-read a 128 MiB file from inside after dropping its page
/// cache, so the kernel keeps reclaiming and refaulting (~2 s of `some`
/// stall in 8 s here). Stops on drop.
pub struct Pressure {
    _proc: Proc,
    _file: BigFile,
}

pub const PRESSURE_LIMIT: u64 = 16 << 20;

impl Pressure {
    pub fn start(cg: &TestCgroup, secs: u64) -> Pressure {
        cg.limit_memory(PRESSURE_LIMIT);
        let file = BigFile::new(PRESSURE_LIMIT * 8);
        let f = file.0.display().to_string();
        let _ = Command::new("dd")
            .args([
                format!("if={f}"),
                "iflag=nocache".into(),
                "count=0".into(),
                "status=none".into(),
            ])
            .status();
        let script = format!(
            "{enter} || exit 1; end=$(( $(date +%s) + {secs} )); \
             for i in 1 2; do ( while [ $(date +%s) -lt $end ]; do dd if={f} of=/dev/null bs=1M status=none; done ) & done; wait",
            enter = cg.enter_script()
        );
        Pressure {
            _proc: Proc::sh(&script),
            _file: file,
        }
    }
}

/// Polls `f` every 1 ms until it returns `Some`, up to `timeout`.
pub async fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// CPU time (user + system) of this process so far.
pub fn process_cpu() -> Duration {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the comm: state is index 0; utime 11, stime 12.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The PSI agent over `registry` with `cfg`, started as the app starts it
/// (procfs at `/proc`). Returns its handle, its metrics, and the config
/// sender: keep it alive (a closed channel means "no more reloads"), and
/// send on it to reload.
pub fn start_agent(
    registry: &Arc<Registry>,
    cfg: Arc<Config>,
) -> (AgentHandle, Arc<PsiMetrics>, watch::Sender<Arc<Config>>) {
    let (tx, rx) = watch::channel(cfg);
    let metrics = PsiMetrics::new();
    let agent = psi::spawn(
        registry.clone(),
        PathBuf::from("/proc"),
        rx,
        metrics.clone(),
        CancellationToken::new(),
    );
    (agent, metrics, tx)
}

/// The agent's metrics in the Prometheus text format.
pub fn metrics_text(metrics: &PsiMetrics) -> String {
    let mut text = String::new();
    let mut reg = prometheus_client::registry::Registry::default();
    metrics.register_metrics(&mut reg);
    prometheus_client::encoding::text::encode(&mut text, &reg).expect("encode");
    text
}
