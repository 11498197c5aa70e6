//! One receiver: its queue and the task that drains it over HTTP.

use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::pacing::{Pacer, BATCH};
use super::payload;
use super::queue::AlertQueue;
use super::{Alert, AlertingMetrics, ReceiverLabels};
use crate::net::{ClientTls, HttpClient, HttpUrl, Limits, SendError as NetError};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Kept short so a receiver that comes back (an Alertmanager restart) gets
/// the queue within seconds.
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A receiver's reply is only read to explain a refusal (its first 200
/// characters are logged) and to reuse the connection.
const MAX_REPLY_BYTES: usize = 64 << 10;
/// Alertmanager keeps idle connections; a minute covers a resend interval.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// One client for every receiver, so they share the connection pool. The
/// TLS files were already read once by config validation; should they have
/// gone since, the public roots are used and deliveries to a private-CA
/// receiver fail loudly (counted, retried) instead of the agent stopping.
pub(crate) fn http_client(tls: &ClientTls, timeout: Duration) -> HttpClient {
    let tls = match tls.build() {
        Ok(config) => Some(config),
        Err(e) => {
            error!(error = %e, "alerting.tls_config: falling back to the public web roots");
            None
        }
    };
    HttpClient::new(
        tls,
        Limits {
            timeout,
            max_body_bytes: MAX_REPLY_BYTES,
            pool_idle: POOL_IDLE,
        },
    )
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
        self.queue.lock()
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
        url: &HttpUrl,
        capacity: usize,
        client: HttpClient,
        metrics: Arc<AlertingMetrics>,
    ) -> Receiver {
        let shared = Arc::new(Shared {
            name: url.as_str().to_string(),
            queue: Mutex::new(AlertQueue::new(capacity)),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            metrics,
        });
        shared.set_gauge(0);
        let target = match kind {
            ReceiverKind::Alertmanager => url.join("api/v2/alerts"),
            ReceiverKind::Webhook => url.uri().clone(),
        };
        let task = tokio::spawn(run(shared.clone(), kind, target, client));
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

async fn run(shared: Arc<Shared>, kind: ReceiverKind, target: Uri, client: HttpClient) {
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
        match send(&client, &target, kind, &alerts).await {
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
) -> Result<(), SendError> {
    let body = match kind {
        ReceiverKind::Alertmanager => payload::alertmanager_body(alerts),
        ReceiverKind::Webhook => payload::webhook_body(alerts),
    };
    let body = serde_json::to_vec(&body).map_err(|e| SendError::Permanent(e.to_string()))?;
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.clone();
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("cgroup-psi-exporter/", env!("CARGO_PKG_VERSION"))),
    );
    match client.send(req).await {
        Ok(reply) => {
            // The text, when it could be read, helps explain a refusal.
            let text = reply
                .body
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            classify(reply.status, &text)
        }
        Err(NetError::Request(e)) => Err(SendError::Retry(format!("{e:#}"))),
        Err(NetError::Timeout(timeout)) => {
            Err(SendError::Retry(format!("timed out after {timeout:?}")))
        }
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
