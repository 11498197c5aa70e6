//! The triggers owner: rule x cgroup -> armed PSI trigger fds -> `RuleFired`
//! / `RuleEnded` news for the alert book.
//!
//! Its own task, with its own registry subscription and config receiver.
//! Each armed trigger has a tiny task of its own that waits on its fd
//! (registered with tokio) and reports here; disarming aborts that task,
//! which drops (closes) the fd. A trigger whose cgroup was removed reports
//! `Gone` once and its task ends at once, so removed cgroups cost nothing.
//!
//! Everything else that touches a file (opening and writing a trigger, the
//! hidden-file check, the pressure reads of attribution and `{{ value }}`)
//! runs in one `spawn_blocking` batch per burst of events, awaited here: the
//! owner handles its events in order, and the async workers only ever wait
//! on registered fds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cgroupfs::{CgroupPath, HierarchyId};
use crate::config::{Config, PsiKind};
use crate::registry::{Registry, RegistryEvent};

use super::attribution::{self, Reading, Samples};
use super::book::News;
use super::build::event_labels;
use super::metrics::{PsiMetrics, RuleLabels};
use super::rules::RuleRt;
use super::trigger::{Trigger, TriggerError, TriggerEvent};
use super::{Input, Inputs};

/// How often a trigger whose pressure file is hidden looks for it again.
///
/// Kernel quirk (Linux >= 6.1): writing 0 to a cgroup's `cgroup.pressure`
/// removes its `{cpu,memory,io,irq}.pressure` files while the cgroup lives
/// on; an armed trigger's fd then polls `POLLPRI | POLLERR`, as after rmdir.
/// Writing 1 brings them back, with no inotify event on the directory
/// watch, so the owner looks again on a timer: a stat per hidden trigger
/// every few seconds, nothing that spins.
const HIDDEN_RETRY: Duration = Duration::from_secs(5);

pub(crate) type Key = (Arc<str>, CgroupPath);

/// The armed triggers, as the handle shows them: (rule, cgroup) -> id.
pub(crate) type ArmedView = BTreeMap<(String, String), u64>;

struct Armed {
    id: u64,
    abort: AbortHandle,
    rule: Arc<RuleRt>,
    samples: Samples,
}

struct FdMsg {
    key: Key,
    id: u64,
    event: std::io::Result<TriggerEvent>,
}

/// One trigger to arm, prepared for the blocking pool.
struct ArmJob {
    key: Key,
    rule: Arc<RuleRt>,
    file: PathBuf,
    /// Only arm when the file is there again (a hidden trigger's retry).
    if_present: bool,
    leaves: Vec<(CgroupPath, PathBuf)>,
}

enum ArmResult {
    Done(Trigger, Vec<(CgroupPath, Option<Reading>)>),
    Hidden,
    StillHidden,
    Failed(TriggerError),
}

/// What the blocking pool is asked about a trigger's event.
enum FdJob {
    /// Read the cgroup's own pressure and its leaves'.
    Fired {
        key: Key,
        file: PathBuf,
        kind: PsiKind,
        leaves: Vec<(CgroupPath, PathBuf)>,
    },
    /// Tell a removal from hidden pressure files.
    Gone { key: Key, file: PathBuf },
}

enum FdDone {
    Fired {
        key: Key,
        value: Option<Reading>,
        readings: Vec<(CgroupPath, Option<Reading>)>,
    },
    Gone {
        key: Key,
        hidden: bool,
    },
}

pub(crate) struct Triggers {
    registry: Arc<Registry>,
    procfs: PathBuf,
    metrics: Arc<PsiMetrics>,
    unified_id: Option<HierarchyId>,
    unified_root: Option<PathBuf>,
    rules: Vec<Arc<RuleRt>>,
    /// The cgroup2 hierarchy's paths: new rules arm on them, attribution
    /// ranks their leaves.
    paths: BTreeSet<CgroupPath>,
    armed: HashMap<Key, Armed>,
    /// Triggers whose cgroup lives but whose pressure file is hidden
    /// (`HIDDEN_RETRY`): armed again when the file is back.
    hidden: HashSet<Key>,
    next_hidden_retry: Option<Instant>,
    warned: HashSet<(Arc<str>, &'static str)>,
    next_id: u64,
    fd_tx: mpsc::UnboundedSender<FdMsg>,
    fd_rx: mpsc::UnboundedReceiver<FdMsg>,
    out: mpsc::UnboundedSender<News>,
    view: watch::Sender<ArmedView>,
}

impl Triggers {
    pub(crate) fn new(
        registry: Arc<Registry>,
        procfs: PathBuf,
        config: &Config,
        metrics: Arc<PsiMetrics>,
        out: mpsc::UnboundedSender<News>,
        view: watch::Sender<ArmedView>,
    ) -> Triggers {
        let unified = registry.layout().unified().cloned();
        let (fd_tx, fd_rx) = mpsc::unbounded_channel();
        Triggers {
            registry,
            procfs,
            metrics,
            unified_id: unified.as_ref().map(|h| h.id),
            unified_root: unified.map(|h| h.root),
            rules: compile(config),
            paths: BTreeSet::new(),
            armed: HashMap::new(),
            hidden: HashSet::new(),
            next_hidden_retry: None,
            warned: HashSet::new(),
            next_id: 0,
            fd_tx,
            fd_rx,
            out,
            view,
        }
    }

