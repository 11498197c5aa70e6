//! The kubelet client and its pod-name cache: options from the config, the
//! HTTP(S) client, the refresh task, and the `cgroup_psi_exporter_kubelet_*`
//! metrics. See the [module](super) doc for when it refreshes.

use parking_lot::{Mutex, RwLock};
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use hyper::{Request, StatusCode, Uri};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::path::PathLabels;
use super::pods::{parse_pod_list, ParseError, PodIndex, PodNames};
use crate::config::{KubeletUrlError, KubernetesConfig};
use crate::metrics::{self, register, Selection};
use crate::net::{BodyError, ClientTls, HttpClient, HttpUrl, Limits, SendError, TlsClientError};

/// Where Kubernetes mounts the pod's service account token. Used when
/// `kubernetes.token_file` is empty and the file exists (in a pod).
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The cluster CA that comes with the service account. Kubelet serving
/// certificates issued through the CSR API (`serverTLSBootstrap`) chain to it.
pub const SERVICE_ACCOUNT_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// A kubelet pod list is big on a busy node (tens of KiB per pod with
/// managed fields absent, ~110 pods by default) but must not be unbounded:
/// a misbehaving endpoint cannot make the exporter allocate without limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// One request, headers and body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// hyper-util's default: longer than the refresh period, so the periodic
/// fetch reuses its connection (no new TLS handshake each minute).
const POOL_IDLE: Duration = Duration::from_secs(90);

// === Errors ===

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("kubernetes.kubelet_url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: token is empty")]
    EmptyToken { path: PathBuf },
    #[error(transparent)]
    Tls(#[from] TlsClientError),
    #[error("GET {url}: {source}")]
    Request {
        url: Arc<str>,
        #[source]
        source: Box<hyper_util::client::legacy::Error>,
    },
    #[error("GET {url}: no complete response within {timeout:?}")]
    Timeout { url: Arc<str>, timeout: Duration },
    #[error("GET {url}: HTTP {status}{hint}")]
    Status {
        url: Arc<str>,
        status: StatusCode,
        hint: &'static str,
    },
    #[error("GET {url}: body larger than {limit} bytes")]
    TooLarge { url: Arc<str>, limit: usize },
    #[error("GET {url}: reading body: {source}")]
    Body {
        url: Arc<str>,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("GET {url}: {source}")]
    Parse {
        url: Arc<str>,
        #[source]
        source: ParseError,
    },
}

impl KubeletError {
    /// The `outcome` label of `cgroup_psi_exporter_kubelet_refreshes_total`.
    fn outcome(&self) -> &'static str {
        match self {
            KubeletError::Timeout { .. } => "timeout",
            KubeletError::Request { .. } | KubeletError::Body { .. } => "unreachable",
            KubeletError::Status { status, .. }
                if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN =>
            {
                "unauthorized"
            }
            KubeletError::Status { .. } => "http_error",
            KubeletError::TooLarge { .. } | KubeletError::Parse { .. } => "invalid_response",
            KubeletError::ReadFile { .. } | KubeletError::EmptyToken { .. } => "token_error",
            KubeletError::InvalidUrl { .. } | KubeletError::Tls(_) => "config_error",
        }
    }
}

/// An error with its `source()` chain on one line: hyper's top-level
/// messages ("client error (Connect)") say little without it.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

// === Options ===

/// When the background task refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshIntervals {
    /// Minimum gap between two fetches: a burst of new pods (a Deployment
    /// scaled up) costs one fetch, not one per cgroup.
    pub debounce: Duration,
    /// A refresh happens at least this often, to pick up restarted
    /// containers (new IDs) and renamed-in-place nothing else would signal.
    pub period: Duration,
    /// Minimum gap between refreshes caused by lookups of unknown pod UIDs:
    /// a lingering orphan pod cgroup must not make every scrape fetch.
    pub miss: Duration,
    /// While the kubelet is down, the gap between attempts doubles from
    /// `debounce` up to this.
    pub max_backoff: Duration,
}

