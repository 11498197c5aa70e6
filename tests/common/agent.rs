//! Helpers for tests that run the PSI agent in-process: the agent over a
//! registry of the real hierarchies, cgroups in the hierarchies the agent
//! watches (cgroup2, plus v1 memory on hybrid hosts), process groups, a
//! memory-pressure guard and an async poll. Re-exported at `common::`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use cgroup_psi_exporter::cgroupfs::{CgroupPath, Controller, HierarchyId, Layout};
use cgroup_psi_exporter::config::Config;
use cgroup_psi_exporter::psi::{self, AgentHandle, PsiMetrics};
use cgroup_psi_exporter::registry::{Filter, Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{pressure, CGROUP_MOUNT};

/// The cgroupfs mount, under the name the agent's tests use.
pub const CGROUPFS: &str = CGROUP_MOUNT;

/// Agent tests share cgroups and the machine's memory: one at a time. An
/// async lock, as it is held across awaits (each test has its own runtime;
/// tokio's mutex works across runtimes).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// True when an agent test may run: the kernel tests' conditions
/// (`super::kernel_unavailable`) and a cgroup2 hierarchy, which the agent's
/// triggers need even on hybrid hosts. Otherwise skips by `super::skip`.
#[track_caller]
pub fn kernel_ok() -> bool {
    let why = super::kernel_unavailable().or_else(|| {
        let unified = layout().and_then(|l| l.unified().map(|h| h.root.clone()));
        match unified {
            Some(root)
                if root.join("memory.pressure").exists() || root.join("cgroup.procs").exists() =>
            {
                None
            }
            _ => Some("no cgroup2 hierarchy with pressure files".into()),
        }
    });
    match why {
        None => true,
        Some(reason) => {
            super::skip(&reason);
            false
        }
    }
}

pub fn layout() -> Option<Arc<Layout>> {
    Layout::from_files(std::path::Path::new(CGROUPFS))
        .ok()
        .map(Arc::new)
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

/// Removes `cgpe-psi-*` cgroups left by earlier aborted runs (their pid
/// is gone).
pub fn sweep() {
    super::sweep_prefix("cgpe-psi-");
}

/// A cgroup made for a test in the cgroup2 hierarchy and optionally in the
/// v1 memory hierarchy (hybrid machines), removed on drop like a
/// `KernelCgroup` (`super::kill_and_remove`). Apart from `KernelCgroup`,
/// which is made in every hierarchy, because the agent watches only these
/// two; plain fields, so a test can name an existing directory (a parent
/// made on the way) as one to remove.
pub struct TestCgroup {
    pub rel: String,
    pub v2: PathBuf,
    pub v1: Option<PathBuf>,
}

impl TestCgroup {
    pub fn new(rel: &str, with_memory: bool) -> TestCgroup {
        let v2 = unified_root().join(rel);
        std::fs::create_dir_all(&v2).expect("mkdir cgroup2");
        let v1 = memory_root().filter(|_| with_memory).map(|r| {
            let d = r.join(rel);
            std::fs::create_dir_all(&d).expect("mkdir memory");
            d
        });
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
            Some(d) => std::fs::write(d.join("memory.limit_in_bytes"), bytes.to_string())
                .expect("memory.limit_in_bytes"),
            None => {
                std::fs::write(self.v2.join("memory.max"), bytes.to_string()).expect("memory.max")
            }
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
        super::kill_and_remove(&self.v2);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        super::kill_and_remove(&self.v2);
        if let Some(d) = &self.v1 {
            super::kill_and_remove(d);
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

/// Real memory pressure in `cg` for `secs` (the recipe of
/// `common::pressure`, as a guard of its own): two readers in a process
/// group, stopped on drop.
pub struct Pressure {
    _proc: Proc,
    _file: pressure::BigFile,
}

pub const PRESSURE_LIMIT: u64 = pressure::LIMIT;

impl Pressure {
    pub fn start(cg: &TestCgroup, secs: u64) -> Pressure {
        cg.limit_memory(PRESSURE_LIMIT);
        let file = pressure::BigFile::new((PRESSURE_LIMIT * 8) as usize);
        file.drop_cache();
        let reader = pressure::reader_script(&file, secs);
        let script = format!(
            "{enter} || exit 1; for i in 1 2; do ( {reader} ) & done; wait",
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
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
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
