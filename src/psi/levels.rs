//! cgroup v1 memory pressure levels as alerts (`psi.pressure_levels`).
//!
//! Pure v1 hosts have no per-cgroup PSI; their memory controller has its
//! own notifications instead: an eventfd registered through
//! `cgroup.event_control` as `"<eventfd> <fd of memory.pressure_level>
//! <level>,local"` is signalled while reclaim against that cgroup's limit
//! runs at `level` or worse.
//! <https://docs.kernel.org/admin-guide/cgroup-v1/memory.html#memory-pressure>
//!
//! - `local`: only reclaim aimed at this cgroup (its own limit, or global
//!   reclaim for the root) counts, so a parent does not alert for a
//!   child's limit, and every rule sees its own cgroups' events.
//! - The kernel signals at most about once per reclaim pass; an alert fires
//!   on the first signal and resolves after `resolve_after` without one,
//!   as PSI rules do. The eventfd is also signalled when the cgroup goes;
//!   the file being gone then tells removal from pressure.
//!
//! [`Levels`] owns the rules' watches and tells the agent loop when one
//! fires or goes; the alert states live in the alert book.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cgroupfs::{CgroupPath, Controller, HierarchyId};
use crate::config::{Config, PressureLevelRule};
use crate::glob::Glob;
use crate::registry::{Registry, RegistryEvent};

use super::book::News;
use super::{Input, Inputs};

/// Why a level watch could not be armed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {op}: {source}")]
pub struct LevelError {
    pub path: PathBuf,
    pub op: &'static str,
    #[source]
    pub source: io::Error,
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelEvent {
    /// The kernel signalled the level (once or more since the last read).
    Fired,
    /// The cgroup was removed; the watch has stopped.
    Gone,
    Failed(String),
}

/// One registered `memory.pressure_level` eventfd. Dropping it closes the
/// eventfd, which makes the kernel drop the registration.
#[derive(Debug)]
pub struct LevelWatch {
    efd: AsyncFd<File>,
    level_file: PathBuf,
}

impl LevelWatch {
    /// Registers for `level` notifications of the v1 memory cgroup `dir`.
    /// Blocking (opens and writes cgroup files): call it on the blocking
    /// pool, inside the runtime (the eventfd is registered with it).
    #[allow(
        clippy::disallowed_methods,
        reason = "called only on the blocking pool (Levels::arm)"
    )]
    pub fn arm(dir: &Path, level: crate::config::PressureLevel) -> Result<LevelWatch, LevelError> {
        let err = |path: &Path, op, source| LevelError {
            path: path.to_path_buf(),
            op,
            source,
        };
        let level_file = dir.join("memory.pressure_level");
        let control = dir.join("cgroup.event_control");
        let lfd = File::open(&level_file).map_err(|e| err(&level_file, "open", e))?;
        let efd = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| err(dir, "eventfd", e.into()))?;
        let line = format!(
            "{} {} {},local",
            efd.as_raw_fd(),
            lfd.as_raw_fd(),
            level.name()
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(&control)
            .and_then(|mut c| c.write_all(line.as_bytes()))
            .map_err(|e| err(&control, "write", e))?;
        let efd = super::trigger::register(File::from(efd), Interest::READABLE)
            .map_err(|e| err(dir, "register", e))?;
        Ok(LevelWatch { efd, level_file })
    }

    pub async fn next(&mut self) -> LevelEvent {
        loop {
            let mut guard = match self.efd.readable().await {
                Ok(g) => g,
                Err(e) => return LevelEvent::Failed(e.to_string()),
            };
            let mut buf = [0u8; 8];
            match guard.try_io(|inner| inner.get_ref().read(&mut buf)) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return LevelEvent::Failed(e.to_string()),
                Err(_would_block) => continue,
            }
            // The eventfd is also signalled as the cgroup goes: the file
            // being gone tells removal from pressure (a stat, off the
            // async workers).
            let file = self.level_file.clone();
            return match tokio::task::spawn_blocking(move || super::exists(&file)).await {
                Ok(true) => LevelEvent::Fired,
                Ok(false) => LevelEvent::Gone,
                Err(e) => LevelEvent::Failed(e.to_string()),
            };
        }
    }
}

/// A watch's message to the owner.
#[derive(Debug)]
struct LevelMsg {
    key: Key,
    id: u64,
    event: LevelEvent,
}

type Key = (Arc<str>, CgroupPath);