impl Default for RefreshIntervals {
    fn default() -> Self {
        RefreshIntervals {
            debounce: Duration::from_secs(1),
            period: Duration::from_secs(60),
            miss: Duration::from_secs(15),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Everything [`Kubelet::new`] needs, resolved from the config with
/// [`KubeletOptions::from_config`] (or built by hand in tests).
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// Base URL, `https://NODE_IP:10250`; `/pods` is appended.
    pub url: HttpUrl,
    /// Bearer token file, re-read on every refresh: projected service
    /// account tokens are rotated by the kubelet (about hourly).
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle to verify the kubelet's serving certificate with.
    /// `None`: the public web PKI roots (which a kubelet cert rarely chains to).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. See
    /// [`crate::net::AcceptAnyServerCert`].
    pub insecure_skip_verify: bool,
    pub timeout: Duration,
    pub max_body_bytes: usize,
    pub intervals: RefreshIntervals,
}

impl KubeletOptions {
    /// Options for the configured kubelet, or `None` when
    /// `kubernetes.kubelet_url` is empty (enrichment off). `${VAR}`
    /// references in the URL are expanded from the process environment
    /// (an unset or empty variable is [`KubeletError::InvalidUrl`]). An
    /// empty `token_file` means the service account token when it exists;
    /// the service account CA is used when it exists.
    pub fn from_config(cfg: &KubernetesConfig) -> Result<Option<Self>, KubeletError> {
        Self::from_config_with(cfg, crate::config::process_env)
    }

    /// [`KubeletOptions::from_config`] with the environment given as a
    /// lookup function.
    #[allow(
        clippy::disallowed_methods,
        reason = "start-up only (app's build_exporter, before the port opens): two stats of the service account's files"
    )]
    fn from_config_with(
        cfg: &KubernetesConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, KubeletError> {
        let url = match cfg.kubelet_url(env) {
            Ok(Some(url)) => url,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(KubeletError::InvalidUrl {
                    url: cfg.kubelet_url.clone(),
                    reason: match e {
                        KubeletUrlError::Env(e) => e.to_string(),
                        KubeletUrlError::Url { why, .. } => why,
                    },
                })
            }
        };
        let token_file = if cfg.token_file.is_empty() {
            let default = Path::new(SERVICE_ACCOUNT_TOKEN);
            default.exists().then(|| default.to_path_buf())
        } else {
            Some(PathBuf::from(&cfg.token_file))
        };
        let ca = Path::new(SERVICE_ACCOUNT_CA);
        Ok(Some(KubeletOptions {
            url,
            token_file,
            ca_file: ca.exists().then(|| ca.to_path_buf()),
            insecure_skip_verify: cfg.insecure_skip_verify,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            intervals: RefreshIntervals::default(),
        }))
    }

    fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca_file: self.ca_file.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
            ..ClientTls::default()
        }
    }
}

// === Kubelet ===

struct Metrics {
    up: Gauge,
    pods: Gauge,
    refreshes: Family<[(&'static str, &'static str); 1], Counter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Unknown,
    Up,
    Down,
}

/// The kubelet client and its pod-name cache. Share it as `Arc<Kubelet>`:
/// the collector calls [`Kubelet::lookup`], the watcher
/// [`Kubelet::request_refresh`], and [`Kubelet::spawn`] runs the refreshes.
pub struct Kubelet {
    client: HttpClient,
    pods_url: Uri,
    /// The same, for error messages.
    pods_url_str: Arc<str>,
    token_file: Option<PathBuf>,
    /// The last token read, kept for when a re-read fails mid-rotation.
    token: Mutex<Option<HeaderValue>>,
    intervals: RefreshIntervals,
    names: RwLock<Arc<PodIndex>>,
    notify: Notify,
    /// Base for `next_miss_ms`.
    epoch: Instant,
    /// Milliseconds since `epoch` before which a lookup miss does not ask
    /// for a refresh.
    next_miss_ms: AtomicU64,
    health: Mutex<Health>,
    metrics: Metrics,
}

impl fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("Kubelet")
            .field("pods_url", &self.pods_url)
            .field("token_file", &self.token_file)
            .field("pods", &self.snapshot().len())
            .finish_non_exhaustive()
    }
}