    /// Runs until `shutdown`, then drops every trigger.
    pub(crate) async fn run(
        mut self,
        config: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) {
        let (initial, mut inputs) = Inputs::new(&self.registry, config);
        // Know the whole tree first, so parents armed now can sample the
        // children that already exist.
        for (hierarchy, path) in initial {
            if Some(hierarchy) == self.unified_id {
                self.paths.insert(path);
            }
        }
        let jobs = self
            .rules
            .clone()
            .iter()
            .flat_map(|r| self.jobs_for_rule(r))
            .collect();
        self.arm(jobs).await;
        info!(
            rules = self.rules.len(),
            armed = self.armed.len(),
            "PSI triggers armed"
        );
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                input = inputs.next() => match input {
                    Input::Registry(batch) => self.on_registry(batch).await,
                    Input::Config(cfg) => self.reload(&cfg).await,
                },
                Some(msg) = self.fd_rx.recv() => {
                    let mut batch = vec![msg];
                    while let Ok(m) = self.fd_rx.try_recv() {
                        batch.push(m);
                    }
                    self.on_fd(batch).await;
                }
                _ = super::sleep_until_opt(self.next_hidden_retry) => self.retry_hidden().await,
            }
        }
        for (_, a) in self.armed.drain() {
            a.abort.abort();
        }
    }

    fn send(&self, out: News) {
        let _ = self.out.send(out);
    }

    // === what to arm ===

    fn pressure_path(&self, rule: &RuleRt, path: &CgroupPath) -> Option<PathBuf> {
        if path.is_root() && rule.host {
            return Some(self.procfs.join("pressure").join(rule.rule.resource.name()));
        }
        let file = attribution::pressure_file(rule.rule.resource);
        self.unified_root
            .as_ref()
            .map(|r| r.join(path.relative()).join(file))
    }

    /// The leaves below `path` and their pressure files (at most
    /// `attribution::MAX_LEAVES`).
    fn leaves(&self, rule: &RuleRt, path: &CgroupPath) -> Vec<(CgroupPath, PathBuf)> {
        let Some(root) = &self.unified_root else {
            return Vec::new();
        };
        let below = self
            .paths
            .range(path.clone()..)
            .take_while(|p| p.as_str().starts_with(path.as_str()));
        let file = attribution::pressure_file(rule.rule.resource);
        attribution::leaves_below(path, below)
            .into_iter()
            .map(|l| {
                let f = root.join(l.relative()).join(&file);
                (l, f)
            })
            .collect()
    }

    fn job(&self, rule: &Arc<RuleRt>, path: &CgroupPath, if_present: bool) -> Option<ArmJob> {
        let key: Key = (rule.rule.name.as_str().into(), path.clone());
        if self.armed.contains_key(&key) {
            return None;
        }
        Some(ArmJob {
            file: self.pressure_path(rule, path)?,
            leaves: self.leaves(rule, path),
            rule: rule.clone(),
            key,
            if_present,
        })
    }

    /// Every cgroup a rule arms on, the host's pressure file for `/`.
    fn jobs_for_rule(&self, rule: &Arc<RuleRt>) -> Vec<ArmJob> {
        let host = rule.host.then(CgroupPath::root);
        let matching = self.paths.iter().filter(|p| rule.matches(p)).cloned();
        host.into_iter()
            .chain(matching)
            .filter_map(|p| self.job(rule, &p, false))
            .collect()
    }

    // === arming ===

    /// Arms a batch on the blocking pool (open, write, register, and the
    /// first sample of the leaves, so a fire soon after has deltas).
    async fn arm(&mut self, jobs: Vec<ArmJob>) {
        if jobs.is_empty() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|j| {
                    let r = arm_blocking(&j);
                    (j, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            warn!("trigger arming task failed");
            return;
        };
        for (job, result) in done {
            self.armed_one(job, result);
        }
    }

    fn armed_one(&mut self, job: ArmJob, result: ArmResult) {
        let ArmJob { key, rule, .. } = job;
        // The rule changed or the cgroup went while the batch ran.
        let current = self.rules.iter().any(|r| Arc::ptr_eq(r, &rule));
        let tracked = key.1.is_root() && rule.host || self.paths.contains(&key.1);
        if !current || !tracked || self.armed.contains_key(&key) {
            return;
        }
        let (trigger, readings) = match result {
            ArmResult::Done(t, r) => (t, r),
            ArmResult::Hidden => return self.hide(key),
            ArmResult::StillHidden => return,
            ArmResult::Failed(e) => {
                self.metrics.trigger_error(&rule.rule.name, e.reason());
                return self.log_arm_error(&rule, &key.1, &e);
            }
        };
        if self.hidden.remove(&key) {
            info!(rule = %rule.rule.name, cgroup = %key.1, "pressure files are back: trigger armed");
        }
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.fd_tx.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = trigger.next().await;
                let last = !matches!(event, Ok(TriggerEvent::Fired));
                let sent = tx.send(FdMsg {
                    key: task_key.clone(),
                    id,
                    event,
                });
                if last || sent.is_err() {
                    // Dropping the trigger here closes its fd at once: a
                    // removed cgroup's fd is never polled again.
                    return;
                }
            }
        });
        let mut samples = Samples::default();
        samples.update(std::time::Instant::now(), rule.rule.window * 3, readings);
        debug!(rule = %rule.rule.name, cgroup = %key.1, trigger = %rule.spec, id, "trigger armed");
        PsiMetrics::rule_gauge(&self.metrics.triggers_armed, &rule.rule.name, 1);
        self.view.send_modify(|v| {
            v.insert((rule.rule.name.clone(), key.1.to_string()), id);
        });
        self.armed.insert(
            key,
            Armed {
                id,
                abort: task.abort_handle(),
                rule,
                samples,
            },
        );
    }

    /// A trigger whose cgroup hides its pressure files: counted, logged, and
    /// looked for again every `HIDDEN_RETRY` until they are back.
    fn hide(&mut self, key: Key) {
        if !self.hidden.insert(key.clone()) {
            return;
        }
        self.metrics.trigger_error(&key.0, "hidden");
        info!(
            rule = %key.0,
            cgroup = %key.1,
            "pressure files hidden (cgroup.pressure is 0): the trigger is armed when they are back"
        );
        if self.next_hidden_retry.is_none() {
            self.next_hidden_retry = Some(Instant::now() + HIDDEN_RETRY);
        }
    }

    /// Arms the hidden triggers whose pressure files are back; forgets those
    /// whose rule or cgroup is gone.
    async fn retry_hidden(&mut self) {
        self.next_hidden_retry = None;
        let keys: Vec<Key> = self.hidden.iter().cloned().collect();
        let mut jobs = Vec::new();
        for key in keys {
            let rule = self
                .rules
                .iter()
                .find(|r| *r.rule.name == *key.0 && r.matches(&key.1))
                .cloned();
            match rule.filter(|_| self.paths.contains(&key.1)) {
                Some(rule) => jobs.extend(self.job(&rule, &key.1, true)),
                None => {
                    self.hidden.remove(&key);
                }
            }
        }
        // Leaves `hidden` on success; back in it if hidden again.
        self.arm(jobs).await;
        if !self.hidden.is_empty() {
            self.next_hidden_retry = Some(Instant::now() + HIDDEN_RETRY);
        }
    }

    fn log_arm_error(&mut self, rule: &RuleRt, path: &CgroupPath, e: &TriggerError) {
        match e {
            // Raced with rmdir: the Removed event follows.
            TriggerError::Vanished { .. } => {
                debug!(rule = %rule.rule.name, cgroup = %path, error = %e, "trigger not armed")
            }
            _ => {
                // Invalid and unsupported repeat for every cgroup: say it once per rule.
                if self
                    .warned
                    .insert((rule.rule.name.as_str().into(), e.reason()))
                {
                    warn!(rule = %rule.rule.name, cgroup = %path, error = %e, "trigger not armed (further errors of this kind for this rule are only counted)");
                } else {
                    debug!(rule = %rule.rule.name, cgroup = %path, error = %e, "trigger not armed");
                }
            }
        }
    }

    /// Drops a trigger; its alert resolves in the book. `why` is for the log.
    fn disarm(&mut self, key: &Key, why: &'static str) {
        let Some(a) = self.armed.remove(key) else {
            return;
        };
        a.abort.abort();
        let name = &a.rule.rule.name;
        PsiMetrics::rule_gauge(&self.metrics.triggers_armed, name, -1);
        self.metrics
            .trigger_events
            .remove(&event_labels(&a.rule, &key.1));
        self.view.send_modify(|v| {
            v.remove(&(name.clone(), key.1.to_string()));
        });
        self.send(News::RuleEnded {
            rule: key.0.clone(),
            path: key.1.clone(),
            why,
        });
        debug!(rule = %name, cgroup = %key.1, why, "trigger disarmed");
    }

    // === events ===

    async fn on_registry(&mut self, batch: Vec<RegistryEvent>) {
        let mut jobs = Vec::new();
        for ev in batch {
            match ev {
                RegistryEvent::Added { path, hierarchy } if Some(hierarchy) == self.unified_id => {
                    self.paths.insert(path.clone());
                    for rule in self.rules.clone() {
                        if rule.matches(&path) {
                            jobs.extend(self.job(&rule, &path, false));
                        }
                    }
                }
                RegistryEvent::Removed { path, hierarchy }
                    if Some(hierarchy) == self.unified_id =>
                {
                    // Arm what came before the removal first, so the
                    // removal also drops it.
                    self.arm(std::mem::take(&mut jobs)).await;
                    self.paths.remove(&path);
                    self.hidden.retain(|k| k.1 != path);
                    for rule in self.rules.clone() {
                        if !(rule.host && path.is_root()) {
                            self.disarm(&(rule.rule.name.as_str().into(), path.clone()), "removed");
                        }
                    }
                }
                _ => {}
            }
        }
        self.arm(jobs).await;
    }

    async fn on_fd(&mut self, batch: Vec<FdMsg>) {
        let mut jobs = Vec::new();
        for FdMsg { key, id, event } in batch {
            let Some(a) = self.armed.get(&key).filter(|a| a.id == id) else {
                continue; // from a trigger since dropped
            };
            let Some(file) = self.pressure_path(&a.rule, &key.1) else {
                continue;
            };
            match event {
                Ok(TriggerEvent::Fired) => {
                    self.metrics
                        .trigger_events
                        .get_or_create(&event_labels(&a.rule, &key.1))
                        .inc();
                    let leaves = self.leaves(&a.rule, &key.1);
                    let kind = a.rule.rule.kind;
                    jobs.push(FdJob::Fired {
                        key,
                        file,
                        kind,
                        leaves,
                    });
                }
                Ok(TriggerEvent::Gone) => jobs.push(FdJob::Gone { key, file }),
                Err(e) => {
                    self.metrics.trigger_error(&key.0, "poll");
                    warn!(rule = %key.0, cgroup = %key.1, error = %e, "trigger poll failed: disarmed");
                    self.disarm(&key, "poll failed");
                }
            }
        }
        if jobs.is_empty() {
            return;
        }
        let Ok(done) = tokio::task::spawn_blocking(move || {
            jobs.into_iter().map(FdJob::run).collect::<Vec<_>>()
        })
        .await
        else {
            warn!("trigger event task failed");
            return;
        };
        for d in done {
            match d {
                FdDone::Fired {
                    key,
                    value,
                    readings,
                } => {
                    let Some(a) = self.armed.get_mut(&key) else {
                        continue;
                    };
                    let recent = a.rule.rule.window * 3;
                    let weights = a
                        .samples
                        .update(std::time::Instant::now(), recent, readings);
                    let _ = self.out.send(News::RuleFired {
                        rule: a.rule.clone(),
                        path: key.1,
                        value: value.map(|r| r.avg10),
                        contributors: attribution::rank(&weights),
                    });
                }
                FdDone::Gone { key, hidden: true } => {
                    // The cgroup is there, its pressure file is not:
                    // hidden with `cgroup.pressure`, not removed. Counted
                    // before the armed set is published without it, so
                    // whoever sees the trigger gone also sees why.
                    self.hide(key.clone());
                    self.disarm(&key, "pressure files hidden");
                }
                FdDone::Gone { key, hidden: false } => {
                    debug!(rule = %key.0, cgroup = %key.1, "trigger reports its cgroup gone");
                    self.disarm(&key, "cgroup removed");
                }
            }
        }
    }

    /// New rules: changed or removed ones are disarmed (their alerts
    /// resolve), new ones armed; unchanged ones keep their triggers.
    async fn reload(&mut self, cfg: &Config) {
        let new = compile(cfg);
        let (mut kept, mut removed, mut added) = (0, 0, 0);
        for old in self.rules.clone() {
            if new.iter().any(|n| n.rule == old.rule) {
                kept += 1;
                continue;
            }
            let keys: Vec<Key> = self
                .armed
                .keys()
                .filter(|k| *k.0 == *old.rule.name)
                .cloned()
                .collect();
            for k in keys {
                self.disarm(&k, "rule changed or removed");
            }
            removed += 1;
        }
        // A rule gone by name leaves no stale series behind.
        let gone: Vec<String> = self
            .rules
            .iter()
            .filter(|o| !new.iter().any(|n| n.rule.name == o.rule.name))
            .map(|o| o.rule.name.clone())
            .collect();
        for name in &gone {
            self.metrics
                .triggers_armed
                .remove(&RuleLabels { rule: name.clone() });
        }
        if !gone.is_empty() {
            self.send(News::RulesGone(gone));
        }
        // Keep the running `Arc` of unchanged rules: a batch in flight
        // checks its rule by identity.
        let old_rules = std::mem::take(&mut self.rules);
        self.rules = new
            .into_iter()
            .map(|n| {
                old_rules
                    .iter()
                    .find(|o| o.rule == n.rule)
                    .cloned()
                    .unwrap_or(n)
            })
            .collect();
        let mut jobs = Vec::new();
        for rule in self.rules.clone() {
            if !old_rules.iter().any(|o| Arc::ptr_eq(o, &rule)) {
                jobs.extend(self.jobs_for_rule(&rule));
                added += 1;
            }
        }
        self.arm(jobs).await;
        info!(
            kept,
            removed,
            added,
            armed = self.armed.len(),
            "PSI rules reloaded"
        );
    }
}

