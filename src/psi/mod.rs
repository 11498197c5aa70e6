//! The PSI alerting agent: kernel PSI triggers on the host's and selected
//! cgroups' pressure files, an alert state per (rule, cgroup), and OOM-kill
//! alerts, delivered by [`crate::alerting`].
//!
//! Kernel reference: <https://docs.kernel.org/accounting/psi.html>.
//!
//! # Wiring (for `app.rs`)
//!
//! ```text
//! let metrics = PsiMetrics::new();
//! metrics.register_metrics(&mut prom_registry);
//! let (cfg_tx, cfg_rx) = tokio::sync::watch::channel(Arc::new(config));
//! let agent = psi::spawn(registry.clone(), procfs_root, cfg_rx, metrics, token.clone());
//! // on reload: cfg_tx.send(Arc::new(new_validated_config))
//! // on SIGTERM: token.cancel(); agent.shutdown(Duration::from_secs(10)).await;
//! ```
//!
//! - Rules select cgroups of the cgroup2 hierarchy by glob; each match gets a
//!   trigger when the registry reports it `Added` and loses it on `Removed`
//!   (or when the kernel reports the fd gone). `/` in a rule means the host,
//!   `<procfs>/pressure/<resource>`; the cgroup2 root is never matched by a
//!   glob.
//! - A trigger event fires the alert; no event for `resolve_after` resolves
//!   it. Firing alerts are re-sent every `alerting.resend_interval` (30 s).
//! - A parent's alert names its top contributors (leaf cgroups below it by
//!   stall time), as the `top_contributors` annotation and as structured
//!   `contributors` in webhook payloads.
//! - With `alerting.oom_kills`, every OOM kill in a tracked cgroup sends
//!   `CgroupOOMKill` at once.
//! - Config updates on the watch channel re-arm changed rules only; the app
//!   validates before sending.

mod agent;
pub mod attribution;
mod book;
mod build;
pub mod levels;
mod limits;
pub mod metrics;
pub mod oom;
mod oom_watch;
pub mod rules;
pub mod state;
pub mod trigger;
mod triggers;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::alerting::Notifier;
use crate::cgroupfs::{CgroupPath, HierarchyId};
use crate::config::Config;
use crate::registry::{Registry, RegistryEvent};

pub use build::{
    Listen, GENERATOR_LABEL, HIGH_ALERTNAME, MAX_ALERTNAME, OOM_ALERTNAME, OOM_ALERT_TTL,
};
pub use metrics::PsiMetrics;

/// One armed trigger, as seen from outside (for tests and debugging).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArmedInfo {
    pub rule: String,
    pub cgroup: String,
    /// Changes whenever the trigger is re-armed (a new fd).
    pub id: u64,
}

/// What each owner publishes for the handle: its own state, as a
/// `watch` snapshot (no lock shared with the agent's work).
pub(crate) struct Views {
    pub armed: watch::Sender<triggers::ArmedView>,
    pub oom_watched: watch::Sender<oom_watch::WatchedView>,
    pub firing: watch::Sender<agent::FiringView>,
}

/// The handle's ends of [`Views`].
#[derive(Debug)]
struct ViewsRx {
    armed: watch::Receiver<triggers::ArmedView>,
    oom_watched: watch::Receiver<oom_watch::WatchedView>,
    firing: watch::Receiver<agent::FiringView>,
}

/// Grace used by [`AgentHandle::join`] to flush the alert queues.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The running agent (PSI triggers and OOM watches).
#[derive(Debug)]
pub struct AgentHandle {
    task: JoinHandle<Notifier>,
    shutdown: CancellationToken,
    views: ViewsRx,
}

/// Starts the agent. It stops when `shutdown` is cancelled (or via
/// [`AgentHandle::shutdown`]). Must be called inside a tokio runtime.
pub fn spawn(
    registry: Arc<Registry>,
    procfs: PathBuf,
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<PsiMetrics>,
    shutdown: CancellationToken,
) -> AgentHandle {
    spawn_listening(registry, procfs, config, metrics, shutdown, None)
}