impl Kubelet {
    /// A client for the configured kubelet, or `None` when
    /// `kubernetes.kubelet_url` is empty. Does no network I/O.
    pub fn from_config(cfg: &KubernetesConfig) -> Result<Option<Self>, KubeletError> {
        KubeletOptions::from_config(cfg)?.map(Self::new).transpose()
    }

    /// Builds the HTTP(S) client and reads the token once, so a wrong path
    /// fails at startup rather than at the first refresh. Does no network
    /// I/O.
    pub fn new(opts: KubeletOptions) -> Result<Self, KubeletError> {
        let https = opts.url.is_https();
        let pods_url = opts.url.join("pods");
        // `http://` needs no TLS setup (or CA file).
        let tls = if https {
            Some(opts.client_tls().build()?)
        } else {
            None
        };
        let client = HttpClient::new(
            tls,
            Limits {
                timeout: opts.timeout,
                max_body_bytes: opts.max_body_bytes,
                pool_idle: POOL_IDLE,
            },
        );
        let token = match &opts.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        if opts.insecure_skip_verify && https {
            warn!(
                url = %pods_url,
                "kubelet TLS certificate verification is off (kubernetes.insecure_skip_verify)"
            );
        }
        let refreshes = Family::default();
        // The success series exists from the first scrape, so ratios of
        // failures to successes have a denominator before any fetch.
        let _ = refreshes.get_or_create(&[("outcome", "success")]);
        Ok(Kubelet {
            client,
            pods_url_str: pods_url.to_string().into(),
            pods_url,
            token_file: opts.token_file,
            token: Mutex::new(token),
            intervals: opts.intervals,
            names: RwLock::new(Arc::new(PodIndex::default())),
            notify: Notify::new(),
            epoch: Instant::now(),
            next_miss_ms: AtomicU64::new(0),
            health: Mutex::new(Health::Unknown),
            metrics: Metrics {
                up: Gauge::default(),
                pods: Gauge::default(),
                refreshes,
            },
        })
    }

    /// The URL fetched, `<kubelet_url>/pods`.
    pub fn pods_url(&self) -> &Uri {
        &self.pods_url
    }

