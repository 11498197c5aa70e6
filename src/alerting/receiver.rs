//! One receiver: its queue and the task that drains it over HTTP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::pacing::{Pacer, BATCH};
use super::payload;
use super::queue::AlertQueue;
use super::{Alert, AlertingMetrics, ReceiverLabels};
use crate::tlsclient::ClientTls;

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Kept short so a receiver that comes back (an Alertmanager restart) gets
/// the queue within seconds.
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// One client for every receiver, so they share the connection pool. The
/// TLS files were already read once by config validation; should they have
/// gone since, the public roots are used and deliveries to a private-CA
/// receiver fail loudly (counted, retried) instead of the agent stopping.
pub(crate) fn http_client(tls: &ClientTls) -> HttpClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match tls.build() {
        Ok(config) => builder.with_tls_config(config),
        Err(e) => {
            error!(error = %e, "alerting.tls_config: falling back to the public web roots");
            builder.with_webpki_roots()
        }
    };
    let https = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    Alertmanager,
    Webhook,
}

#[derive(Debug)]
struct Shared {
    name: String,
    queue: Mutex<AlertQueue>,
    wake: Notify,
    closing: AtomicBool,
    metrics: Arc<AlertingMetrics>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, AlertQueue> {
        // Queue operations leave it consistent even if a holder panicked.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_gauge(&self, len: usize) {
        self.metrics
            .queue_length
            .get_or_create(&ReceiverLabels {
                receiver: self.name.clone(),
            })
            .set(i64::try_from(len).unwrap_or(i64::MAX));
    }
}

/// A receiver's handle: push alerts, close, join.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub(crate) fn spawn(
        kind: ReceiverKind,
        url: &str,
        timeout: Duration,
        capacity: usize,
        client: HttpClient,
        metrics: Arc<AlertingMetrics>,
    ) -> Receiver {
        let shared = Arc::new(Shared {
            name: url.to_string(),
            queue: Mutex::new(AlertQueue::new(capacity)),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            metrics,
        });
        shared.set_gauge(0);
        let target = match kind {
            ReceiverKind::Alertmanager => format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            ReceiverKind::Webhook => url.to_string(),
        };
        let task = tokio::spawn(run(shared.clone(), kind, target, timeout, client));
        Receiver { shared, task }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Queues an alert state; drops the oldest entry when full.
    pub fn push(&self, alert: Alert) {
        let (out, len) = {
            let mut q = self.shared.lock();
            let out = q.push(alert, tokio::time::Instant::now().into_std());
            (out, q.len())
        };
        if out.dropped > 0 {
            warn!(
                receiver = %self.shared.name,
                dropped = out.dropped,
                "alert queue full: oldest alerts dropped"
            );
            self.shared
                .metrics
                .count(&self.shared.name, "dropped", out.dropped);
        }
        self.shared.set_gauge(len);
        self.shared.wake.notify_one();
    }

    /// Tells the task to finish once the queue is empty.
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    /// Waits for the queue to drain, up to `deadline`; then gives up on
    /// what is left (counted as `failure`).
    pub async fn join(self, deadline: tokio::time::Instant) {
        self.close();
        let abort = self.task.abort_handle();
        if tokio::time::timeout_at(deadline, self.task).await.is_err() {
            abort.abort();
            let left = self.shared.lock().len();
            warn!(
                receiver = %self.shared.name,
                left,
                "shutdown grace period over: undelivered alerts dropped"
            );
            self.shared
                .metrics
                .count(&self.shared.name, "failure", left as u64);
        }
    }
}

#[derive(Debug)]
enum SendError {
    /// Worth retrying: connection refused, timeout, 5xx, 408, 429.
    Retry(String),
    /// The receiver refused the content (other 4xx): retrying cannot help.
    Permanent(String),
}

