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
//! [`LevelRules`] owns the rules' watches and alert states; the agent
//! feeds it the v1 memory hierarchy's cgroups and the watches' messages.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::alerting::Alert;
use crate::cgroupfs::CgroupPath;
use crate::config::{render_template, PressureLevelRule};
use crate::glob::Glob;

use super::agent::GENERATOR_LABEL;
use super::state::{AlertState, Transition};

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
            return if self.level_file.exists() {
                LevelEvent::Fired
            } else {
                LevelEvent::Gone
            };
        }
    }
}

/// A watch's message to the agent.
#[derive(Debug)]
pub struct LevelMsg {
    key: Key,
    id: u64,
    event: LevelEvent,
}

type Key = (Arc<str>, CgroupPath);

struct Rule {
    rule: PressureLevelRule,
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

struct Entry {
    id: u64,
    abort: AbortHandle,
    state: AlertState,
    alert: Option<Alert>,
}

/// The level rules, their watches (rule x v1 memory cgroup) and alerts.
pub(crate) struct LevelRules {
    rules: Vec<Arc<Rule>>,
    root: Option<PathBuf>,
    armed: HashMap<Key, Entry>,
    next_id: u64,
    tx: mpsc::UnboundedSender<LevelMsg>,
    node: String,
}

impl LevelRules {
    /// `root`: the v1 memory hierarchy's mount (none: nothing is armed).
    pub(crate) fn new(
        rules: &[PressureLevelRule],
        root: Option<PathBuf>,
        node: String,
        tx: mpsc::UnboundedSender<LevelMsg>,
    ) -> LevelRules {
        LevelRules {
            rules: compile(rules),
            root,
            armed: HashMap::new(),
            next_id: 0,
            tx,
            node,
        }
    }

    pub(crate) fn armed(&self) -> usize {
        self.armed.len()
    }

    /// Arms every matching rule on a cgroup of the v1 memory hierarchy.
    pub(crate) fn track(&mut self, path: &CgroupPath) {
        for rule in self.rules.clone() {
            if rule.matches(path) {
                self.arm(&rule, path);
            }
        }
    }

    fn arm(&mut self, rule: &Arc<Rule>, path: &CgroupPath) {
        let key: Key = (rule.rule.name.as_str().into(), path.clone());
        if self.armed.contains_key(&key) {
            return;
        }
        let Some(root) = &self.root else {
            return;
        };
        let mut watch = match LevelWatch::arm(&root.join(path.relative()), rule.rule.level) {
            Ok(w) => w,
            Err(e) => {
                debug!(rule = %rule.rule.name, cgroup = %path, error = %e, "pressure level watch not armed");
                return;
            }
        };
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
        self.armed.insert(
            key,
            Entry {
                id,
                abort: task.abort_handle(),
                state: AlertState::new(rule.rule.resolve_after),
                alert: None,
            },
        );
        debug!(rule = %rule.rule.name, cgroup = %path, level = rule.rule.level.name(), "pressure level watch armed");
    }

    /// Drops every watch of a cgroup; returns the alerts that resolve.
    pub(crate) fn untrack(&mut self, path: &CgroupPath) -> Vec<Alert> {
        let keys: Vec<Key> = self
            .armed
            .keys()
            .filter(|k| &k.1 == path)
            .cloned()
            .collect();
        keys.iter().filter_map(|k| self.disarm(k)).collect()
    }

    fn disarm(&mut self, key: &Key) -> Option<Alert> {
        let mut e = self.armed.remove(key)?;
        e.abort.abort();
        match e.state.force_resolve(SystemTime::now()) {
            Some(Transition::Resolved { ends_at, .. }) => resolved(e.alert.take(), ends_at),
            _ => None,
        }
    }

    /// A watch's message: the alert to send, if its state changed.
    pub(crate) fn on_msg(&mut self, msg: LevelMsg, generator_url: &str) -> Option<Alert> {
        let entry = self.armed.get_mut(&msg.key)?;
        if entry.id != msg.id {
            return None;
        }
        match msg.event {
            LevelEvent::Fired => {
                let starts_at = match entry.state.fired(Instant::now(), SystemTime::now()) {
                    Some(Transition::Fired { starts_at }) => starts_at,
                    _ => return None,
                };
                let rule = self.rules.iter().find(|r| *r.rule.name == *msg.key.0)?;
                let alert = build(&rule.rule, &msg.key.1, starts_at, &self.node, generator_url);
                info!(alertname = %rule.rule.name, cgroup = %msg.key.1, level = rule.rule.level.name(), "alert firing");
                let entry = self.armed.get_mut(&msg.key)?;
                entry.alert = Some(alert.clone());
                Some(alert)
            }
            LevelEvent::Gone => self.disarm(&msg.key),
            LevelEvent::Failed(e) => {
                warn!(rule = %msg.key.0, cgroup = %msg.key.1, error = %e, "pressure level watch failed");
                self.disarm(&msg.key)
            }
        }
    }