/// [`spawn`], told where the exporter listens, so alerts' generator URL
/// points at the real port (not the default 9753).
pub fn spawn_listening(
    registry: Arc<Registry>,
    procfs: PathBuf,
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<PsiMetrics>,
    shutdown: CancellationToken,
    listen: Option<Listen>,
) -> AgentHandle {
    let (armed, armed_rx) = watch::channel(Default::default());
    let (oom_watched, oom_rx) = watch::channel(BTreeSet::new());
    let (firing, firing_rx) = watch::channel(BTreeSet::new());
    let views = Views {
        armed,
        oom_watched,
        firing,
    };
    let mut config = config;
    // Mark the starting config seen here, not in the task: an update sent
    // before the task first runs must still count as a change.
    config.borrow_and_update();
    let task = tokio::spawn(agent::run(
        registry,
        procfs,
        config,
        metrics,
        listen,
        views,
        shutdown.clone(),
    ));
    AgentHandle {
        task,
        shutdown,
        views: ViewsRx {
            armed: armed_rx,
            oom_watched: oom_rx,
            firing: firing_rx,
        },
    }
}

impl AgentHandle {
    /// Stops arming, then delivers queued alerts for at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.finish(grace).await;
    }

    /// Waits for the shutdown token, then flushes as `shutdown` does with
    /// [`DEFAULT_GRACE`].
    pub async fn join(self) {
        self.shutdown.cancelled().await;
        self.finish(DEFAULT_GRACE).await;
    }

    async fn finish(self, grace: Duration) {
        match self.task.await {
            Ok(notifier) => notifier.shutdown(grace).await,
            Err(e) => warn!(error = %e, "PSI agent task failed"),
        }
    }

    /// The triggers armed now.
    pub fn armed(&self) -> Vec<ArmedInfo> {
        self.views
            .armed
            .borrow()
            .iter()
            .map(|((rule, cgroup), id)| ArmedInfo {
                rule: rule.clone(),
                cgroup: cgroup.clone(),
                id: *id,
            })
            .collect()
    }

    /// `(rule, cgroup)` of the alerts firing now.
    pub fn firing(&self) -> Vec<(String, String)> {
        self.views.firing.borrow().iter().cloned().collect()
    }

    /// Cgroups with an OOM watch.
    pub fn oom_watched(&self) -> Vec<String> {
        self.views.oom_watched.borrow().iter().cloned().collect()
    }
}

/// Sleeps until `t`, or forever without one (a `select!` arm that only
/// wakes when something is due).
pub(crate) async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// What an owner hears besides its own fds: the registry's events, in
/// bursts (so one blocking batch serves them all), and config updates.
pub(crate) struct Inputs {
    registry: tokio::sync::mpsc::UnboundedReceiver<RegistryEvent>,
    config: watch::Receiver<Arc<Config>>,
    registry_open: bool,
    config_open: bool,
}

pub(crate) enum Input {
    Registry(Vec<RegistryEvent>),
    Config(Arc<Config>),
}

/// `Path::exists`, a stat(2), for closures that run on the blocking pool.
#[allow(
    clippy::disallowed_methods,
    reason = "its callers run it on the blocking pool (levels, oom_watch, triggers)"
)]
pub(crate) fn exists(p: &std::path::Path) -> bool {
    p.exists()
}

impl Inputs {
    /// Subscribes to `registry`; returns the cgroups tracked now first,
    /// as (hierarchy, path) pairs.
    pub(crate) fn new(
        registry: &Registry,
        config: watch::Receiver<Arc<Config>>,
    ) -> (Vec<(HierarchyId, CgroupPath)>, Inputs) {
        let (events, rx) = registry.subscribe();
        let initial = events
            .into_iter()
            .filter_map(|ev| match ev {
                RegistryEvent::Added { path, hierarchy } => Some((hierarchy, path)),
                _ => None,
            })
            .collect();
        let inputs = Inputs {
            registry: rx,
            config,
            registry_open: true,
            config_open: true,
        };
        (initial, inputs)
    }

    /// The next burst of registry events, or the newest config. Cancel
    /// safe (both receivers are), so it can be a `select!` arm.
    pub(crate) async fn next(&mut self) -> Input {
        loop {
            tokio::select! {
                biased;
                ev = self.registry.recv(), if self.registry_open => match ev {
                    Some(ev) => {
                        let mut batch = vec![ev];
                        while let Ok(ev) = self.registry.try_recv() {
                            batch.push(ev);
                        }
                        return Input::Registry(batch);
                    }
                    None => self.registry_open = false,
                },
                changed = self.config.changed(), if self.config_open => match changed {
                    Ok(()) => return Input::Config(self.config.borrow_and_update().clone()),
                    Err(_) => self.config_open = false,
                },
                else => std::future::pending::<()>().await,
            }
        }
    }
}