fn compile(config: &Config) -> Vec<Arc<RuleRt>> {
    config
        .psi
        .rules
        .iter()
        .map(|r| Arc::new(RuleRt::new(r.clone())))
        .collect()
}

impl FdJob {
    /// On the blocking pool.
    fn run(self) -> FdDone {
        match self {
            FdJob::Fired {
                key,
                file,
                kind,
                leaves,
            } => FdDone::Fired {
                key,
                value: attribution::read_pressure(&file, kind),
                readings: read_leaves(leaves, kind),
            },
            FdJob::Gone { key, file } => FdDone::Gone {
                key,
                hidden: pressure_hidden(&file),
            },
        }
    }
}

fn read_leaves(
    leaves: Vec<(CgroupPath, PathBuf)>,
    kind: PsiKind,
) -> Vec<(CgroupPath, Option<Reading>)> {
    leaves
        .into_iter()
        .map(|(l, f)| {
            let r = attribution::read_pressure(&f, kind);
            (l, r)
        })
        .collect()
}

/// On the blocking pool: opens and writes the trigger, registers its fd
/// (the pool's threads are inside the runtime), samples the leaves.
fn arm_blocking(job: &ArmJob) -> ArmResult {
    if job.if_present && !super::exists(&job.file) {
        return ArmResult::StillHidden;
    }
    match Trigger::arm(&job.file, &job.rule.spec) {
        Ok(t) => ArmResult::Done(t, read_leaves(job.leaves.clone(), job.rule.rule.kind)),
        Err(TriggerError::Vanished { .. } | TriggerError::Unsupported { .. })
            if pressure_hidden(&job.file) =>
        {
            ArmResult::Hidden
        }
        Err(e) => ArmResult::Failed(e),
    }
}

/// Whether a pressure file is missing because its cgroup hides it
/// (`cgroup.pressure` reads 0), rather than because the cgroup is gone or
/// the kernel lacks that resource (`irq.pressure` without
/// `CONFIG_IRQ_TIME_ACCOUNTING`). Blocking.
#[allow(
    clippy::disallowed_methods,
    reason = "called only on the blocking pool (arm_blocking, FdJob::run)"
)]
fn pressure_hidden(pressure_file: &Path) -> bool {
    pressure_file
        .parent()
        .and_then(|d| std::fs::read_to_string(d.join("cgroup.pressure")).ok())
        .is_some_and(|v| v.trim() == "0")
}