    /// Registers `cgroup_psi_exporter_kubelet_up`,
    /// `cgroup_psi_exporter_kubelet_refreshes_total{outcome}` and
    /// `cgroup_psi_exporter_kubelet_pods`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.register_selected(registry, &Selection::all_on());
    }

    /// As [`Kubelet::register_metrics`], leaving out the families `on`
    /// turns off.
    pub fn register_selected(&self, registry: &mut Registry, on: &Selection) {
        let m = &self.metrics;
        register(registry, on, &metrics::KUBELET_UP, m.up.clone());
        register(
            registry,
            on,
            &metrics::KUBELET_REFRESHES,
            m.refreshes.clone(),
        );
        register(registry, on, &metrics::KUBELET_PODS, m.pods.clone());
    }

    /// Whether the last fetch succeeded.
    pub fn is_up(&self) -> bool {
        self.metrics.up.get() == 1
    }

    /// The current names. A scrape may take one snapshot and call
    /// [`PodIndex::lookup`] on it for every cgroup (one lock for the whole
    /// scrape, one consistent view); misses are then not signalled.
    pub fn snapshot(&self) -> Arc<PodIndex> {
        self.names.read().clone()
    }

    /// The names for a pod UID (and container ID) from a cgroup path; see
    /// [`PodIndex::lookup`]. Takes a read lock, never
    /// blocks on the network: an unknown pod UID only signals the refresh
    /// task (at most once per [`RefreshIntervals::miss`]).
    pub fn lookup(&self, pod_uid: &str, container_id: Option<&str>) -> Option<PodNames> {
        let found = self.names.read().lookup(pod_uid, container_id);
        if found.is_none() {
            self.signal_miss();
        }
        found
    }

    /// [`Kubelet::lookup`] for the labels a cgroup path gave; `None` for
    /// cgroups that are not a pod's. What the collector calls per cgroup.
    pub fn lookup_labels(&self, labels: &PathLabels) -> Option<PodNames> {
        let uid = labels.pod_uid.as_deref()?;
        self.lookup(uid, labels.container_id.as_deref())
    }

    /// What the registry's watcher calls for each cgroup it discovers:
    /// requests a refresh when the cgroup belongs to a pod, or a container,
    /// the cache does not know yet (a new pod, a restarted container).
    /// Cheap for known ones, so the initial walk can call it for every
    /// cgroup; a sandbox container (never listed) costs one debounced
    /// refresh when it appears.
    pub fn notice_cgroup(&self, labels: &PathLabels) {
        let Some(uid) = labels.pod_uid.as_deref() else {
            return;
        };
        let known = {
            let names = self.names.read();
            match names.pod(uid) {
                None => false,
                Some(pod) => labels
                    .container_id
                    .as_deref()
                    .is_none_or(|id| pod.container(id).is_some()),
            }
        };
        if !known {
            self.request_refresh();
        }
    }

    /// Asks the refresh task for a fetch soon (within
    /// [`RefreshIntervals::debounce`]). Non-blocking; requests made while a
    /// fetch is pending coalesce into it. Call it when a pod cgroup appears.
    pub fn request_refresh(&self) {
        self.notify.notify_one();
    }

    fn signal_miss(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_miss_ms.load(Ordering::Relaxed);
        if now < next {
            return;
        }
        let miss = u64::try_from(self.intervals.miss.as_millis()).unwrap_or(u64::MAX);
        // One caller wins the slot; the others see the new deadline.
        if self
            .next_miss_ms
            .compare_exchange(
                next,
                now.saturating_add(miss),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Starts the refresh task: a fetch at once, then on request (debounced),
    /// on lookup misses and every [`RefreshIntervals::period`], until
    /// `shutdown` is cancelled.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(&self, shutdown: CancellationToken) {
        let mut last_attempt: Option<tokio::time::Instant> = None;
        let mut failures: u32 = 0;
        loop {
            if let Some(last) = last_attempt {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = self.notify.notified() => {}
                    () = tokio::time::sleep_until(last + self.intervals.period) => {}
                }
                let earliest = last + self.gap(failures);
                if tokio::time::Instant::now() < earliest {
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep_until(earliest) => {}
                    }
                }
            }
            last_attempt = Some(tokio::time::Instant::now());
            let result = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                r = self.refresh() => r,
            };
            failures = match result {
                Ok(_) => 0,
                Err(_) => failures.saturating_add(1),
            };
        }
        debug!("kubelet refresh task stopped");
    }

    /// Minimum gap after an attempt: `debounce`, doubled per consecutive
    /// failure up to `max_backoff`.
    fn gap(&self, failures: u32) -> Duration {
        let i = &self.intervals;
        if failures == 0 {
            return i.debounce;
        }
        i.debounce
            .saturating_mul(1u32 << failures.min(16))
            .min(i.max_backoff.max(i.debounce))
    }

    /// Fetches the pod list once and swaps it in; on failure keeps the last
    /// names. Updates the metrics and logs outage transitions. Returns the
    /// number of pods. The background task calls this; startup code may
    /// too, to have names before the first scrape.
    pub async fn refresh(&self) -> Result<usize, KubeletError> {
        let started = Instant::now();
        let result = self.fetch().await;
        match &result {
            Ok(names) => {
                let n = names.len();
                self.metrics.pods.set(i64::try_from(n).unwrap_or(i64::MAX));
                self.metrics.up.set(1);
                self.metrics
                    .refreshes
                    .get_or_create(&[("outcome", "success")])
                    .inc();
                let previous = std::mem::replace(&mut *self.lock_health(), Health::Up);
                match previous {
                    Health::Down => {
                        info!(url = %self.pods_url, pods = n, "kubelet pod list available again")
                    }
                    Health::Unknown => {
                        info!(url = %self.pods_url, pods = n, "kubelet pod list loaded")
                    }
                    Health::Up => {}
                }
                debug!(
                    pods = n,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "kubelet pod list refreshed"
                );
            }
            Err(e) => {
                self.metrics.up.set(0);
                self.metrics
                    .refreshes
                    .get_or_create(&[("outcome", e.outcome())])
                    .inc();
                let previous = std::mem::replace(&mut *self.lock_health(), Health::Down);
                if previous != Health::Down {
                    warn!(
                        url = %self.pods_url,
                        error = %Chain(e),
                        "kubelet pod list unavailable; series keep their cgroup path labels"
                    );
                } else {
                    debug!(error = %Chain(e), "kubelet pod list still unavailable");
                }
            }
        }
        result.map(|names| {
            let n = names.len();
            *self.names.write() = Arc::new(names);
            n
        })
    }

    fn lock_health(&self) -> parking_lot::MutexGuard<'_, Health> {
        self.health.lock()
    }

    /// The bearer header, from a fresh read of the token file when it works
    /// and the last good token otherwise. The read runs on the blocking
    /// pool: the projected token is rotated by the kubelet, so it is read
    /// on every fetch, and a file read has no place on an async worker.
    async fn authorization(&self) -> Result<Option<HeaderValue>, KubeletError> {
        let Some(path) = self.token_file.clone() else {
            return Ok(None);
        };
        let fresh = match tokio::task::spawn_blocking({
            let path = path.clone();
            move || read_token(&path)
        })
        .await
        {
            Ok(r) => r,
            Err(join) => Err(KubeletError::ReadFile {
                path,
                source: std::io::Error::other(join),
            }),
        };
        let mut cached = self.token.lock();
        match fresh {
            Ok(value) => {
                *cached = Some(value.clone());
                Ok(Some(value))
            }
            Err(e) => match &*cached {
                Some(last) => {
                    debug!(error = %e, "token re-read failed; using the last token");
                    Ok(Some(last.clone()))
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<PodIndex, KubeletError> {
        let url = self.pods_url_str.clone();
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = self.pods_url.clone();
        if let Some(auth) = self.authorization().await? {
            req.headers_mut().insert(AUTHORIZATION, auth);
        }
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let reply = self.client.send(req).await.map_err(|e| match e {
            SendError::Request(source) => KubeletError::Request {
                url: url.clone(),
                source: Box::new(source),
            },
            SendError::Timeout(timeout) => KubeletError::Timeout {
                url: url.clone(),
                timeout,
            },
        })?;
        let status = reply.status;
        if !status.is_success() {
            let hint = match status {
                StatusCode::UNAUTHORIZED => " (token rejected: check kubernetes.token_file)",
                StatusCode::FORBIDDEN => {
                    " (RBAC: the service account needs get on nodes/pods, or nodes/proxy before Kubernetes 1.33)"
                }
                _ => "",
            };
            return Err(KubeletError::Status { url, status, hint });
        }
        let body = reply.body.map_err(|e| match e {
            BodyError::TooLarge { limit } => KubeletError::TooLarge {
                url: url.clone(),
                limit,
            },
            BodyError::Read(source) => KubeletError::Body {
                url: url.clone(),
                source,
            },
        })?;
        // Parsing megabytes of JSON takes milliseconds: keep it off the
        // async workers.
        let parsed = tokio::task::spawn_blocking(move || parse_pod_list(&body)).await;
        match parsed {
            Ok(r) => r.map_err(|source| KubeletError::Parse { url, source }),
            Err(join) => Err(KubeletError::Body {
                url,
                source: Box::new(join),
            }),
        }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "called when the client is built (start-up) and through spawn_blocking"
)]
fn read_token(path: &Path) -> Result<HeaderValue, KubeletError> {
    let raw = std::fs::read_to_string(path).map_err(|source| KubeletError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(KubeletError::EmptyToken {
            path: path.to_path_buf(),
        });
    }
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| KubeletError::ReadFile {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
    // Keeps it out of hyper's debug output.
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::pods::tests::{sample, CID_APP, UID_A, UID_B};

    fn opts(url: &str) -> KubeletOptions {
        KubeletOptions {
            url: HttpUrl::parse(url).expect("test URL"),
            token_file: None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            intervals: RefreshIntervals::default(),
        }
    }

    #[test]
    fn urls_are_checked_and_pods_appended() {
        let k = Kubelet::new(opts("http://10.0.0.1:10255/")).expect("valid");
        assert_eq!(k.pods_url().to_string(), "http://10.0.0.1:10255/pods");
        let cfg = |url: &str| KubernetesConfig {
            kubelet_url: url.to_string(),
            ..KubernetesConfig::default()
        };
        for bad in ["10.0.0.1:10250", "ftp://x/", "https://", "http://x/?a=b"] {
            assert!(
                matches!(
                    Kubelet::from_config(&cfg(bad)),
                    Err(KubeletError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        assert!(Kubelet::from_config(&cfg("")).expect("off").is_none());
    }

    #[test]
    fn url_references_are_expanded_when_options_are_built() {
        let cfg = KubernetesConfig {
            kubelet_url: "https://${NODE_IP}:10250".into(),
            token_file: "/nonexistent/token".into(),
            insecure_skip_verify: true,
        };
        let env = |name: &str| (name == "NODE_IP").then(|| "10.0.0.5".to_string());
        let o = KubeletOptions::from_config_with(&cfg, env)
            .expect("expands")
            .expect("on");
        assert_eq!(o.url.as_str(), "https://10.0.0.5:10250");
        let err = KubeletOptions::from_config_with(&cfg, |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kubernetes.kubelet_url \"https://${NODE_IP}:10250\": environment variable NODE_IP is not set"
        );
        let off = KubernetesConfig::default();
        assert!(KubeletOptions::from_config_with(&off, |_| None)
            .expect("off")
            .is_none());
    }

    #[test]
    fn missing_token_file_fails_at_startup() {
        let mut o = opts("https://127.0.0.1:10250");
        o.token_file = Some(PathBuf::from("/nonexistent/token"));
        o.insecure_skip_verify = true;
        assert!(matches!(
            Kubelet::new(o),
            Err(KubeletError::ReadFile { .. })
        ));
    }

    #[test]
    fn path_labels_resolve_and_unknown_cgroups_ask_for_a_refresh() {
        let k = Kubelet::new(opts("http://127.0.0.1:1")).expect("valid");
        *k.names.write() = Arc::new(parse_pod_list(sample().as_bytes()).expect("sample parses"));
        let labels = crate::kubernetes::path::from_path(&crate::cgroupfs::CgroupPath::new(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID_APP}.scope",
            UID_A.replace('-', "_")
        )));
        let found = k.lookup_labels(&labels).expect("known");
        assert_eq!(
            (&*found.pod, &*found.namespace, found.container.as_deref()),
            ("web-7d9f8b6c5-x2x9q", "shop", Some("app"))
        );
        assert!(k.lookup_labels(&PathLabels::default()).is_none());

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let requested = |k: &Kubelet| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(20), k.notify.notified())
                    .await
                    .is_ok()
            })
        };
        k.notice_cgroup(&labels);
        k.notice_cgroup(&PathLabels::default());
        assert!(!requested(&k), "known pod and container, or no pod");
        let mut unknown = labels.clone();
        unknown.container_id = Some("ab".repeat(32).into());
        k.notice_cgroup(&unknown);
        assert!(requested(&k), "unknown container of a known pod");
        unknown.pod_uid = Some("11111111-2222-3333-4444-555555555555".into());
        unknown.container_id = None;
        k.notice_cgroup(&unknown);
        assert!(requested(&k), "unknown pod");
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let k = Kubelet::new(opts("http://127.0.0.1:1")).expect("valid");
        assert_eq!(k.gap(0), Duration::from_secs(1));
        assert_eq!(k.gap(1), Duration::from_secs(2));
        assert_eq!(k.gap(3), Duration::from_secs(8));
        assert_eq!(k.gap(10), Duration::from_secs(30));
        assert_eq!(k.gap(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn misses_signal_at_most_once_per_interval() {
        let k = Kubelet::new(opts("http://127.0.0.1:1")).expect("valid");
        assert!(k.lookup(UID_A, None).is_none());
        let first = k.next_miss_ms.load(Ordering::Relaxed);
        assert!(first >= 15_000);
        assert!(k.lookup(UID_B, None).is_none());
        assert_eq!(k.next_miss_ms.load(Ordering::Relaxed), first);
    }
}