    /// The earliest moment an alert may resolve.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.armed.values().filter_map(|e| e.state.deadline()).min()
    }

    /// Resolves the alerts quiet for their `resolve_after`.
    pub(crate) fn poll(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        for (key, e) in &mut self.armed {
            if let Some(Transition::Resolved { ends_at, .. }) = e.state.poll(now) {
                info!(alertname = %key.0, cgroup = %key.1, "alert resolved");
                out.extend(resolved(e.alert.take(), ends_at));
            }
        }
        out
    }

    /// The alerts firing now (for re-sends).
    pub(crate) fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.armed.values().filter_map(|e| e.alert.as_ref())
    }

    /// New rules: changed or removed rules are dropped (their alerts
    /// resolve), new ones armed on `paths`. Returns the resolved alerts.
    pub(crate) fn reload(
        &mut self,
        rules: &[PressureLevelRule],
        paths: impl Iterator<Item = CgroupPath>,
    ) -> Vec<Alert> {
        let new = compile(rules);
        let gone: Vec<Key> = self
            .armed
            .keys()
            .filter(|k| {
                let old = self.rules.iter().find(|r| *r.rule.name == *k.0);
                let now = new.iter().find(|r| *r.rule.name == *k.0);
                match (old, now) {
                    (Some(o), Some(n)) => o.rule != n.rule,
                    _ => true,
                }
            })
            .cloned()
            .collect();
        let out = gone.iter().filter_map(|k| self.disarm(k)).collect();
        self.rules = new;
        for p in paths {
            self.track(&p);
        }
        out
    }

    /// Stops every watch.
    pub(crate) fn stop(&mut self) {
        for (_, e) in self.armed.drain() {
            e.abort.abort();
        }
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
                rule: r.clone(),
            })
        })
        .collect()
}

fn resolved(alert: Option<Alert>, ends_at: SystemTime) -> Option<Alert> {
    let mut a = alert?;
    a.ends_at = Some(ends_at);
    Some(a)
}

/// The alert of a level rule: `alertname`, `cgroup`, `resource="memory"`,
/// `level`, `node`, the path's Kubernetes/systemd labels, `generator`, the
/// rule's labels; annotations rendered with the same placeholders as PSI
/// rules plus `{{ level }}`.
fn build(
    rule: &PressureLevelRule,
    path: &CgroupPath,
    starts_at: SystemTime,
    node: &str,
    generator_url: &str,
) -> Alert {
    let mut labels: BTreeMap<String, String> = rule.labels.clone();
    labels.insert("alertname".into(), rule.name.clone());
    labels.insert("resource".into(), "memory".into());
    labels.insert("level".into(), rule.level.name().into());
    labels.insert("cgroup".into(), path.to_string());
    labels.insert("node".into(), node.to_string());
    for (k, v) in crate::kubernetes::path::from_path(path).pairs() {
        labels.insert(k.into(), v.into());
    }
    labels.insert(GENERATOR_LABEL.0.into(), GENERATOR_LABEL.1.into());
    let mut vars: Vec<(&str, &str)> = vec![("rule", rule.name.as_str())];
    for (k, v) in &labels {
        vars.push((k.as_str(), v.as_str()));
    }
    let annotations = rule
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), render_template(v, &vars)))
        .collect();
    Alert {
        labels,
        annotations,
        starts_at,
        ends_at: None,
        generator_url: generator_url.to_string(),
        contributors: Vec::new(),
    }
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
            labels: [("severity".to_string(), "page".to_string())].into(),
            annotations: [(
                "summary".to_string(),
                "{{ level }} in {{ cgroup }} ({{ pod_uid }})".to_string(),
            )]
            .into(),
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

    #[test]
    fn alert_carries_level_path_labels_and_generator() {
        let p = CgroupPath::new("/kubepods/burstable/pod0d4e1f2a-3b5c/c1");
        let a = build(
            &rule(&["/kubepods/**"]),
            &p,
            SystemTime::UNIX_EPOCH,
            "n1",
            "http://n1:9753/",
        );
        assert_eq!(a.labels["alertname"], "Lvl");
        assert_eq!(a.labels["level"], "critical");
        assert_eq!(a.labels["resource"], "memory");
        assert_eq!(a.labels["pod_uid"], "0d4e1f2a-3b5c");
        assert_eq!(a.labels["severity"], "page");
        assert_eq!(a.labels[GENERATOR_LABEL.0], GENERATOR_LABEL.1);
        assert_eq!(
            a.annotations["summary"],
            format!("critical in {p} (0d4e1f2a-3b5c)")
        );
    }
}