struct Rule {
    rule: Arc<PressureLevelRule>,
    root: bool,
    globs: Vec<Glob>,
}

impl Rule {
    fn matches(&self, path: &CgroupPath) -> bool {
        if path.is_root() {
            return self.root;
        }
        self.globs.iter().any(|g| g.matches(path.as_str()))
    }
}

/// The level watches owner: rule x v1 memory cgroup -> armed eventfds ->
/// `LevelFired` / `LevelEnded` news for the alert book. Its own task, with its own registry subscription and
/// config receiver; arming runs on the blocking pool, one batch per burst
/// of events.
pub(crate) struct Levels {
    registry: Arc<Registry>,
    /// The v1 memory hierarchy (none: nothing is armed).
    hierarchy: Option<(HierarchyId, PathBuf)>,
    rules: Vec<Arc<Rule>>,
    paths: BTreeSet<CgroupPath>,
    armed: HashMap<Key, (u64, AbortHandle)>,
    next_id: u64,
    tx: mpsc::UnboundedSender<LevelMsg>,
    rx: mpsc::UnboundedReceiver<LevelMsg>,
    out: mpsc::UnboundedSender<News>,
}

impl Levels {
    pub(crate) fn new(
        registry: Arc<Registry>,
        rules: &[PressureLevelRule],
        out: mpsc::UnboundedSender<News>,
    ) -> Levels {
        let hierarchy = registry
            .layout()
            .v1(Controller::Memory)
            .map(|h| (h.id, h.root.clone()));
        let (tx, rx) = mpsc::unbounded_channel();
        Levels {
            registry,
            hierarchy,
            rules: compile(rules),
            paths: BTreeSet::new(),
            armed: HashMap::new(),
            next_id: 0,
            tx,
            rx,
            out,
        }
    }

