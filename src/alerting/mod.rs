//! Alert delivery: Alertmanager v2 (`POST <url>/api/v2/alerts`, to every
//! configured URL, as Prometheus does) and generic JSON webhooks.
//!
//! Each receiver has its own bounded [`queue::AlertQueue`] and task, so a
//! slow or absent receiver delays nobody else. A send that fails stays
//! queued and is retried with exponential backoff and jitter; while the
//! receiver is away, newer states of the same alert replace older ones, so
//! nothing is lost unless more distinct alerts pile up than the queue holds
//! (those drops are counted).

mod pacing;
pub mod payload;
pub mod queue;
mod receiver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use tracing::error;

use crate::config::AlertingConfig;

pub use receiver::{Receiver, ReceiverKind};

/// Whether an alert fires or has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn name(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// A cgroup that contributed to a parent's stall, with its share (0..=1).
#[derive(Debug, Clone, PartialEq)]
pub struct Contributor {
    pub cgroup: String,
    pub share: f64,
}

/// One alert state, as receivers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Identity: `alertname`, `cgroup`, ... Two states with the same labels
    /// are the same alert.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: SystemTime,
    /// Set when resolved (or for one-shot alerts such as OOM kills).
    pub ends_at: Option<SystemTime>,
    pub generator_url: String,
    /// Structured attribution for the webhook payload.
    pub contributors: Vec<Contributor>,
}

impl Alert {
    /// A stable key from the label set (labels are sorted).
    pub fn key(&self) -> String {
        let mut k = String::new();
        for (n, v) in &self.labels {
            k.push_str(n);
            k.push('\u{1}');
            k.push_str(v);
            k.push('\u{2}');
        }
        k
    }

    /// Resolved once `ends_at` is set and has passed... at the time the
    /// state was made: a firing alert carries no end.
    pub fn status(&self) -> AlertStatus {
        match self.ends_at {
            Some(end) if end <= SystemTime::now() => AlertStatus::Resolved,
            _ => AlertStatus::Firing,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NotificationLabels {
    pub receiver: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
}

/// `psi_alert_notifications_total{receiver,outcome}` and
/// `psi_alert_queue_length{receiver}`. Outcomes: `success` (delivered),
/// `retry` (a failed attempt, to be retried), `failure` (given up: refused
/// by the receiver, or still queued at shutdown), `dropped` (queue full).
#[derive(Debug, Default)]
pub struct AlertingMetrics {
    pub notifications: Family<NotificationLabels, Counter>,
    pub queue_length: Family<ReceiverLabels, Gauge>,
}

impl AlertingMetrics {
    pub fn register(
        &self,
        registry: &mut prometheus_client::registry::Registry,
        on: &crate::metrics::Selection,
    ) {
        use crate::metrics::{register, PSI_ALERT_NOTIFICATIONS, PSI_ALERT_QUEUE_LENGTH};
        register(
            registry,
            on,
            &PSI_ALERT_NOTIFICATIONS,
            self.notifications.clone(),
        );
        register(
            registry,
            on,
            &PSI_ALERT_QUEUE_LENGTH,
            self.queue_length.clone(),
        );
    }

    pub(crate) fn count(&self, receiver: &str, outcome: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.notifications
            .get_or_create(&NotificationLabels {
                receiver: receiver.to_string(),
                outcome,
            })
            .inc_by(n);
    }
}

/// Fans each alert out to every receiver.
#[derive(Debug)]
pub struct Notifier {
    receivers: Vec<Receiver>,
}

impl Notifier {
    /// One receiver per Alertmanager URL and per webhook URL. Spawns their
    /// tasks: must run inside a tokio runtime.
    /// Starts one receiver task per URL. Building their shared client reads
    /// the `tls_config` files, so that part runs on the blocking pool (the
    /// agent rebuilds its notifier on every reload that touches alerting).
    pub async fn start(cfg: &AlertingConfig, metrics: Arc<AlertingMetrics>) -> Notifier {
        let (tls, timeout) = (cfg.tls_config.client_tls(), cfg.timeout);
        let client =
            match tokio::task::spawn_blocking(move || receiver::http_client(&tls, timeout)).await {
                Ok(client) => client,
                Err(e) => {
                    error!(error = %e, "alerting.tls_config: falling back to the public web roots");
                    receiver::http_client(&Default::default(), cfg.timeout)
                }
            };
        Notifier::with_client(cfg, client, metrics)
    }

    fn with_client(
        cfg: &AlertingConfig,
        client: crate::net::HttpClient,
        metrics: Arc<AlertingMetrics>,
    ) -> Notifier {
        let mut receivers = Vec::new();
        for url in &cfg.alertmanagers {
            receivers.push(Receiver::spawn(
                ReceiverKind::Alertmanager,
                url,
                cfg.queue_capacity,
                client.clone(),
                metrics.clone(),
            ));
        }
        for url in &cfg.webhooks {
            receivers.push(Receiver::spawn(
                ReceiverKind::Webhook,
                url,
                cfg.queue_capacity,
                client.clone(),
                metrics.clone(),
            ));
        }
        Notifier { receivers }
    }

    /// Queues the alert's newest state for every receiver. Never blocks.
    pub fn notify(&self, alert: &Alert) {
        for r in &self.receivers {
            r.push(alert.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// Stops taking alerts and delivers what is queued, for at most `grace`.
    /// Whatever is still queued then is counted as `failure`.
    pub async fn shutdown(self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for r in &self.receivers {
            r.close();
        }
        for r in self.receivers {
            r.join(deadline).await;
        }
    }
}
