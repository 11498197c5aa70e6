//! Kubelet enrichment: `pod`, `namespace` and `container` names for the
//! series whose cgroup path already gave a `pod_uid` (and `container_id`).
//!
//! The cgroup path only carries identifiers; the names live in the kubelet's
//! pod list (`GET <kubelet_url>/pods`, a `v1.PodList`). This module keeps a
//! copy of that list reduced to what labels need, in a [`PodNames`] snapshot
//! behind an `RwLock<Arc<_>>`, so a scrape pays one read lock and a few `Arc`
//! clones per lookup and never waits on the network.
//!
//! Refreshes happen in one background task ([`Kubelet::spawn`]): at start,
//! every [`RefreshIntervals::period`], when the registry's watcher sees a new
//! pod cgroup ([`Kubelet::request_refresh`]), and when a lookup misses a pod
//! UID (rate limited). When the kubelet is unreachable the last names are
//! kept, `cgroup_psi_exporter_kubelet_up` drops to 0, and the outage is
//! logged once (`warn!`) with its recovery (`info!`), not once per attempt.
//!
//! The kubelet authorizes `GET /pods` as verb `get` on the `nodes/pods`
//! subresource (fine-grained kubelet authorization, on by default since
//! Kubernetes 1.33) and falls back to `nodes/proxy`, the only subresource
//! older kubelets check; see `docs/kubernetes.md`.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{expand_env_refs, KubernetesConfig};
use crate::labels::PathLabels;
use crate::tlsclient::{ClientTls, TlsClientError};

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

// === PodNames: the pure part ===

/// `(pod, namespace, container)`: the names [`Kubelet::lookup`] adds to a
/// series. The container is `None` for pod-level cgroups and containers the
/// kubelet does not list (the sandbox).
pub type PodLabels = (Arc<str>, Arc<str>, Option<Arc<str>>);

/// Names for one pod, keyed in [`PodNames`] by pod UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub name: Arc<str>,
    pub namespace: Arc<str>,
    /// Container ID (the hex ID without the `containerd://` style scheme,
    /// as it appears in the cgroup path) → container name. Covers regular,
    /// init and ephemeral containers that have started.
    pub containers: HashMap<Box<str>, Arc<str>>,
}

/// The kubelet's pod list reduced to names: pod UID → [`PodInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNames {
    pods: HashMap<Box<str>, PodInfo>,
}

impl PodNames {
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn pod(&self, pod_uid: &str) -> Option<&PodInfo> {
        self.pods.get(pod_uid)
    }

    /// `(pod, namespace, container)` for a pod UID and, optionally, a
    /// container ID from a cgroup path. `None` when the pod is unknown; the
    /// container is `None` when unknown too (the sandbox/pause container and
    /// CRI-O's conmon have cgroups but no status entry).
    ///
    /// Allocation-free: hash lookups on `&str` and `Arc` clones.
    pub fn lookup(&self, pod_uid: &str, container_id: Option<&str>) -> Option<PodLabels> {
        let pod = self.pods.get(pod_uid)?;
        let container = container_id.and_then(|id| pod.container(id)).cloned();
        Some((pod.name.clone(), pod.namespace.clone(), container))
    }
}

impl PodInfo {
    fn container(&self, id: &str) -> Option<&Arc<str>> {
        if let Some(name) = self.containers.get(id) {
            return Some(name);
        }
        // Runtimes always put the full 64-hex ID in the cgroup name, but a
        // path label may carry a shorter prefix (the labels accept >= 12 hex
        // digits); a pod has few containers, so a scan is cheap.
        if id.len() >= 12 && id.len() < 64 {
            return self
                .containers
                .iter()
                .find(|(k, _)| k.starts_with(id))
                .map(|(_, v)| v);
        }
        None
    }
}

/// Error from [`parse_pod_list`]: the body was not a `PodList`.
#[derive(Debug, thiserror::Error)]
#[error("invalid pod list: {0}")]
pub struct ParseError(#[from] serde_json::Error);

// Only the fields labels need; serde skips the rest of each pod.
#[derive(Deserialize)]
struct PodList {
    // Go encodes an empty (nil) slice as `null`.
    #[serde(default)]
    items: Option<Vec<Pod>>,
}

#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default)]
    init_container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default)]
    ephemeral_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    #[serde(default)]
    name: Option<String>,
    /// `containerd://<id>`, `cri-o://<id>`, `docker://<id>`; absent while
    /// the container waits to be created.
    #[serde(default, rename = "containerID")]
    container_id: Option<String>,
}

