//! Helpers shared by the integration tests (and the benches, which include
//! this file by `#[path]`): the skip policy for kernel tests, RAII cgroups
//! on the real kernel, the exporter binary as a child process, a small
//! exposition parser, the PSI agent in-process (`agent`, re-exported here),
//! webhook receivers (`capture`, `pager`) and a real Alertmanager.
#![allow(dead_code)]

mod agent;
pub mod alertmanager;
pub mod capture;
pub mod fixtures;
pub mod gate;
pub mod pager;
pub mod pki;
pub mod pressure;

// Not every crate that includes this file uses the agent's helpers.
#[allow(unused_imports)]
pub use agent::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Kernel and end-to-end tests need root and real cgroups. Without them a
/// test prints `skipped: <reason>` and passes, unless CI asks for them:
/// `CGPE_REQUIRE_KERNEL=1` (set by `scripts/test`) or `CI=true` turn the
/// skip into a failure, so CI never passes by skipping.
pub fn skip(reason: &str) {
    let required = std::env::var("CGPE_REQUIRE_KERNEL")
        .map(|v| v == "1")
        .unwrap_or(false)
        || std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    if required {
        panic!("kernel test required (CGPE_REQUIRE_KERNEL=1 or CI=true) but cannot run: {reason}");
    }
    skipped(reason);
}

