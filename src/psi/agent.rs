//! The agent task: registry events in, triggers armed and dropped, trigger
//! events through the alert state machine, alerts out to the notifier.
//!
//! One task owns all state (no locks on the hot path). Each armed trigger
//! and each v1 OOM watch has a tiny task of its own that waits on its fd and
//! reports to the agent over a channel; disarming aborts that task, which
//! drops (closes) the fd. A trigger whose cgroup was removed reports `Gone`
//! once and its task ends at once, so removed cgroups cost nothing: while
//! no alert is firing, the agent sleeps until the next event.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::alerting::{Alert, Contributor, Notifier};
use crate::cgroupfs::{CgroupPath, Controller, HierarchyId, Mode};
use crate::config::{AlertingConfig, Config};
use crate::registry::{Registry, RegistryEvent};

use super::attribution::{self, Samples};
use super::build::{self, event_labels, node_name, valid_label_name, Listen};
use super::levels::{LevelMsg, LevelRules};
use super::limits::LimitAlerts;
use super::metrics::{PsiMetrics, RuleLabels};
use super::oom::{OomEvent, OomV1, OomV2};
use super::rules::RuleRt;
use super::state::{AlertState, Transition};
use super::status::{status_lock, SharedStatus};
use super::trigger::{Trigger, TriggerError, TriggerEvent};
use crate::config::render_template;

/// An OOM-kill alert is a one-shot event: it ends by itself after this.
pub const OOM_ALERT_TTL: Duration = Duration::from_secs(300);
/// Grace given to a notifier replaced by a config reload.
const RELOAD_GRACE: Duration = Duration::from_secs(5);
/// How often a trigger whose pressure file is hidden looks for it again.
///
/// Kernel quirk (Linux >= 6.1): writing 0 to a cgroup's `cgroup.pressure`
/// removes its `{cpu,memory,io,irq}.pressure` files while the cgroup lives
/// on; an armed trigger's fd then polls `POLLPRI | POLLERR`, as after rmdir.
/// Writing 1 brings them back, with no inotify event on the directory
/// watch, so the agent looks again on a timer: a stat per hidden trigger
/// every few seconds, nothing that spins.
const HIDDEN_RETRY: Duration = Duration::from_secs(5);

pub const OOM_ALERTNAME: &str = "CgroupOOMKill";

/// Every alert the agent sends carries `generator="cgroup-psi-exporter"`,
/// so an Alertmanager route can match the agent's alerts (and only them)
/// whatever the rules are called (examples/alertmanager.yml). Config
/// validation refuses a rule label of that name.
pub const GENERATOR_LABEL: (&str, &str) = ("generator", "cgroup-psi-exporter");

type Key = (Arc<str>, CgroupPath);

enum Msg {
    Trigger {
        key: Key,
        id: u64,
        event: std::io::Result<TriggerEvent>,
    },
    OomV1 {
        path: CgroupPath,
        id: u64,
        event: OomEvent,
    },
}

struct Armed {
    id: u64,
    abort: AbortHandle,
    rule: Arc<RuleRt>,
    state: AlertState,
    samples: Samples,
    samples_recent: Duration,
    /// The firing alert, as last sent.
    alert: Option<Alert>,
}

