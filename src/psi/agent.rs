//! The agent: a thin loop joining three owners. The triggers
//! (`triggers.rs`), the OOM watcher (`oom_watch.rs`) and the pressure-level
//! watches (`levels.rs`) each run as a task of their own, with their own
//! registry subscription, and report what they see; the alert book
//! (`book.rs`, pure) decides what fires, resolves and is sent again; this
//! loop hands the one's news to the other and the book's alerts to the
//! notifier, and owns the notifier across config reloads.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::alerting::{Alert, Notifier};
use crate::config::{AlertingConfig, Config};
use crate::registry::Registry;

use super::attribution;
use super::book::{AlertKey, Book};
use super::build::{self, Builder, Listen, OOM_ALERTNAME};
use super::levels::{LevelOut, Levels};
use super::limits;
use super::metrics::{PsiMetrics, RuleLabels};
use super::oom_watch::{OomOut, OomWatcher};
use super::triggers::{TriggerOut, Triggers};
use super::Views;

/// Grace given to a notifier replaced by a config reload.
const RELOAD_GRACE: Duration = Duration::from_secs(5);

/// `(rule, cgroup)` of the PSI rule alerts firing now, for the handle.
pub(crate) type FiringView = BTreeSet<(String, String)>;

pub(crate) struct Agent {
    book: Book,
    builder: Builder,
    listen: Option<Listen>,
    alerting: AlertingConfig,
    notifier: Notifier,
    metrics: Arc<PsiMetrics>,
    firing: watch::Sender<FiringView>,
}

/// Starts the owners and runs the loop until `shutdown`; returns the
/// notifier so the caller can flush it within its grace period.
pub(crate) async fn run(
    registry: Arc<Registry>,
    procfs: PathBuf,
    mut config: watch::Receiver<Arc<Config>>,
    metrics: Arc<PsiMetrics>,
    listen: Option<Listen>,
    views: Views,
    shutdown: CancellationToken,
) -> Notifier {
    let cfg = config.borrow().clone();
    let host = procfs.clone();
    let node = tokio::task::spawn_blocking(move || build::node_name(&host))
        .await
        .unwrap_or_else(|_| "unknown".to_string());
    let (trig_tx, mut trig_rx) = mpsc::unbounded_channel();
    let (oom_tx, mut oom_rx) = mpsc::unbounded_channel();
    let (lvl_tx, mut lvl_rx) = mpsc::unbounded_channel();
    let triggers = Triggers::new(
        registry.clone(),
        procfs,
        &cfg,
        metrics.clone(),
        trig_tx,
        views.armed,
    );
    let oom = OomWatcher::new(registry.clone(), &cfg, oom_tx, views.oom_watched);
    let levels = Levels::new(registry, &cfg.psi.pressure_levels, lvl_tx);
    let owners = [
        tokio::spawn(triggers.run(config.clone(), shutdown.clone())),
        tokio::spawn(oom.run(config.clone(), shutdown.clone())),
        tokio::spawn(levels.run(config.clone(), shutdown.clone())),
    ];
    let mut agent = Agent {
        book: Book::new(cfg.alerting.resend_interval),
        builder: Builder::new(node, &cfg.alerting.external_url, listen),
        listen,
        notifier: Notifier::new(&cfg.alerting, metrics.alerting.clone()),
        alerting: cfg.alerting.clone(),
        metrics,
        firing: views.firing,
    };
    info!(rules = cfg.psi.rules.len(), node = %agent.builder.node(), "PSI agent started");
    let mut config_open = true;
    loop {
        let wake = agent.book.deadline().map(Instant::from_std);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(t) = trig_rx.recv() => agent.on_trigger(t),
            Some(o) = oom_rx.recv() => agent.on_oom(o),
            Some(l) = lvl_rx.recv() => agent.on_level(l),
            changed = config.changed(), if config_open => match changed {
                Ok(()) => {
                    let cfg = config.borrow_and_update().clone();
                    agent.reload(&cfg);
                }
                Err(_) => config_open = false,
            },
            _ = sleep_until_opt(wake) => agent.on_tick(),
        }
    }
    info!(firing = agent.book.firing().count(), "PSI agent stopping");
    // The owners drop their fds as they stop.
    for task in owners {
        let _ = task.await;
    }
    agent.notifier
}

impl Agent {
    fn on_trigger(&mut self, out: TriggerOut) {
        let now = Instant::now().into_std();
        let wall = SystemTime::now();
        match out {
            TriggerOut::Fired {
                rule,
                path,
                value,
                contributors,
            } => {
                let key = AlertKey::Rule(rule.rule.name.as_str().into(), path.clone());
                let builder = &self.builder;
                let fired = self
                    .book
                    .fire(key.clone(), rule.rule.resolve_after, now, wall, |s| {
                        builder.rule_alert(&rule, &path, s, value, contributors.clone())
                    });
                let Some(alert) = fired else {
                    // Still firing: keep the newest attribution for re-sends.
                    if !contributors.is_empty() {
                        self.book.update(&key, |a| {
                            a.annotations.insert(
                                "top_contributors".into(),
                                attribution::annotation(&contributors),
                            );
                            a.contributors = contributors;
                        });
                    }
                    return;
                };
                info!(
                    alertname = %rule.rule.name,
                    cgroup = %path,
                    resource = rule.rule.resource.name(),
                    kind = rule.rule.kind.name(),
                    top_contributors = alert.annotations.get("top_contributors").map(String::as_str).unwrap_or(""),
                    "alert firing"
                );
                self.notifier.notify(&alert);
                PsiMetrics::rule_gauge(&self.metrics.alerts_firing, &rule.rule.name, 1);
                self.firing.send_modify(|f| {
                    f.insert((rule.rule.name.clone(), path.to_string()));
                });
            }
            TriggerOut::Ended { key, why } => {
                let key = AlertKey::Rule(key.0, key.1);
                for (k, alert) in self.book.end_where(wall, |k| *k == key) {
                    self.resolved(&k, &alert, why);
                }
            }
            TriggerOut::RulesGone(names) => {
                for rule in names {
                    self.metrics.alerts_firing.remove(&RuleLabels { rule });
                }
            }
        }
    }