/// Straight to stderr, not `eprintln!`: the test harness captures the
/// macros, and a skip must be visible without `--nocapture`.
fn skipped(reason: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// `None` when kernel tests can run here, else why not. Every kernel test
/// asks this first, so it is also where the test joins its file's turn
/// (`gate`): kernel tests of different files never run side by side.
#[track_caller]
pub fn kernel_unavailable() -> Option<String> {
    gate::enter();
    // SAFETY-free root check: /proc/self/status Uid line.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("");
    if uid != "0" {
        return Some("not running as root".into());
    }
    if roots().is_empty() {
        return Some("no writable cgroup hierarchy under /sys/fs/cgroup".into());
    }
    if !Path::new("/proc/pressure/memory").exists() {
        return Some("PSI is off (no /proc/pressure)".into());
    }
    None
}

pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// Whether the host is pure cgroup v2.
pub fn pure_v2() -> bool {
    Path::new(CGROUP_MOUNT).join("cgroup.controllers").exists()
}

/// Hierarchy roots to make test cgroups in: the v2 root (or `unified/`)
/// and the v1 controllers we read.
pub fn roots() -> Vec<PathBuf> {
    let base = Path::new(CGROUP_MOUNT);
    if pure_v2() {
        return vec![base.to_path_buf()];
    }
    let mut v = Vec::new();
    if base.join("unified/cgroup.procs").exists() {
        v.push(base.join("unified"));
    }
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "freezer", "hugetlb",
    ] {
        let d = base.join(c);
        if d.join("cgroup.procs").exists()
            && !std::fs::symlink_metadata(&d)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(true)
        {
            v.push(d);
        }
    }
    v
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A cgroup made in every hierarchy for one test, removed (with anything
/// still running in it) on drop, also when the test panics.
pub struct KernelCgroup {
    pub name: String,
    pub dirs: Vec<PathBuf>,
    children: Vec<Child>,
    /// Directories this guard created, removed deepest first on drop.
    created: Vec<PathBuf>,
}

impl KernelCgroup {
    /// `/cgpe-test-<pid>-<n>[/sub]`, made in every hierarchy.
    pub fn new(tag: &str) -> KernelCgroup {
        sweep_leftovers();
        let name = format!(
            "cgpe-test-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            tag
        );
        let mut dirs = Vec::new();
        for r in roots() {
            let d = r.join(&name);
            std::fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            if pure_v2() {
                enable_v2_controllers(&r, &d);
            }
            dirs.push(d);
        }
        let created = dirs.clone();
        KernelCgroup {
            name,
            dirs,
            children: Vec::new(),
            created,
        }
    }

    /// A cgroup at a given nested path (`a.slice/b.slice/c.scope`) in every
    /// hierarchy; only the directories made here are removed on drop.
    pub fn at(rel: &str) -> KernelCgroup {
        sweep_leftovers();
        let mut dirs = Vec::new();
        let mut created = Vec::new();
        for r in roots() {
            let mut d = r.clone();
            for part in rel.split('/').filter(|p| !p.is_empty()) {
                d = d.join(part);
                if !d.exists() {
                    std::fs::create_dir(&d)
                        .unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
                    created.push(d.clone());
                }
            }
            dirs.push(d);
        }
        KernelCgroup {
            name: rel.trim_matches('/').to_string(),
            dirs,
            children: Vec::new(),
            created,
        }
    }

    /// The cgroup path as the exporter names it.
    pub fn path(&self) -> String {
        format!("/{}", self.name)
    }

    /// The directory in the hierarchy whose root ends with `hier`
    /// (`unified`, `memory`, ... or the mount itself on pure v2).
    pub fn dir(&self, hier: &str) -> Option<&PathBuf> {
        if pure_v2() {
            return self.dirs.first();
        }
        self.dirs.iter().find(|d| {
            d.parent()
                .and_then(|p| p.file_name())
                .map(|n| n == hier)
                .unwrap_or(false)
        })
    }

    /// Writes a control file in the given hierarchy.
    pub fn write(&self, hier: &str, file: &str, value: &str) {
        let d = self
            .dir(hier)
            .unwrap_or_else(|| panic!("no {hier} hierarchy"));
        std::fs::write(d.join(file), value)
            .unwrap_or_else(|e| panic!("write {}/{file}: {e}", d.display()));
    }

    pub fn read(&self, hier: &str, file: &str) -> String {
        let d = self
            .dir(hier)
            .unwrap_or_else(|| panic!("no {hier} hierarchy"));
        std::fs::read_to_string(d.join(file))
            .unwrap_or_else(|e| panic!("read {}/{file}: {e}", d.display()))
    }

    /// Starts `script` under sh, moved into this cgroup (every hierarchy)
    /// before it runs anything.
    /// Shell commands that move the running shell (`$$`) into this cgroup
    /// in every hierarchy; prefix a script with them.
    pub fn join_script(&self) -> String {
        let mut join = String::new();
        for d in &self.dirs {
            join.push_str(&format!("echo $$ > '{}/cgroup.procs'; ", d.display()));
        }
        join
    }

    pub fn spawn(&mut self, script: &str) -> u32 {
        let join = self.join_script();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{join} exec sh -c '{}'",
                script.replace('\'', "'\\''")
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        self.children.push(child);
        // Wait until it has moved itself in.
        let procs = self.dirs[0].join("cgroup.procs");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            let p = std::fs::read_to_string(&procs).unwrap_or_default();
            if p.lines().any(|l| l.trim() == pid.to_string()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        pid
    }
}

impl Drop for KernelCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in &self.dirs {
            kill_and_remove(d);
        }
        let mut created = self.created.clone();
        created.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in created {
            kill_and_remove(&d);
        }
    }
}

fn enable_v2_controllers(root: &Path, dir: &Path) {
    let ctl = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let plus: Vec<String> = ctl.split_whitespace().map(|c| format!("+{c}")).collect();
    let _ = std::fs::write(root.join("cgroup.subtree_control"), plus.join(" "));
    let _ = dir;
}

/// Kills everything in `dir` and below, then removes it deepest first.
pub fn kill_and_remove(dir: &Path) {
    let mut dirs = Vec::new();
    collect_dirs(dir, &mut dirs);
    for _ in 0..50 {
        let mut any = false;
        for d in &dirs {
            for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                any = true;
                let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
            }
        }
        if !any {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        for _ in 0..50 {
            if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `d` and every directory below it.
pub fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    if !d.is_dir() {
        return;
    }
    out.push(d.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Removes `cgpe-test-<pid>-*` cgroups left by test processes that died.
pub fn sweep_leftovers() {
    sweep_prefix("cgpe-test-");
}

/// Removes `<prefix><pid>-*` cgroups of test processes that died.
pub fn sweep_prefix(prefix: &str) {
    for r in roots() {
        let Ok(rd) = std::fs::read_dir(&r) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if Path::new("/proc").join(pid).exists() {
                continue;
            }
            kill_and_remove(&e.path());
        }
    }
}

/// A TCP port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The exporter binary running as a child, killed on drop.
pub struct ExporterProcess {
    pub child: Child,
    pub port: u16,
    /// The directory of the config file `with_config` wrote, removed with
    /// the process.
    pub config_dir: Option<tempfile::TempDir>,
}

impl ExporterProcess {
    /// `start` with `--config.file` pointing at a file holding `yaml`.
    pub fn with_config(yaml: &str, extra: &[&str]) -> ExporterProcess {
        let dir = tempfile::tempdir().expect("tempdir for the config");
        let cfg = dir.path().join("config.yaml");
        std::fs::write(&cfg, yaml).expect("write the config");
        let cfg = cfg.to_str().expect("a UTF-8 temp path").to_string();
        let mut args = vec!["--config.file", cfg.as_str()];
        args.extend_from_slice(extra);
        let mut p = ExporterProcess::start(&args);
        p.config_dir = Some(dir);
        p
    }

    pub fn start(extra: &[&str]) -> ExporterProcess {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_cgroup-psi-exporter"))
            .arg("--web.listen-address")
            .arg(&addr)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the exporter");
        let p = ExporterProcess {
            child,
            port,
            config_dir: None,
        };
        wait_ok(port, "/readyz", Duration::from_secs(20));
        p
    }

    pub fn scrape(&self) -> Exposition {
        let (status, body) = http_get(self.port, "/metrics").expect("scrape");
        assert_eq!(status, 200, "scrape status; body: {body}");
        Exposition::parse(&body)
    }

    pub fn scrape_text(&self) -> String {
        http_get(self.port, "/metrics").expect("scrape").1
    }
}

impl Drop for ExporterProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `GET path` on `port` answers 200 (a server's readiness
/// endpoint); panics after `within`.
pub fn wait_ok(port: u16, path: &str, within: Duration) {
    let t0 = Instant::now();
    while http_get(port, path).map(|r| r.0).ok() != Some(200) {
        assert!(
            t0.elapsed() < within,
            "nothing answered 200 on 127.0.0.1:{port}{path} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.1 GET; returns the status and body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, &[])
}

pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let (status, body) = http_raw(port, method, path, headers)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path`, the body as bytes (a gzip body, say).
pub fn http_get_bytes(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Vec<u8>)> {
    http_raw(port, "GET", path, headers)
}

fn http_raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    http_parse(&raw)
}

/// Status and body (de-chunked, on bytes) of a raw HTTP/1.1 response.
fn http_parse(raw: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => (raw, &raw[raw.len()..]),
    };
    let head = String::from_utf8_lossy(head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {head:.200}")))?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let data = &rest[eol + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    Ok((status, out))
}

/// One sample of a text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name_labels, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let (name, labels) = match name_labels.split_once('{') {
                Some((n, l)) => (n.to_string(), parse_labels(l.trim_end_matches('}'))),
                None => (name_labels.to_string(), BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or(f64::NAN),
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Exposition { samples }
    }

    /// The value of `name` whose labels include all of `want`.
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.find(name, want).map(|s| s.value)
    }

    pub fn find(&self, name: &str, want: &[(&str, &str)]) -> Option<&Sample> {
        self.samples.iter().find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(|x| x == v).unwrap_or(false))
        })
    }

    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    pub fn cgroups(&self) -> std::collections::BTreeSet<String> {
        self.samples
            .iter()
            .filter_map(|s| s.labels.get("cgroup").cloned())
            .collect()
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let Some(eq) = s[i..].find('=') else { break };
        let key = s[i..i + eq].trim_start_matches(',').trim().to_string();
        i += eq + 1;
        if i >= b.len() || b[i] != b'"' {
            break;
        }
        i += 1;
        let mut val = String::new();
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' && i + 1 < b.len() {
                i += 1;
                val.push(match b[i] {
                    b'n' => '\n',
                    c => c as char,
                });
            } else {
                val.push(b[i] as char);
            }
            i += 1;
        }
        i += 1;
        out.insert(key, val);
    }
    out
}

/// Runs `promtool check metrics` on an exposition when promtool exists;
/// `Err` with its output on lint problems, `Ok(false)` when absent.
pub fn promtool_check_metrics(text: &str) -> Result<bool, String> {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return Ok(false);
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(true)
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Sets a sysctl for the life of the guard, restoring the old value on drop
/// (also on panic). Tests that change global limits serialise on a lock.
pub struct SysctlGuard {
    path: PathBuf,
    old: String,
    _lock: std::sync::MutexGuard<'static, ()>,
}

static SYSCTL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl SysctlGuard {
    pub fn set(path: &str, value: &str) -> SysctlGuard {
        let lock = SYSCTL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        std::fs::write(path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
        SysctlGuard {
            path: PathBuf::from(path),
            old: old.trim().to_string(),
            _lock: lock,
        }
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.old);
    }
}

/// A `/proc/<pid>/status` field in its unit (kB for `VmRSS:`), 0 if absent.
pub fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    open_fds_where(pid, |_| true)
}

/// Open descriptors of `pid` whose target path contains `needle`.
pub fn open_fds_into(pid: u32, needle: &str) -> usize {
    open_fds_where(pid, |target| target.to_string_lossy().contains(needle))
}

/// Open descriptors of `pid` on directories whose path contains `needle`
/// (the reader's kept `O_PATH` cgroup directories).
pub fn open_dirs_into(pid: u32, needle: &str) -> usize {
    open_fds_where(pid, |target| {
        target.to_string_lossy().contains(needle) && target.is_dir()
    })
}

fn open_fds_where(pid: u32, keep: impl Fn(&Path) -> bool) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| keep(&t)))
                .count()
        })
        .unwrap_or(0)
}

/// Why a test of pure cgroup v2 cannot run here, or `None`. These tests
/// (tests/kernel_v2.rs) run in the pure-v2 VM that `scripts/vm/run` boots.
#[track_caller]
pub fn v2_unavailable() -> Option<String> {
    kernel_unavailable().or_else(|| {
        (!pure_v2()).then(|| {
            "not a pure cgroup v2 host (scripts/vm/run boots one and runs this test there)".into()
        })
    })
}

/// Skips a pure-v2 test on other hosts, but fails when `CGPE_REQUIRE_V2=1`
/// (set by the VM stage, where a skip would hide a broken v2 path). Kept
/// apart from `skip`: `CGPE_REQUIRE_KERNEL=1` on a hybrid CI host must not
/// turn "this host is not v2" into a failure.
pub fn skip_v2(reason: &str) {
    if std::env::var("CGPE_REQUIRE_V2").is_ok_and(|v| v == "1") {
        panic!("pure cgroup v2 test required (CGPE_REQUIRE_V2=1) but cannot run: {reason}");
    }
    skipped(reason);
}

/// The yaml code blocks of a Markdown text whose first key (the first line
/// that is neither blank nor a comment) starts with one of `sections`, each
/// with the 1-based line of its opening fence: the configs the docs quote,
/// so tests can hold the docs to what the exporter accepts.
pub fn yaml_blocks(markdown: &str, sections: &[&str]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((start, line)) = lines.next() {
        if line.trim() != "```yaml" {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .collect();
        let first = block
            .iter()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'));
        if first.is_some_and(|l| sections.iter().any(|s| l.starts_with(s))) {
            out.push((start + 1, block.join("\n")));
        }
    }
    out
}

/// Waits up to `timeout` for `child` to exit and returns its status and
/// stderr (piped). A child still running then is killed: `None`.
pub fn exit_within(
    mut child: std::process::Child,
    timeout: Duration,
) -> Option<(std::process::ExitStatus, String)> {
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            break status;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    Some((status, err))
}