pub(crate) struct Agent {
    registry: Arc<Registry>,
    procfs: PathBuf,
    metrics: Arc<PsiMetrics>,
    node: String,
    listen: Option<Listen>,
    alerting: AlertingConfig,
    oom_enabled: bool,
    rules: Vec<Arc<RuleRt>>,
    armed: HashMap<Key, Armed>,
    oom_v1: HashMap<CgroupPath, (u64, AbortHandle)>,
    /// v1 watches of cgroups the registry dropped, by id: they report a
    /// last OOM kill (if any) and `Gone` by themselves.
    /// v1 OOM watches of removed cgroups, until their eventfd reports the
    /// removal or their grace (`oom::RETIRE_GRACE`) ends.
    oom_v1_leaving: HashMap<u64, (AbortHandle, Instant)>,
    oom_v2: Option<OomV2>,
    oom_v2_watched: HashSet<CgroupPath>,
    /// v2 watches of cgroups the registry dropped, until inotify ends them.
    oom_v2_leaving: HashSet<CgroupPath>,
    oom_v2_rx: mpsc::UnboundedReceiver<(CgroupPath, OomEvent)>,
    oom_v2_tx: mpsc::UnboundedSender<(CgroupPath, OomEvent)>,
    notifier: Notifier,
    /// `psi.pressure_levels`: v1 memory pressure level watches and alerts.
    levels: LevelRules,
    levels_rx: mpsc::UnboundedReceiver<LevelMsg>,
    /// `alerting.memory_events`: v2 `high`/`max` alerts.
    limits: LimitAlerts,
    msg_tx: mpsc::UnboundedSender<Msg>,
    msg_rx: mpsc::UnboundedReceiver<Msg>,
    next_id: u64,
    next_resend: Option<Instant>,
    /// Paths in the cgroup2 hierarchy and in the v1 memory hierarchy.
    unified: BTreeSet<CgroupPath>,
    memory_v1: BTreeSet<CgroupPath>,
    unified_id: Option<HierarchyId>,
    unified_root: Option<PathBuf>,
    memory_v1_id: Option<HierarchyId>,
    memory_v1_root: Option<PathBuf>,
    v2_mode: bool,
    warned: HashSet<(Arc<str>, &'static str)>,
    /// Triggers whose cgroup lives but whose pressure file is hidden
    /// (`HIDDEN_RETRY`): armed again when the file is back.
    hidden: HashSet<Key>,
    next_hidden_retry: Option<Instant>,
    status: SharedStatus,
}

impl Agent {
    pub(crate) fn new(
        registry: Arc<Registry>,
        procfs: PathBuf,
        config: &Config,
        metrics: Arc<PsiMetrics>,
        status: SharedStatus,
        listen: Option<Listen>,
    ) -> Agent {
        let layout = registry.layout().clone();
        let unified = layout.unified();
        let memory_v1 = layout.v1(Controller::Memory);
        let (msg_tx, msg_rx) = mpsc::unbounded_channel();
        let (oom_v2_tx, oom_v2_rx) = mpsc::unbounded_channel();
        let node = node_name(&procfs);
        let notifier = Notifier::new(&config.alerting, metrics.alerting.clone());
        let (levels_tx, levels_rx) = mpsc::unbounded_channel();
        let levels = LevelRules::new(
            &config.psi.pressure_levels,
            memory_v1.map(|h| h.root.clone()),
            node.clone(),
            levels_tx,
        );
        Agent {
            levels,
            levels_rx,
            limits: LimitAlerts::new(&config.alerting.memory_events),
            unified_id: unified.map(|h| h.id),
            unified_root: unified.map(|h| h.root.clone()),
            memory_v1_id: memory_v1.map(|h| h.id),
            memory_v1_root: memory_v1.map(|h| h.root.clone()),
            v2_mode: layout.mode == Mode::V2,
            registry,
            procfs,
            metrics,
            node,
            listen,
            alerting: config.alerting.clone(),
            oom_enabled: config.alerting.oom_kills,
            rules: config
                .psi
                .rules
                .iter()
                .map(|r| Arc::new(RuleRt::new(r.clone())))
                .collect(),
            armed: HashMap::new(),
            oom_v1: HashMap::new(),
            oom_v1_leaving: HashMap::new(),
            oom_v2: None,
            oom_v2_watched: HashSet::new(),
            oom_v2_leaving: HashSet::new(),
            oom_v2_rx,
            oom_v2_tx,
            notifier,
            msg_tx,
            msg_rx,
            next_id: 0,
            next_resend: None,
            unified: BTreeSet::new(),
            memory_v1: BTreeSet::new(),
            warned: HashSet::new(),
            hidden: HashSet::new(),
            next_hidden_retry: None,
            status,
        }
    }