    pub(crate) async fn run(
        mut self,
        config: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) {
        let (initial, mut inputs) = Inputs::new(&self.registry, config);
        for (hierarchy, path) in initial {
            if self.ours(hierarchy) {
                self.paths.insert(path);
            }
        }
        let all: Vec<CgroupPath> = self.paths.iter().cloned().collect();
        self.arm(all).await;
        if !self.rules.is_empty() {
            info!(
                pressure_level_watches = self.armed.len(),
                "pressure level watches armed"
            );
        }
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                input = inputs.next() => match input {
                    Input::Registry(batch) => self.on_registry(batch).await,
                    Input::Config(cfg) => self.reload(&cfg.psi.pressure_levels).await,
                },
                Some(msg) = self.rx.recv() => self.on_msg(msg),
            }
        }
        for (_, (_, abort)) in self.armed.drain() {
            abort.abort();
        }
    }

    fn ours(&self, hierarchy: HierarchyId) -> bool {
        self.hierarchy.as_ref().is_some_and(|h| h.0 == hierarchy)
    }

    async fn on_registry(&mut self, batch: Vec<RegistryEvent>) {
        let mut added = Vec::new();
        for ev in batch {
            match ev {
                RegistryEvent::Added { path, hierarchy } if self.ours(hierarchy) => {
                    self.paths.insert(path.clone());
                    added.push(path);
                }
                RegistryEvent::Removed { path, hierarchy } if self.ours(hierarchy) => {
                    self.arm(std::mem::take(&mut added)).await;
                    self.paths.remove(&path);
                    let keys: Vec<Key> =
                        self.armed.keys().filter(|k| k.1 == path).cloned().collect();
                    for k in keys {
                        self.disarm(&k);
                    }
                }
                _ => {}
            }
        }
        self.arm(added).await;
    }

    /// Arms every matching rule on `paths`, on the blocking pool.
    async fn arm(&mut self, paths: Vec<CgroupPath>) {
        let Some((_, root)) = &self.hierarchy else {
            return;
        };
        let mut jobs = Vec::new();
        for path in paths {
            for rule in &self.rules {
                let key: Key = (rule.rule.name.as_str().into(), path.clone());
                if rule.matches(&path) && !self.armed.contains_key(&key) {
                    jobs.push((key, rule.clone(), root.join(path.relative())));
                }
            }
        }
        if jobs.is_empty() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(key, rule, dir)| {
                    let w = LevelWatch::arm(&dir, rule.rule.level);
                    (key, rule, w)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            warn!("pressure level arming task failed");
            return;
        };
        for (key, rule, watch) in done {
            let current = self.rules.iter().any(|r| Arc::ptr_eq(r, &rule));
            if !current || !self.paths.contains(&key.1) || self.armed.contains_key(&key) {
                continue; // dropping the watch closes its eventfd
            }
            match watch {
                Ok(w) => self.start(key, &rule, w),
                Err(e) => {
                    debug!(rule = %key.0, cgroup = %key.1, error = %e, "pressure level watch not armed")
                }
            }
        }
    }

    fn start(&mut self, key: Key, rule: &Rule, mut watch: LevelWatch) {
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.tx.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = watch.next().await;
                let last = event != LevelEvent::Fired;
                let sent = tx.send(LevelMsg {
                    key: task_key.clone(),
                    id,
                    event,
                });
                if last || sent.is_err() {
                    return;
                }
            }
        });
        debug!(rule = %key.0, cgroup = %key.1, level = rule.rule.level.name(), "pressure level watch armed");
        self.armed.insert(key, (id, task.abort_handle()));
    }

    fn disarm(&mut self, key: &Key) {
        if let Some((_, abort)) = self.armed.remove(key) {
            abort.abort();
            let _ = self.out.send(News::LevelEnded {
                rule: key.0.clone(),
                path: key.1.clone(),
            });
        }
    }

    fn on_msg(&mut self, msg: LevelMsg) {
        if self.armed.get(&msg.key).map(|e| e.0) != Some(msg.id) {
            return;
        }
        match msg.event {
            LevelEvent::Fired => {
                if let Some(rule) = self.rules.iter().find(|r| *r.rule.name == *msg.key.0) {
                    let _ = self.out.send(News::LevelFired {
                        rule: rule.rule.clone(),
                        path: msg.key.1,
                    });
                }
            }
            LevelEvent::Gone => self.disarm(&msg.key),
            LevelEvent::Failed(e) => {
                warn!(rule = %msg.key.0, cgroup = %msg.key.1, error = %e, "pressure level watch failed");
                self.disarm(&msg.key)
            }
        }
    }

    /// New rules: changed or removed rules are dropped (their alerts
    /// resolve), new ones armed.
    async fn reload(&mut self, rules: &[PressureLevelRule]) {
        let new = compile(rules);
        // Keep the running `Arc` of unchanged rules: a batch in flight
        // checks its rule by identity.
        let new: Vec<Arc<Rule>> = new
            .into_iter()
            .map(|n| {
                self.rules
                    .iter()
                    .find(|o| o.rule == n.rule)
                    .cloned()
                    .unwrap_or(n)
            })
            .collect();
        let gone: Vec<Key> = self
            .armed
            .keys()
            .filter(|k| {
                !new.iter()
                    .any(|n| *n.rule.name == *k.0 && self.rules.iter().any(|o| Arc::ptr_eq(o, n)))
            })
            .cloned()
            .collect();
        for k in &gone {
            self.disarm(k);
        }
        self.rules = new;
        let all: Vec<CgroupPath> = self.paths.iter().cloned().collect();
        self.arm(all).await;
    }
}

fn compile(rules: &[PressureLevelRule]) -> Vec<Arc<Rule>> {
    rules
        .iter()
        .map(|r| {
            Arc::new(Rule {
                root: r.cgroups.iter().any(|g| g == super::rules::HOST),
                globs: r
                    .cgroups
                    .iter()
                    .filter(|g| g.as_str() != super::rules::HOST)
                    .filter_map(|g| Glob::new(g).ok())
                    .collect(),
                rule: Arc::new(r.clone()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PressureLevel;

    fn rule(cgroups: &[&str]) -> PressureLevelRule {
        PressureLevelRule {
            name: "Lvl".into(),
            cgroups: cgroups.iter().map(|s| s.to_string()).collect(),
            level: PressureLevel::Critical,
            resolve_after: std::time::Duration::from_secs(30),
            labels: Default::default(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn root_only_with_slash_and_globs_below() {
        let r = &compile(&[rule(&["/", "/kubepods/**"])])[0];
        assert!(r.matches(&CgroupPath::root()));
        assert!(r.matches(&CgroupPath::new("/kubepods/pod1234abcd/c")));
        assert!(!r.matches(&CgroupPath::new("/system.slice")));
        let r = &compile(&[rule(&["/**"])])[0];
        assert!(
            !r.matches(&CgroupPath::root()),
            "globs never match the root"
        );
    }
}
