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

use super::book::{AlertKey, Book, Change};
use super::build::{self, Builder, Listen};
use super::levels::Levels;
use super::metrics::{PsiMetrics, RuleLabels};
use super::oom_watch::OomWatcher;
use super::triggers::Triggers;
use super::{sleep_until_opt, Views};

/// Grace given to a notifier replaced by a config reload.
const RELOAD_GRACE: Duration = Duration::from_secs(5);

/// `(rule, cgroup)` of the PSI rule alerts firing now, for the handle.
pub(crate) type FiringView = BTreeSet<(String, String)>;

struct Agent {
    book: Book,
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
    let (news_tx, mut news) = mpsc::unbounded_channel();
    let triggers = Triggers::new(
        registry.clone(),
        procfs,
        &cfg,
        metrics.clone(),
        news_tx.clone(),
        views.armed,
    );
    let oom = OomWatcher::new(registry.clone(), &cfg, news_tx.clone(), views.oom_watched);
    let levels = Levels::new(registry, &cfg.psi.pressure_levels, news_tx);
    let owners = [
        tokio::spawn(triggers.run(config.clone(), shutdown.clone())),
        tokio::spawn(oom.run(config.clone(), shutdown.clone())),
        tokio::spawn(levels.run(config.clone(), shutdown.clone())),
    ];
    let builder = Builder::new(node, &cfg.alerting.external_url, listen);
    let mut agent = Agent {
        book: Book::new(builder, &cfg.alerting),
        listen,
        notifier: Notifier::start(&cfg.alerting, metrics.alerting.clone()).await,
        alerting: cfg.alerting.clone(),
        metrics,
        firing: views.firing,
    };
    info!(rules = cfg.psi.rules.len(), node = %agent.book.builder().node(), "PSI agent started");
    let mut config_open = true;
    loop {
        let wake = agent.book.deadline().map(Instant::from_std);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(n) = news.recv() => {
                let changes = agent.book.record(n, (Instant::now().into_std(), SystemTime::now()));
                agent.apply(changes);
            }
            changed = config.changed(), if config_open => match changed {
                Ok(()) => {
                    let cfg = config.borrow_and_update().clone();
                    agent.reload(&cfg).await;
                }
                Err(_) => config_open = false,
            },
            _ = sleep_until_opt(wake) => {
                let due = agent.book.tick(Instant::now().into_std());
                agent.apply(due);
            }
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
    /// Logs and sends the book's changes; a PSI rule's alert also moves
    /// `psi_alerts_firing` and the handle's firing view.
    fn apply(&mut self, changes: Vec<Change>) {
        let mut resent = 0;
        for change in changes {
            let (alert, firing) = match &change {
                Change::RuleGone(rule) => {
                    let rule = rule.clone();
                    self.metrics.alerts_firing.remove(&RuleLabels { rule });
                    continue;
                }
                Change::Firing(key, a) => {
                    let top = label(a, "top_contributors");
                    info!(alertname = label(a, "alertname"), cgroup = %key.path(), top_contributors = top, "alert firing");
                    (a, Some((key, 1)))
                }
                Change::Resolved(key, a, why) => {
                    info!(alertname = label(a, "alertname"), cgroup = %key.path(), why, "alert resolved");
                    (a, Some((key, -1)))
                }
                Change::Resend(a) => {
                    resent += 1;
                    (a, None)
                }
                Change::OneShot(a) => {
                    warn!(
                        alertname = label(a, "alertname"),
                        cgroup = label(a, "cgroup"),
                        oom_kill = label(a, "oom_kill"),
                        "OOM kill"
                    );
                    (a, None)
                }
            };
            self.notifier.notify(alert);
            if let Some((AlertKey::Rule(rule, path), delta)) = firing {
                PsiMetrics::rule_gauge(&self.metrics.alerts_firing, rule, delta);
                let k = (rule.to_string(), path.to_string());
                self.firing.send_modify(|f| {
                    let _ = if delta > 0 { f.insert(k) } else { f.remove(&k) };
                });
            }
        }
        if resent > 0 {
            debug!(alerts = resent, "firing alerts re-sent");
        }
    }

    async fn reload(&mut self, cfg: &Config) {
        // With TLS files in play a reload also rebuilds the receivers, so
        // certificates rotated under the same paths are read again.
        if cfg.alerting != self.alerting || cfg.alerting.tls_config.client_tls().is_set() {
            let notifier = Notifier::start(&cfg.alerting, self.metrics.alerting.clone()).await;
            let old = std::mem::replace(&mut self.notifier, notifier);
            tokio::spawn(old.shutdown(RELOAD_GRACE));
            // Receivers are new: give them the alerts firing now.
            for alert in self.book.firing() {
                self.notifier.notify(alert);
            }
        }
        let node = self.book.builder().node().to_string();
        let builder = Builder::new(node, &cfg.alerting.external_url, self.listen);
        let ended = self.book.reload(builder, &cfg.alerting, SystemTime::now());
        self.apply(ended);
        self.alerting = cfg.alerting.clone();
    }
}

fn label<'a>(a: &'a Alert, name: &str) -> &'a str {
    a.labels
        .get(name)
        .or_else(|| a.annotations.get(name))
        .map_or("", String::as_str)
}