async fn run(
    shared: Arc<Shared>,
    kind: ReceiverKind,
    target: String,
    timeout: Duration,
    client: HttpClient,
) {
    let uri: Option<Uri> = match target.parse() {
        Ok(u) => Some(u),
        Err(e) => {
            warn!(receiver = %shared.name, error = %e, "receiver URL does not parse: alerts to it are dropped");
            None
        }
    };
    let mut jitter = Jitter::seeded();
    let mut attempt: u32 = 0;
    let mut pacer = Pacer::default();
    loop {
        // Every push wakes this loop: look at the queue's size and age
        // only, and copy the batch out once it goes.
        let (queued, oldest) = {
            let q = shared.lock();
            (q.len(), q.oldest())
        };
        let Some(oldest) = oldest else {
            if shared.closing.load(Ordering::SeqCst) {
                return;
            }
            // A push or close stores a permit when nobody waits, so no wake
            // is lost between the peek and here.
            shared.wake.notified().await;
            continue;
        };
        let now = tokio::time::Instant::now();
        let due = tokio::time::Instant::from_std(pacer.due(now.into_std(), queued, oldest));
        if due > now && !shared.closing.load(Ordering::SeqCst) {
            // Until due, or until a push (a batch may be full now) or close.
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shared.wake.notified() => {}
            }
            continue;
        }
        pacer.sent(now.into_std());
        let batch = shared.lock().peek_batch(BATCH);
        let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        let alerts: Vec<Alert> = batch.into_iter().map(|(_, a)| a).collect();
        let n = alerts.len() as u64;
        let result = match &uri {
            Some(uri) => send(&client, uri, kind, &alerts, timeout).await,
            None => Err(SendError::Permanent("invalid URL".to_string())),
        };
        match result {
            Ok(()) => {
                if attempt > 0 {
                    info!(receiver = %shared.name, attempts = attempt + 1, "receiver reachable again");
                }
                attempt = 0;
                debug!(receiver = %shared.name, alerts = n, "alerts delivered");
                shared.metrics.count(&shared.name, "success", n);
                let len = {
                    let mut q = shared.lock();
                    q.ack(&seqs);
                    q.len()
                };
                shared.set_gauge(len);
            }
            Err(SendError::Permanent(e)) => {
                warn!(receiver = %shared.name, alerts = n, error = %e, "receiver refused alerts: dropped");
                shared.metrics.count(&shared.name, "failure", n);
                let len = {
                    let mut q = shared.lock();
                    q.ack(&seqs);
                    q.len()
                };
                shared.set_gauge(len);
            }
            Err(SendError::Retry(e)) => {
                attempt = attempt.saturating_add(1);
                shared.metrics.count(&shared.name, "retry", n);
                let wait = jitter.apply(backoff(attempt));
                if attempt == 1 || attempt % 10 == 0 {
                    warn!(receiver = %shared.name, alerts = n, attempt, retry_in = ?wait, error = %e, "alert delivery failed: retrying");
                } else {
                    debug!(receiver = %shared.name, alerts = n, attempt, retry_in = ?wait, error = %e, "alert delivery failed: retrying");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn send(
    client: &HttpClient,
    uri: &Uri,
    kind: ReceiverKind,
    alerts: &[Alert],
    timeout: Duration,
) -> Result<(), SendError> {
    let body = match kind {
        ReceiverKind::Alertmanager => payload::alertmanager_body(alerts),
        ReceiverKind::Webhook => payload::webhook_body(alerts),
    };
    let body = serde_json::to_vec(&body).map_err(|e| SendError::Permanent(e.to_string()))?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("cgroup-psi-exporter/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| SendError::Permanent(e.to_string()))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| SendError::Retry(format!("{e:#}")))?;
        let status = resp.status();
        // Read the body so the connection can be reused; its text helps
        // explain a refusal.
        let text = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        classify(status, &text)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Retry(format!("timed out after {timeout:?}"))),
    }
}

fn classify(status: StatusCode, text: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let msg = format!(
        "HTTP {status}: {}",
        text.trim().chars().take(200).collect::<String>()
    );
    if status.is_client_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
    {
        Err(SendError::Permanent(msg))
    } else {
        Err(SendError::Retry(msg))
    }
}

/// Exponential: 0.5 s, 1 s, 2 s, ... capped.
fn backoff(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// Retry jitter: each wait scaled by a random factor in [0.75, 1.25), so
/// several exporters retrying one Alertmanager spread out. fastrand seeds
/// itself per thread.
#[derive(Debug)]
struct Jitter(fastrand::Rng);

impl Jitter {
    fn seeded() -> Jitter {
        Jitter(fastrand::Rng::new())
    }

    /// `d` scaled by a factor in [0.75, 1.25).
    fn apply(&mut self, d: Duration) -> Duration {
        d.mul_f64(0.75 + self.0.f64() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(10), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let mut j = Jitter::seeded();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let d = j.apply(Duration::from_secs(4));
            assert!(
                d >= Duration::from_secs(3) && d < Duration::from_secs(5),
                "{d:?}"
            );
            seen.insert(d.as_millis());
        }
        assert!(seen.len() > 100, "jitter varies");
    }

    #[test]
    fn client_errors_are_permanent_but_429_and_5xx_retry() {
        assert!(classify(StatusCode::OK, "").is_ok());
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, "bad"),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, ""),
            Err(SendError::Retry(_))
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, ""),
            Err(SendError::Retry(_))
        ));
    }
}