    /// Runs until `shutdown`; returns the notifier so the caller can flush
    /// it within its grace period.
    pub(crate) async fn run(
        mut self,
        mut config: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) -> Notifier {
        let (initial, mut reg_rx) = self.registry.subscribe();
        // Know the whole tree first, so parents armed now can sample the
        // children that already exist.
        for ev in &initial {
            if let RegistryEvent::Added { path, hierarchy } = ev {
                self.track(*hierarchy, path, true);
            }
        }
        self.arm_all();
        for p in &self.memory_v1 {
            self.levels.track(p);
        }
        info!(
            rules = self.rules.len(),
            armed = self.armed.len(),
            pressure_level_watches = self.levels.armed(),
            oom_watched = self.oom_v1.len() + self.oom_v2_watched.len(),
            node = %self.node,
            "PSI agent started"
        );
        let mut config_open = true;
        let mut registry_open = true;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                ev = reg_rx.recv(), if registry_open => match ev {
                    Some(ev) => self.on_registry(ev),
                    None => registry_open = false,
                },
                Some(msg) = self.msg_rx.recv() => self.on_msg(msg),
                Some((path, ev)) = self.oom_v2_rx.recv() => self.on_oom_v2(path, ev),
                Some(m) = self.levels_rx.recv() => {
                    if let Some(alert) = self.levels.on_msg(m, &self.generator_url()) {
                        self.notify_new(&alert);
                    }
                }
                changed = config.changed(), if config_open => match changed {
                    Ok(()) => {
                        let cfg = config.borrow_and_update().clone();
                        self.reload(&cfg);
                    }
                    Err(_) => config_open = false,
                },
                _ = sleep_until_opt(wake) => self.on_tick(),
            }
        }
        info!(firing = self.firing_count(), "PSI agent stopping");
        for (_, a) in self.armed.drain() {
            a.abort.abort();
        }
        for (_, (_, abort)) in self.oom_v1.drain() {
            abort.abort();
        }
        for (_, (abort, _)) in self.oom_v1_leaving.drain() {
            abort.abort();
        }
        self.levels.stop();
        self.notifier
    }

    // === registry ===

    /// Records a path; returns nothing. `quiet` skips arming (initial pass).
    fn track(&mut self, hierarchy: HierarchyId, path: &CgroupPath, quiet: bool) {
        if Some(hierarchy) == self.unified_id {
            self.unified.insert(path.clone());
            if !quiet {
                for rule in self.rules.clone() {
                    if rule.matches(path) {
                        self.arm(&rule, path);
                    }
                }
                if self.v2_mode && self.v2_watch() {
                    self.arm_oom_v2(path);
                }
            }
        }
        if Some(hierarchy) == self.memory_v1_id {
            self.memory_v1.insert(path.clone());
            if !quiet && self.oom_enabled {
                self.arm_oom_v1(path);
            }
            if !quiet {
                self.levels.track(path);
            }
        }
    }

    fn on_registry(&mut self, ev: RegistryEvent) {
        match ev {
            RegistryEvent::Added { path, hierarchy } => self.track(hierarchy, &path, false),
            RegistryEvent::Removed { path, hierarchy } => {
                if Some(hierarchy) == self.unified_id {
                    self.unified.remove(&path);
                    self.hidden.retain(|k| k.1 != path);
                    for rule in self.rules.clone() {
                        if !(rule.host && path.is_root()) {
                            self.disarm(&(rule.rule.name.as_str().into(), path.clone()), "removed");
                        }
                    }
                    // OOM watches stay for a grace: an OOM kill just
                    // before the removal (a container cleaned up after it)
                    // is still on its way. Then the watcher removes the
                    // watch and reports `Gone` (`oom::RETIRE_GRACE`: the
                    // kernel does not always end it itself).
                    if self.oom_v2_watched.remove(&path) {
                        self.oom_v2_leaving.insert(path.clone());
                        self.oom_status(&path, false);
                        if let Some(w) = &self.oom_v2 {
                            w.retire(path.clone());
                        }
                    }
                }
                if Some(hierarchy) == self.memory_v1_id {
                    // As above: the eventfd is signalled as the cgroup
                    // goes, and the watch reports any OOM before `Gone`.
                    self.memory_v1.remove(&path);
                    for alert in self.levels.untrack(&path) {
                        self.notifier.notify(&alert);
                    }
                    // The watch normally ends within about a second, when
                    // its eventfd reports the removal. The grace bounds it
                    // anyway, so an eventfd that is never signalled (one
                    // registered as the cgroup was going away) cannot pin
                    // its descriptors forever.
                    if let Some((id, abort)) = self.oom_v1.remove(&path) {
                        let until = Instant::now() + crate::psi::oom::RETIRE_GRACE;
                        self.oom_v1_leaving.insert(id, (abort, until));
                        self.oom_status(&path, false);
                    }
                }
            }
        }
    }

    /// Arms every rule on every matching cgroup, host rules on the host,
    /// and OOM watches: at start and after a reload.
    fn arm_all(&mut self) {
        for rule in self.rules.clone() {
            self.arm_rule(&rule);
        }
        self.arm_all_oom();
    }

    fn arm_rule(&mut self, rule: &Arc<RuleRt>) {
        if rule.host {
            self.arm(rule, &CgroupPath::root());
        }
        let paths: Vec<CgroupPath> = self
            .unified
            .iter()
            .filter(|p| rule.matches(p))
            .cloned()
            .collect();
        for p in paths {
            self.arm(rule, &p);
        }
    }

    /// The v2 `memory.events` watch serves OOM kills and limit alerts.
    fn v2_watch(&self) -> bool {
        self.oom_enabled || self.limits.enabled()
    }

    fn arm_all_oom(&mut self) {
        if self.oom_enabled {
            for p in self.memory_v1.clone() {
                self.arm_oom_v1(&p);
            }
        }
        if self.v2_mode && self.v2_watch() {
            for p in self.unified.clone() {
                self.arm_oom_v2(&p);
            }
        }
    }

    // === triggers ===

    fn pressure_path(&self, rule: &RuleRt, path: &CgroupPath) -> Option<PathBuf> {
        let file = attribution::pressure_file(rule.rule.resource);
        if path.is_root() && rule.host {
            return Some(self.procfs.join("pressure").join(rule.rule.resource.name()));
        }
        self.unified_root
            .as_ref()
            .map(|r| r.join(path.relative()).join(file))
    }

    fn arm(&mut self, rule: &Arc<RuleRt>, path: &CgroupPath) {
        let key: Key = (rule.rule.name.as_str().into(), path.clone());
        if self.armed.contains_key(&key) {
            return;
        }
        let Some(file) = self.pressure_path(rule, path) else {
            return;
        };
        let trigger = match Trigger::arm(&file, &rule.spec) {
            Ok(t) => t,
            Err(TriggerError::Vanished { .. }) if pressure_hidden(&file) => {
                self.hide(key);
                return;
            }
            Err(e) => {
                self.metrics.trigger_error(&rule.rule.name, e.reason());
                self.log_arm_error(rule, path, &e);
                return;
            }
        };
        if self.hidden.remove(&key) {
            info!(rule = %rule.rule.name, cgroup = %path, "pressure files are back: trigger armed");
        }
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.msg_tx.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = trigger.next().await;
                let last = !matches!(event, Ok(TriggerEvent::Fired));
                let sent = tx.send(Msg::Trigger {
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
        let mut armed = Armed {
            id,
            abort: task.abort_handle(),
            rule: rule.clone(),
            state: AlertState::new(rule.rule.resolve_after),
            samples: Samples::default(),
            samples_recent: rule.rule.window * 3,
            alert: None,
        };
        // Sample the children now, so a fire soon after has deltas.
        let _ = self.attribute(&mut armed, path);
        self.armed.insert(key, armed);
        PsiMetrics::rule_gauge(&self.metrics.triggers_armed, &rule.rule.name, 1);
        status_lock(&self.status)
            .armed
            .insert((rule.rule.name.clone(), path.to_string()), id);
        debug!(rule = %rule.rule.name, cgroup = %path, trigger = %rule.spec, id, "trigger armed");
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
    fn retry_hidden(&mut self) {
        self.next_hidden_retry = None;
        let keys: Vec<Key> = self.hidden.iter().cloned().collect();
        for key in keys {
            let rule = self
                .rules
                .iter()
                .find(|r| *r.rule.name == *key.0 && r.matches(&key.1))
                .cloned();
            let Some(rule) = rule.filter(|_| self.unified.contains(&key.1)) else {
                self.hidden.remove(&key);
                continue;
            };
            if self
                .pressure_path(&rule, &key.1)
                .is_some_and(|f| f.exists())
            {
                // Leaves `hidden` on success; back in it if hidden again.
                self.arm(&rule, &key.1);
            }
        }
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

    /// Drops a trigger and resolves its alert. `why` is for the log.
    fn disarm(&mut self, key: &Key, why: &'static str) {
        let Some(mut a) = self.armed.remove(key) else {
            return;
        };
        a.abort.abort();
        let name = a.rule.rule.name.clone();
        PsiMetrics::rule_gauge(&self.metrics.triggers_armed, &name, -1);
        self.metrics
            .trigger_events
            .remove(&event_labels(&a.rule, &key.1));
        status_lock(&self.status)
            .armed
            .remove(&(name.clone(), key.1.to_string()));
        if let Some(Transition::Resolved { ends_at, .. }) = a.state.force_resolve(SystemTime::now())
        {
            self.send_resolved(&mut a, &key.1, ends_at, why);
        }
        debug!(rule = %name, cgroup = %key.1, why, "trigger disarmed");
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Trigger { key, id, event } => {
                if self.armed.get(&key).map(|a| a.id) != Some(id) {
                    return; // from a trigger since dropped
                }
                match event {
                    Ok(TriggerEvent::Fired) => self.on_fired(&key),
                    Ok(TriggerEvent::Gone) => {
                        let file = self
                            .armed
                            .get(&key)
                            .and_then(|a| self.pressure_path(&a.rule, &key.1));
                        if file.as_deref().is_some_and(pressure_hidden) {
                            // The cgroup is there, its pressure file is not:
                            // hidden with `cgroup.pressure`, not removed.
                            self.disarm(&key, "pressure files hidden");
                            self.hide(key);
                        } else {
                            debug!(rule = %key.0, cgroup = %key.1, "trigger reports its cgroup gone");
                            self.disarm(&key, "cgroup removed");
                        }
                    }
                    Err(e) => {
                        self.metrics.trigger_error(&key.0, "poll");
                        warn!(rule = %key.0, cgroup = %key.1, error = %e, "trigger poll failed: disarmed");
                        self.disarm(&key, "poll failed");
                    }
                }
            }
            Msg::OomV1 { path, id, event } => {
                let current = self.oom_v1.get(&path).map(|(i, _)| *i) == Some(id);
                if !current && !self.oom_v1_leaving.contains_key(&id) {
                    return;
                }
                let ended = match event {
                    OomEvent::Kill {
                        count,
                        delta,
                        removed,
                    } => {
                        self.send_oom(&path, count, delta, removed);
                        false
                    }
                    OomEvent::Limit { .. } => false, // v2 only
                    OomEvent::Gone => true,
                    OomEvent::Failed(e) => {
                        warn!(cgroup = %path, error = %e, "OOM watch failed");
                        true
                    }
                };
                if ended {
                    self.oom_v1_leaving.remove(&id);
                    if current {
                        self.oom_v1.remove(&path);
                        self.oom_status(&path, false);
                    }
                }
            }
        }
    }

    fn on_fired(&mut self, key: &Key) {
        let Some(mut a) = self.armed.remove(key) else {
            return;
        };
        let path = &key.1;
        self.metrics
            .trigger_events
            .get_or_create(&event_labels(&a.rule, path))
            .inc();
        let contributors = self.attribute(&mut a, path);
        let now = Instant::now();
        let wall = SystemTime::now();
        match a.state.fired(now.into_std(), wall) {
            Some(Transition::Fired { starts_at }) => {
                let alert = self.build_alert(&a.rule, path, starts_at, contributors);
                info!(
                    alertname = %a.rule.rule.name,
                    cgroup = %path,
                    resource = a.rule.rule.resource.name(),
                    kind = a.rule.rule.kind.name(),
                    top_contributors = alert.annotations.get("top_contributors").map(String::as_str).unwrap_or(""),
                    "alert firing"
                );
                self.notify_new(&alert);
                a.alert = Some(alert);
                PsiMetrics::rule_gauge(&self.metrics.alerts_firing, &a.rule.rule.name, 1);
                status_lock(&self.status)
                    .firing
                    .insert((a.rule.rule.name.clone(), path.to_string()));
            }
            _ => {
                // Still firing: keep the newest attribution for re-sends.
                if let Some(alert) = a.alert.as_mut() {
                    if !contributors.is_empty() {
                        alert.annotations.insert(
                            "top_contributors".into(),
                            attribution::annotation(&contributors),
                        );
                        alert.contributors = contributors;
                    }
                }
            }
        }
        self.armed.insert(key.clone(), a);
    }

    /// Samples the leaves below `path` and ranks them.
    fn attribute(&self, a: &mut Armed, path: &CgroupPath) -> Vec<Contributor> {
        let Some(root) = &self.unified_root else {
            return Vec::new();
        };
        let below = self
            .unified
            .range(path.clone()..)
            .take_while(|p| p.as_str().starts_with(path.as_str()));
        let leaves = attribution::leaves_below(path, below);
        if leaves.is_empty() {
            return Vec::new();
        }
        let file = attribution::pressure_file(a.rule.rule.resource);
        let kind = a.rule.rule.kind;
        let readings = leaves
            .into_iter()
            .map(|l| {
                let r = attribution::read_pressure(&root.join(l.relative()).join(&file), kind);
                (l, r)
            })
            .collect();
        let weights = a
            .samples
            .update(Instant::now().into_std(), a.samples_recent, readings);
        attribution::rank(&weights)
    }

    // === alerts ===

    fn build_alert(
        &self,
        rule: &RuleRt,
        path: &CgroupPath,
        starts_at: SystemTime,
        contributors: Vec<Contributor>,
    ) -> Alert {
        // Alertmanager refuses a whole batch over one bad label name, so
        // such labels are left out (config validation should catch them).
        let mut labels: BTreeMap<String, String> = rule
            .rule
            .labels
            .iter()
            .filter(|(k, _)| valid_label_name(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert("alertname".into(), rule.rule.name.clone());
        labels.insert("resource".into(), rule.rule.resource.name().into());
        labels.insert("kind".into(), rule.rule.kind.name().into());
        self.identity_labels(&mut labels, path);
        let threshold = humantime::format_duration(rule.rule.threshold).to_string();
        let window = humantime::format_duration(rule.rule.window).to_string();
        // `{{ value }}`: the cgroup's own avg10 (%) for the rule's resource
        // and kind as the alert starts.
        let value = self
            .pressure_path(rule, path)
            .and_then(|f| attribution::read_pressure(&f, rule.rule.kind))
            .map(|r| format!("{:.2}", r.avg10))
            .unwrap_or_default();
        let mut vars: Vec<(&str, &str)> = vec![
            ("value", value.as_str()),
            ("rule", rule.rule.name.as_str()),
            ("resource", rule.rule.resource.name()),
            ("kind", rule.rule.kind.name()),
            ("threshold", threshold.as_str()),
            ("window", window.as_str()),
        ];
        for (k, v) in &labels {
            if !vars.iter().any(|(n, _)| n == k) {
                vars.push((k.as_str(), v.as_str()));
            }
        }
        let mut annotations: BTreeMap<String, String> = rule
            .rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), render_template(v, &vars)))
            .collect();
        if !contributors.is_empty() {
            annotations.insert(
                "top_contributors".into(),
                attribution::annotation(&contributors),
            );
        }
        Alert {
            labels,
            annotations,
            starts_at,
            ends_at: None,
            generator_url: self.generator_url(),
            contributors,
        }
    }

    /// `cgroup`, `node` and the registry's Kubernetes/systemd labels.
    fn identity_labels(&self, labels: &mut BTreeMap<String, String>, path: &CgroupPath) {
        labels.insert("cgroup".into(), path.to_string());
        labels.insert("node".into(), self.node.clone());
        // A cgroup removed from the registry (an OOM-killed container
        // already cleaned up) still has the labels its path implies.
        let path_labels = match self.registry.get(path) {
            Some(entry) => entry.labels.clone(),
            None => crate::kubernetes::path::from_path(path),
        };
        for (k, v) in path_labels.pairs() {
            labels.insert(k.into(), v.into());
        }
        labels.insert(GENERATOR_LABEL.0.into(), GENERATOR_LABEL.1.into());
    }

    /// Sends a newly firing alert and makes sure re-sends are scheduled.
    fn notify_new(&mut self, alert: &Alert) {
        self.notifier.notify(alert);
        if self.next_resend.is_none() {
            self.next_resend = Some(Instant::now() + self.alerting.resend_interval);
        }
    }

    fn generator_url(&self) -> String {
        build::generator_url(&self.alerting.external_url, self.listen, &self.node)
    }

    fn send_resolved(&mut self, a: &mut Armed, path: &CgroupPath, ends_at: SystemTime, why: &str) {
        let Some(mut alert) = a.alert.take() else {
            return;
        };
        alert.ends_at = Some(ends_at);
        info!(alertname = %a.rule.rule.name, cgroup = %path, why, "alert resolved");
        self.notifier.notify(&alert);
        PsiMetrics::rule_gauge(&self.metrics.alerts_firing, &a.rule.rule.name, -1);
        status_lock(&self.status)
            .firing
            .remove(&(a.rule.rule.name.clone(), path.to_string()));
    }

    fn firing_count(&self) -> usize {
        self.armed.values().filter(|a| a.alert.is_some()).count()
    }

    fn next_wake(&self) -> Option<Instant> {
        let resolve = self
            .armed
            .values()
            .filter_map(|a| a.state.deadline())
            .chain(self.levels.deadline())
            .chain(self.limits.deadline())
            .min()
            .map(Instant::from_std);
        let v1_leaving = self.oom_v1_leaving.values().map(|(_, until)| *until).min();
        [
            resolve,
            self.next_resend,
            self.next_hidden_retry,
            v1_leaving,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if self.next_hidden_retry.is_some_and(|t| t <= now) {
            self.retry_hidden();
        }
        self.oom_v1_leaving.retain(|_, (abort, until)| {
            let keep = *until > now;
            if !keep {
                // Dropping the task closes its eventfd and
                // memory.oom_control.
                abort.abort();
            }
            keep
        });
        let keys: Vec<Key> = self
            .armed
            .iter()
            .filter(|(_, a)| a.state.deadline().is_some_and(|d| d <= now.into_std()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(mut a) = self.armed.remove(&key) else {
                continue;
            };
            if let Some(Transition::Resolved { ends_at, .. }) = a.state.poll(now.into_std()) {
                self.send_resolved(&mut a, &key.1, ends_at, "quiet for resolve_after");
            }
            self.armed.insert(key, a);
        }
        let quiet = self.levels.poll(now.into_std());
        for alert in quiet.iter().chain(&self.limits.poll(now.into_std())) {
            self.notifier.notify(alert);
        }
        if self.next_resend.is_some_and(|t| t <= now) {
            let firing: Vec<&Alert> = self
                .armed
                .values()
                .filter_map(|a| a.alert.as_ref())
                .chain(self.levels.firing())
                .chain(self.limits.firing())
                .collect();
            for alert in &firing {
                self.notifier.notify(alert);
            }
            debug!(alerts = firing.len(), "firing alerts re-sent");
            self.next_resend = (!firing.is_empty()).then_some(now + self.alerting.resend_interval);
        }
    }

    // === OOM ===

    fn arm_oom_v1(&mut self, path: &CgroupPath) {
        if self.oom_v1.contains_key(path) {
            return;
        }
        let Some(root) = &self.memory_v1_root else {
            return;
        };
        let dir = root.join(path.relative());
        let mut w = match OomV1::arm(&dir) {
            Ok(w) => w,
            Err(e) => {
                debug!(cgroup = %path, error = %e, "no OOM watch");
                return;
            }
        };
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.msg_tx.clone();
        let p = path.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = w.next().await;
                let last = !matches!(event, OomEvent::Kill { .. });
                if tx
                    .send(Msg::OomV1 {
                        path: p.clone(),
                        id,
                        event,
                    })
                    .is_err()
                    || last
                {
                    return;
                }
            }
        });
        self.oom_v1.insert(path.clone(), (id, task.abort_handle()));
        self.oom_status(path, true);
    }

    fn arm_oom_v2(&mut self, path: &CgroupPath) {
        let Some(root) = &self.unified_root else {
            return;
        };
        let file = root.join(path.relative()).join("memory.events");
        if self.oom_v2_watched.contains(path) || !file.exists() {
            return;
        }
        if self.oom_v2.is_none() {
            match OomV2::spawn(self.oom_v2_tx.clone()) {
                Ok(w) => self.oom_v2 = Some(w),
                Err(e) => {
                    warn!(error = %e, "cannot start inotify for OOM watches");
                    return;
                }
            }
        }
        if let Some(w) = &self.oom_v2 {
            w.add(path.clone(), file);
            self.oom_v2_watched.insert(path.clone());
            self.oom_v2_leaving.remove(path);
            self.oom_status(path, true);
        }
    }

    fn on_oom_v2(&mut self, path: CgroupPath, ev: OomEvent) {
        match ev {
            OomEvent::Kill {
                count,
                delta,
                removed,
            } if self.oom_enabled
                && (self.oom_v2_watched.contains(&path) || self.oom_v2_leaving.contains(&path)) =>
            {
                self.send_oom(&path, count, delta, removed)
            }
            OomEvent::Kill { .. } => {}
            OomEvent::Limit { counter, count, .. } => {
                if !(self.oom_v2_watched.contains(&path) || self.oom_v2_leaving.contains(&path)) {
                    return;
                }
                let mut labels = BTreeMap::new();
                self.identity_labels(&mut labels, &path);
                let url = self.generator_url();
                let now = Instant::now().into_std();
                if let Some(alert) = self
                    .limits
                    .on_increase(counter, &path, count, labels, url, now)
                {
                    self.notify_new(&alert);
                }
            }
            OomEvent::Gone | OomEvent::Failed(_) => {
                for alert in self.limits.remove(&path) {
                    self.notifier.notify(&alert);
                }
                self.oom_v2_leaving.remove(&path);
                if self.oom_v2_watched.remove(&path) {
                    self.oom_status(&path, false);
                }
            }
        }
    }

    fn disarm_all_oom(&mut self) {
        for (p, (_, abort)) in self.oom_v1.drain() {
            abort.abort();
            status_lock(&self.status).oom_watched.remove(p.as_str());
        }
        for (_, (abort, _)) in self.oom_v1_leaving.drain() {
            abort.abort();
        }
        self.oom_v2 = None;
        self.oom_v2_leaving.clear();
        for p in self.oom_v2_watched.drain() {
            status_lock(&self.status).oom_watched.remove(p.as_str());
        }
    }

    fn oom_status(&self, path: &CgroupPath, on: bool) {
        let mut s = status_lock(&self.status);
        if on {
            s.oom_watched.insert(path.to_string());
        } else {
            s.oom_watched.remove(path.as_str());
        }
    }

    fn send_oom(&mut self, path: &CgroupPath, count: u64, delta: u64, removed: bool) {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), OOM_ALERTNAME.to_string());
        self.identity_labels(&mut labels, path);
        let alert = build::oom_alert(path, labels, &self.node, count, delta, removed);
        let alert = Alert {
            generator_url: self.generator_url(),
            ..alert
        };
        warn!(alertname = OOM_ALERTNAME, cgroup = %path, oom_kill = count, new = delta, removed, "OOM kill");
        self.notifier.notify(&alert);
    }

    // === reload ===

    fn reload(&mut self, cfg: &Config) {
        let new: Vec<Arc<RuleRt>> = cfg
            .psi
            .rules
            .iter()
            .map(|r| Arc::new(RuleRt::new(r.clone())))
            .collect();
        let (mut kept, mut removed, mut added) = (0, 0, 0);
        for old in self.rules.clone() {
            if !new.iter().any(|n| n.rule == old.rule) {
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
            } else {
                kept += 1;
            }
        }
        // A rule gone by name leaves no stale series behind.
        for old in &self.rules {
            if !new.iter().any(|n| n.rule.name == old.rule.name) {
                let l = RuleLabels {
                    rule: old.rule.name.clone(),
                };
                self.metrics.triggers_armed.remove(&l);
                self.metrics.alerts_firing.remove(&l);
            }
        }
        let resolved = self
            .levels
            .reload(&cfg.psi.pressure_levels, self.memory_v1.iter().cloned());
        for alert in resolved {
            self.notifier.notify(&alert);
        }
        let old_rules = std::mem::replace(&mut self.rules, new.clone());
        for rule in &new {
            if !old_rules.iter().any(|o| o.rule == rule.rule) {
                self.arm_rule(rule);
                added += 1;
            }
        }
        // With TLS files in play a reload also rebuilds the receivers, so
        // certificates rotated under the same paths are read again.
        if cfg.alerting != self.alerting || cfg.alerting.tls_config.client_tls().is_set() {
            let notifier = Notifier::new(&cfg.alerting, self.metrics.alerting.clone());
            let old = std::mem::replace(&mut self.notifier, notifier);
            tokio::spawn(old.shutdown(RELOAD_GRACE));
            self.alerting = cfg.alerting.clone();
            // Receivers are new: give them the alerts firing now.
            for a in self.armed.values() {
                if let Some(alert) = &a.alert {
                    self.notifier.notify(alert);
                }
            }
            for alert in self.levels.firing().chain(self.limits.firing()) {
                self.notifier.notify(alert);
            }
        }
        let watches_before = (self.oom_enabled, self.v2_watch());
        for alert in self.limits.reload(&cfg.alerting.memory_events) {
            self.notifier.notify(&alert);
        }
        self.oom_enabled = cfg.alerting.oom_kills;
        if watches_before != (self.oom_enabled, self.v2_watch()) {
            self.disarm_all_oom();
            self.arm_all_oom();
        }
        info!(
            kept,
            removed,
            added,
            armed = self.armed.len(),
            "PSI rules reloaded"
        );
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Whether a pressure file is missing because its cgroup hides it
/// (`cgroup.pressure` reads 0), rather than because the cgroup is gone or
/// the kernel lacks that resource (`irq.pressure` without
/// `CONFIG_IRQ_TIME_ACCOUNTING`).
fn pressure_hidden(pressure_file: &Path) -> bool {
    pressure_file
        .parent()
        .and_then(|d| std::fs::read_to_string(d.join("cgroup.pressure")).ok())
        .is_some_and(|v| v.trim() == "0")
}