/// The ID part of a status `containerID` (`<runtime>://<id>`), lower-cased
/// like the cgroup names. `None` for an empty ID.
fn strip_runtime_scheme(raw: &str) -> Option<&str> {
    let id = raw.split_once("://").map_or(raw, |(_, id)| id).trim();
    (!id.is_empty()).then_some(id)
}

/// Parses a kubelet `/pods` body (a `v1.PodList`) into [`PodNames`].
/// Pods without a UID or name are skipped: they cannot be matched or named.
/// Namespace strings are shared between pods of a namespace.
pub fn parse_pod_list(body: &[u8]) -> Result<PodNames, ParseError> {
    let list: PodList = serde_json::from_slice(body)?;
    let mut namespaces: HashMap<String, Arc<str>> = HashMap::new();
    let items = list.items.unwrap_or_default();
    let mut pods = HashMap::with_capacity(items.len());
    for pod in items {
        let Metadata {
            name,
            namespace,
            uid,
        } = pod.metadata.unwrap_or_default();
        let (Some(name), Some(uid)) = (name, uid) else {
            continue;
        };
        if uid.is_empty() || name.is_empty() {
            continue;
        }
        let namespace = namespace.unwrap_or_default();
        let namespace = match namespaces.get(&namespace) {
            Some(ns) => ns.clone(),
            None => {
                let ns: Arc<str> = namespace.as_str().into();
                namespaces.insert(namespace, ns.clone());
                ns
            }
        };
        let mut containers = HashMap::new();
        if let Some(status) = pod.status {
            let all = [
                status.init_container_statuses,
                status.container_statuses,
                status.ephemeral_container_statuses,
            ];
            for c in all.into_iter().flatten().flatten() {
                let Some(id) = c.container_id.as_deref().and_then(strip_runtime_scheme) else {
                    continue;
                };
                let Some(name) = c.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                containers.insert(id.to_ascii_lowercase().into(), name.into());
            }
        }
        pods.insert(
            uid.into_boxed_str(),
            PodInfo {
                name: name.into(),
                namespace,
                containers,
            },
        );
    }
    Ok(PodNames { pods })
}

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
    pub url: String,
    /// Bearer token file, re-read on every refresh: projected service
    /// account tokens are rotated by the kubelet (about hourly).
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle to verify the kubelet's serving certificate with.
    /// `None`: the public web PKI roots (which a kubelet cert rarely chains to).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. See
    /// [`crate::tlsclient::AcceptAnyServerCert`].
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
    fn from_config_with(
        cfg: &KubernetesConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, KubeletError> {
        if cfg.kubelet_url.trim().is_empty() {
            return Ok(None);
        }
        let url = expand_env_refs(&cfg.kubelet_url, env).map_err(|e| KubeletError::InvalidUrl {
            url: cfg.kubelet_url.clone(),
            reason: e.to_string(),
        })?;
        let url = url.trim();
        let token_file = if cfg.token_file.is_empty() {
            let default = Path::new(SERVICE_ACCOUNT_TOKEN);
            default.exists().then(|| default.to_path_buf())
        } else {
            Some(PathBuf::from(&cfg.token_file))
        };
        let ca = Path::new(SERVICE_ACCOUNT_CA);
        Ok(Some(KubeletOptions {
            url: url.to_string(),
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

type Body = Empty<Bytes>;

/// `http://` gets a plain connector: no TLS setup (or CA file) needed.
enum HttpClient {
    Http(Client<HttpConnector, Body>),
    Https(Client<HttpsConnector<HttpConnector>, Body>),
}

impl HttpClient {
    async fn get(
        &self,
        req: Request<Body>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        match self {
            HttpClient::Http(c) => c.request(req).await,
            HttpClient::Https(c) => c.request(req).await,
        }
    }
}

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
    timeout: Duration,
    max_body_bytes: usize,
    intervals: RefreshIntervals,
    names: RwLock<Arc<PodNames>>,
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

    /// Checks the URL, builds the HTTP(S) client and reads the token once,
    /// so a wrong path or URL fails at startup rather than at the first
    /// refresh. Does no network I/O.
    pub fn new(opts: KubeletOptions) -> Result<Self, KubeletError> {
        let invalid = |reason: &str| KubeletError::InvalidUrl {
            url: opts.url.clone(),
            reason: reason.to_string(),
        };
        let base: Uri = opts
            .url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        let https = match base.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(invalid("scheme must be http or https")),
        };
        if base.host().is_none() {
            return Err(invalid("no host"));
        }
        if base.query().is_some() {
            return Err(invalid("no query string allowed"));
        }
        let pods_url: Uri = format!("{}/pods", opts.url.trim().trim_end_matches('/'))
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;

        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(opts.timeout));
        http.set_nodelay(true);
        let client = if https {
            http.enforce_http(false);
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(opts.client_tls().build()?)
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            HttpClient::Https(Client::builder(TokioExecutor::new()).build(connector))
        } else {
            HttpClient::Http(Client::builder(TokioExecutor::new()).build(http))
        };
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
            timeout: opts.timeout,
            max_body_bytes: opts.max_body_bytes,
            intervals: opts.intervals,
            names: RwLock::new(Arc::new(PodNames::default())),
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
        registry.register(
            "cgroup_psi_exporter_kubelet_up",
            "1 when the last fetch of the kubelet pod list succeeded",
            self.metrics.up.clone(),
        );
        registry.register(
            "cgroup_psi_exporter_kubelet_refreshes",
            "Fetches of the kubelet pod list, by outcome",
            self.metrics.refreshes.clone(),
        );
        registry.register(
            "cgroup_psi_exporter_kubelet_pods",
            "Pods in the cached kubelet pod list",
            self.metrics.pods.clone(),
        );
    }

    /// Whether the last fetch succeeded.
    pub fn is_up(&self) -> bool {
        self.metrics.up.get() == 1
    }

    /// The current names. A scrape may take one snapshot and call
    /// [`PodNames::lookup`] on it for every cgroup (one lock for the whole
    /// scrape, one consistent view); misses are then not signalled.
    pub fn snapshot(&self) -> Arc<PodNames> {
        self.names
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// `(pod, namespace, container)` for a pod UID (and container ID) from a
    /// cgroup path; see [`PodNames::lookup`]. Takes a read lock, never
    /// blocks on the network: an unknown pod UID only signals the refresh
    /// task (at most once per [`RefreshIntervals::miss`]).
    pub fn lookup(&self, pod_uid: &str, container_id: Option<&str>) -> Option<PodLabels> {
        let found = self
            .names
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .lookup(pod_uid, container_id);
        if found.is_none() {
            self.signal_miss();
        }
        found
    }

    /// [`Kubelet::lookup`] for the labels a cgroup path gave; `None` for
    /// cgroups that are not a pod's. What the collector calls per cgroup.
    pub fn lookup_labels(&self, labels: &PathLabels) -> Option<PodLabels> {
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
            let names = self
                .names
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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
            *self
                .names
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(names);
            n
        })
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bearer header, from a fresh read of the token file when it works
    /// and the last good token otherwise.
    fn authorization(&self) -> Result<Option<HeaderValue>, KubeletError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let mut cached = self
            .token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match read_token(path) {
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

    async fn fetch(&self) -> Result<PodNames, KubeletError> {
        let url = self.pods_url_str.clone();
        let mut req = Request::get(self.pods_url.clone());
        if let Some(auth) = self.authorization()? {
            req = req.header(AUTHORIZATION, auth);
        }
        let req = req
            .header(ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| KubeletError::InvalidUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let limit = self.max_body_bytes;
        let exchange = async {
            let resp = self
                .client
                .get(req)
                .await
                .map_err(|source| KubeletError::Request {
                    url: url.clone(),
                    source: Box::new(source),
                })?;
            let status = resp.status();
            if !status.is_success() {
                let hint = match status {
                    StatusCode::UNAUTHORIZED => " (token rejected: check kubernetes.token_file)",
                    StatusCode::FORBIDDEN => {
                        " (RBAC: the service account needs get on nodes/pods, or nodes/proxy before Kubernetes 1.33)"
                    }
                    _ => "",
                };
                return Err(KubeletError::Status {
                    url: url.clone(),
                    status,
                    hint,
                });
            }
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|source| {
                    if source.is::<LengthLimitError>() {
                        KubeletError::TooLarge {
                            url: url.clone(),
                            limit,
                        }
                    } else {
                        KubeletError::Body {
                            url: url.clone(),
                            source,
                        }
                    }
                })?;
            Ok(body.to_bytes())
        };
        let body = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| KubeletError::Timeout {
                url: url.clone(),
                timeout: self.timeout,
            })??;
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

    const UID_A: &str = "0d4e1f2a-3b5c-4d6e-8f90-a1b2c3d4e5f6";
    const UID_B: &str = "7c1e9a52-6f0d-4b3e-9a8c-2d5f7e9b1c34";
    const UID_C: &str = "b3a1c9e8-52d4-47f1-8e6a-0f9c2d7b4e81";
    const CID_APP: &str = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";
    const CID_SIDECAR: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
    const CID_INIT: &str = "1111aaaa2222bbbb3333cccc4444dddd5555eeee6666ffff7777000088889999";
    const CID_CRIO: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    const CID_DEBUG: &str = "dededededededededededededededededededededededededededededededede";

    /// Shaped like a real kubelet `/pods` answer (trimmed of the spec and
    /// most status fields, which the parser must skip anyway).
    fn sample() -> String {
        format!(
            r#"{{
  "kind": "PodList",
  "apiVersion": "v1",
  "metadata": {{}},
  "items": [
    {{
      "metadata": {{
        "name": "web-7d9f8b6c5-x2x9q",
        "generateName": "web-7d9f8b6c5-",
        "namespace": "shop",
        "uid": "{UID_A}",
        "resourceVersion": "912345",
        "creationTimestamp": "2026-11-20T08:15:02Z",
        "labels": {{"app": "web", "pod-template-hash": "7d9f8b6c5"}},
        "annotations": {{"kubernetes.io/config.seen": "2026-11-20T08:15:02.113Z"}},
        "ownerReferences": [{{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5", "uid": "aa", "controller": true}}]
      }},
      "spec": {{
        "containers": [{{"name": "app", "image": "nginx:1.27", "resources": {{"limits": {{"memory": "256Mi"}}}}}}],
        "nodeName": "node-1"
      }},
      "status": {{
        "phase": "Running",
        "conditions": [{{"type": "Ready", "status": "True"}}],
        "hostIP": "10.0.0.11",
        "podIP": "10.244.1.17",
        "qosClass": "Burstable",
        "initContainerStatuses": [
          {{"name": "migrate", "state": {{"terminated": {{"exitCode": 0, "reason": "Completed"}}}},
            "ready": true, "restartCount": 0, "image": "busybox:1.36",
            "containerID": "containerd://{CID_INIT}"}}
        ],
        "containerStatuses": [
          {{"name": "app", "state": {{"running": {{"startedAt": "2026-11-20T08:15:09Z"}}}},
            "ready": true, "restartCount": 1, "image": "docker.io/library/nginx:1.27",
            "imageID": "docker.io/library/nginx@sha256:abc",
            "containerID": "containerd://{CID_APP}", "started": true}},
          {{"name": "sidecar", "state": {{"running": {{}}}}, "ready": true, "restartCount": 0,
            "containerID": "containerd://{CID_SIDECAR}"}},
          {{"name": "pending", "state": {{"waiting": {{"reason": "ContainerCreating"}}}},
            "ready": false, "restartCount": 0, "image": "redis:7"}}
        ],
        "ephemeralContainerStatuses": [
          {{"name": "debugger-abc12", "state": {{"running": {{}}}}, "containerID": "containerd://{CID_DEBUG}"}}
        ]
      }}
    }},
    {{
      "metadata": {{"name": "coredns-5d78c9869d-4kq7z", "namespace": "kube-system", "uid": "{UID_B}"}},
      "spec": {{"containers": [{{"name": "coredns"}}]}},
      "status": {{
        "phase": "Running",
        "containerStatuses": [
          {{"name": "coredns", "containerID": "cri-o://{CID_CRIO}", "ready": true, "restartCount": 0}}
        ]
      }}
    }},
    {{
      "metadata": {{"name": "batch-job-q8x2m", "namespace": "shop", "uid": "{UID_C}"}},
      "spec": {{"containers": [{{"name": "job"}}]}},
      "status": {{"phase": "Pending", "qosClass": "BestEffort"}}
    }}
  ]
}}"#
        )
    }

    #[test]
    fn kubelet_pod_list_parses_to_names() {
        let names = parse_pod_list(sample().as_bytes()).expect("sample parses");
        assert_eq!(names.len(), 3);

        let a = names.pod(UID_A).expect("pod A");
        assert_eq!(&*a.name, "web-7d9f8b6c5-x2x9q");
        assert_eq!(&*a.namespace, "shop");
        // app, sidecar, init, ephemeral; the waiting container has no ID yet.
        assert_eq!(a.containers.len(), 4, "{:?}", a.containers);
        assert_eq!(a.containers.get(CID_APP).map(|s| &**s), Some("app"));
        assert_eq!(a.containers.get(CID_INIT).map(|s| &**s), Some("migrate"));
        assert_eq!(
            a.containers.get(CID_DEBUG).map(|s| &**s),
            Some("debugger-abc12")
        );

        let b = names.pod(UID_B).expect("pod B");
        assert_eq!(&*b.namespace, "kube-system");
        assert_eq!(b.containers.get(CID_CRIO).map(|s| &**s), Some("coredns"));

        let c = names.pod(UID_C).expect("pod without statuses");
        assert_eq!(&*c.name, "batch-job-q8x2m");
        assert!(c.containers.is_empty());
        // Pods of one namespace share the string.
        assert!(Arc::ptr_eq(&a.namespace, &c.namespace));
    }

    #[test]
    fn lookup_gives_pod_namespace_and_container() {
        let names = parse_pod_list(sample().as_bytes()).expect("sample parses");
        let (pod, ns, container) = names.lookup(UID_A, Some(CID_SIDECAR)).expect("known");
        assert_eq!((&*pod, &*ns), ("web-7d9f8b6c5-x2x9q", "shop"));
        assert_eq!(container.as_deref(), Some("sidecar"));

        // Pod-level cgroup, and the sandbox container (no status entry).
        assert_eq!(names.lookup(UID_A, None).expect("pod").2, None);
        let sandbox = "ab".repeat(32);
        assert_eq!(names.lookup(UID_A, Some(&sandbox)).expect("pod").2, None);
        // A shorter ID from a path label matches by prefix.
        assert_eq!(
            names
                .lookup(UID_B, Some(&CID_CRIO[..12]))
                .expect("pod")
                .2
                .as_deref(),
            Some("coredns")
        );
        assert!(names
            .lookup("00000000-0000-0000-0000-000000000000", None)
            .is_none());
    }

    #[test]
    fn odd_pod_lists_are_handled() {
        assert!(parse_pod_list(br#"{"kind":"PodList","items":null}"#)
            .expect("null items")
            .is_empty());
        assert!(parse_pod_list(br#"{"items":{}}"#).is_err());
        assert!(parse_pod_list(br#"{"kind":"PodList"}"#)
            .expect("no items")
            .is_empty());
        assert!(parse_pod_list(b"<html>").is_err());
        assert!(parse_pod_list(br#"{"items":[{"metadata":{"name":"x"}}]}"#)
            .expect("pod without uid skipped")
            .is_empty());
        let names = parse_pod_list(
            br#"{"items":[{"metadata":{"name":"x","namespace":"n","uid":"u1"},
            "status":{"containerStatuses":[{"name":"c","containerID":""},
            {"name":"d","containerID":"docker://ABCDEF0123456789"}],"initContainerStatuses":null}}]}"#,
        )
        .expect("parses");
        let pod = names.pod("u1").expect("u1");
        assert_eq!(pod.containers.len(), 1);
        assert_eq!(
            pod.containers.get("abcdef0123456789").map(|s| &**s),
            Some("d")
        );
    }

    #[test]
    fn runtime_scheme_is_stripped() {
        assert_eq!(strip_runtime_scheme("containerd://abc"), Some("abc"));
        assert_eq!(strip_runtime_scheme("cri-o://abc"), Some("abc"));
        assert_eq!(strip_runtime_scheme("abc"), Some("abc"));
        assert_eq!(strip_runtime_scheme("docker://"), None);
    }

    fn opts(url: &str) -> KubeletOptions {
        KubeletOptions {
            url: url.to_string(),
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
        for bad in ["10.0.0.1:10250", "ftp://x/", "https://", "http://x/?a=b"] {
            assert!(
                matches!(
                    Kubelet::new(opts(bad)),
                    Err(KubeletError::InvalidUrl { .. })
                ),
                "{bad}"
            );
        }
        let cfg = KubernetesConfig::default();
        assert!(Kubelet::from_config(&cfg).expect("off").is_none());
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
        assert_eq!(o.url, "https://10.0.0.5:10250");
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
        *k.names.write().expect("lock") =
            Arc::new(parse_pod_list(sample().as_bytes()).expect("sample parses"));
        let labels = crate::labels::from_path(&crate::cgroupfs::CgroupPath::new(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID_APP}.scope",
            UID_A.replace('-', "_")
        )));
        let (pod, ns, c) = k.lookup_labels(&labels).expect("known");
        assert_eq!(
            (&*pod, &*ns, c.as_deref()),
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