    fn on_oom(&mut self, out: OomOut) {
        let wall = SystemTime::now();
        match out {
            OomOut::Kill {
                path,
                count,
                delta,
                removed,
            } => {
                warn!(alertname = OOM_ALERTNAME, cgroup = %path, oom_kill = count, new = delta, removed, "OOM kill");
                let alert = self.builder.oom_alert(&path, count, delta, removed, wall);
                self.notifier.notify(&alert);
            }
            OomOut::Limit {
                path,
                counter,
                count,
            } => {
                let cfg = &self.alerting.memory_events;
                if !limits::wanted(cfg, counter) {
                    return;
                }
                let key = AlertKey::Limit(counter, path.clone());
                let builder = &self.builder;
                let now = Instant::now().into_std();
                if let Some(alert) = self.book.fire(key, cfg.hold_off, now, wall, |s| {
                    builder.limit_alert(counter, &path, count, s)
                }) {
                    info!(alertname = build::limit_alertname(counter), cgroup = %path, count, "alert firing");
                    self.notifier.notify(&alert);
                }
            }
            OomOut::Gone(path) => {
                let ended = self
                    .book
                    .end_where(wall, |k| matches!(k, AlertKey::Limit(_, p) if *p == path));
                for (k, alert) in ended {
                    self.resolved(&k, &alert, "cgroup removed");
                }
            }
        }
    }

    fn on_level(&mut self, out: LevelOut) {
        let wall = SystemTime::now();
        match out {
            LevelOut::Fired { rule, path } => {
                let key = AlertKey::Level(rule.name.as_str().into(), path.clone());
                let builder = &self.builder;
                let now = Instant::now().into_std();
                if let Some(alert) = self.book.fire(key, rule.resolve_after, now, wall, |s| {
                    builder.level_alert(&rule, &path, s)
                }) {
                    info!(alertname = %rule.name, cgroup = %path, level = rule.level.name(), "alert firing");
                    self.notifier.notify(&alert);
                }
            }
            LevelOut::Ended { name, path } => {
                let key = AlertKey::Level(name, path);
                for (k, alert) in self.book.end_where(wall, |k| *k == key) {
                    self.resolved(&k, &alert, "watch ended");
                }
            }
        }
    }

    /// Sends a resolved alert; a PSI rule's also leaves the firing gauge.
    fn resolved(&mut self, key: &AlertKey, alert: &Alert, why: &str) {
        let alertname = alert.labels.get("alertname").map(String::as_str);
        info!(alertname = alertname.unwrap_or(""), cgroup = %key.path(), why, "alert resolved");
        self.notifier.notify(alert);
        if let AlertKey::Rule(rule, path) = key {
            PsiMetrics::rule_gauge(&self.metrics.alerts_firing, rule, -1);
            self.firing.send_modify(|f| {
                f.remove(&(rule.to_string(), path.to_string()));
            });
        }
    }

    fn on_tick(&mut self) {
        let due = self.book.poll(Instant::now().into_std());
        for (k, alert) in &due.resolved {
            self.resolved(k, alert, "quiet for resolve_after");
        }
        for alert in &due.resend {
            self.notifier.notify(alert);
        }
        if !due.resend.is_empty() {
            debug!(alerts = due.resend.len(), "firing alerts re-sent");
        }
    }

    fn reload(&mut self, cfg: &Config) {
        let wall = SystemTime::now();
        // With TLS files in play a reload also rebuilds the receivers, so
        // certificates rotated under the same paths are read again.
        if cfg.alerting != self.alerting || cfg.alerting.tls_config.client_tls().is_set() {
            let notifier = Notifier::new(&cfg.alerting, self.metrics.alerting.clone());
            let old = std::mem::replace(&mut self.notifier, notifier);
            tokio::spawn(old.shutdown(RELOAD_GRACE));
            // Receivers are new: give them the alerts firing now.
            for alert in self.book.firing() {
                self.notifier.notify(alert);
            }
        }
        let (old, new) = (&self.alerting.memory_events, &cfg.alerting.memory_events);
        let ended = self.book.end_where(
            wall,
            |k| matches!(k, AlertKey::Limit(c, _) if limits::ended_by_reload(old, new, *c)),
        );
        for (k, alert) in ended {
            self.resolved(&k, &alert, "memory_events changed");
        }
        self.book.set_resend_interval(cfg.alerting.resend_interval);
        let node = self.builder.node().to_string();
        self.builder = Builder::new(node, &cfg.alerting.external_url, self.listen);
        self.alerting = cfg.alerting.clone();
    }
}

pub(crate) async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
