//! `--web.config.file`: TLS, client certificates, basic auth, response
//! headers and rate limiting in the Prometheus exporter-toolkit format, so
//! a file written for node_exporter gives the same protection here or is
//! refused at start-up with one line naming the key:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt hash
//! ```
//!
//! Every exporter-toolkit key is read. Where rustls cannot do what Go's
//! crypto/tls does (TLS 1.0/1.1, CBC suites, P-521, client certificates
//! that are not verified) the value is refused by name; see
//! `docs/web-config.md` for the table.
//!
//! Probes (`/healthz`, `/readyz`) skip basic auth and the rate limit so
//! kubelet probes need no credentials and are never refused; they reveal
//! nothing.
//!
//! Blocking: [`WebConfig::load`] and [`LiveWebConfig::refresh`] read files
//! and run at start-up or on the blocking pool; [`LiveWebConfig::current`]
//! never touches the file system, so the accept path stays async.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Auth, Verdict};

/// A string that is never printed (an inline private key).
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, Secret>,
}

/// exporter-toolkit's `tls_server_config`. An empty string is unset, as
/// there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// The serving certificate chain as PEM text, instead of `cert_file`.
    #[serde(default)]
    pub cert: Option<String>,
    /// The private key as PEM text, instead of `key_file`.
    #[serde(default)]
    pub key: Option<Secret>,
    /// Client CA certificates as PEM text, instead of `client_ca_file`.
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Kept as the string exporter-toolkit documents, so an unknown or
    /// unsupported value is reported by name with the supported ones
    /// listed; see [`ClientAuth`].
    #[serde(default)]
    pub client_auth_type: Option<String>,
    /// Trust anchors for client certificates. Relative to the web config
    /// file, like `cert_file`. Required by the verifying modes: without it
    /// there is nothing to verify against (Go would fall back to the
    /// system roots, which would let any publicly issued certificate in).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    pub curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    pub client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Only `false` (or absent) is accepted: this exporter serves
    /// HTTP/1.1 (TLS ALPN offers `http/1.1` only, so a scraper that offers
    /// HTTP/2 falls back to it).
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// exporter-toolkit's token bucket: one request per `interval` on
/// average, `burst` at once.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub burst: Option<u32>,
}

/// The `client_auth_type` values this exporter enforces. Go's
/// `RequestClientCert` and `RequireAnyClientCert` are deliberately absent:
/// rustls only offers them through a hand-written verifier that skips chain
/// checks, and honouring them would look like mTLS while letting any
/// self-signed certificate through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

const SUPPORTED_CLIENT_AUTH: &str =
    "NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert";

impl ClientAuth {
    fn parse(value: Option<&str>) -> Result<ClientAuth, String> {
        match value {
            // exporter-toolkit treats an empty string as the default too.
            None | Some("") | Some("NoClientCert") => Ok(ClientAuth::NoClientCert),
            Some("VerifyClientCertIfGiven") => Ok(ClientAuth::VerifyClientCertIfGiven),
            Some("RequireAndVerifyClientCert") => Ok(ClientAuth::RequireAndVerifyClientCert),
            Some(v @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => Err(format!(
                "tls_server_config.client_auth_type: {v} is not supported: it accepts client certificates without verifying them (supported: {SUPPORTED_CLIENT_AUTH})"
            )),
            Some(other) => Err(format!(
                "tls_server_config.client_auth_type: unknown {other:?} (supported: {SUPPORTED_CLIENT_AUTH})"
            )),
        }
    }
}

/// Web-config errors are config errors: the same located, one-line form.
pub type WebConfigError = crate::config::ConfigError;

/// Headers exporter-toolkit lets a web config add, with the values it
/// accepts where the header is an enumeration (any value otherwise).
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A loaded web config: everything checked, files read.
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<Arc<Auth>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    limiter: Option<RateLimiter>,
    /// The web config file and every file it names, each with what it
    /// looked like just before it was read: a change to any of them is a
    /// reason to load again (see [`LiveWebConfig`]).
    stamps: Vec<(PathBuf, Stamp)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hashes or keys.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .field("headers", &self.headers.len())
            .field("rate_limit", &self.limiter.is_some())
            .finish()
    }
}

/// Why a request was not let through to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no or wrong credentials.
    Unauthorized,
    /// 429: over `rate_limit`.
    RateLimited,
    /// 503: too many password checks waiting.
    Busy,
}

impl WebConfig {
    #[allow(
        clippy::disallowed_methods,
        reason = "reads the web config; runs at start-up and on the blocking pool"
    )]
    pub fn load(file: &Path) -> Result<WebConfig, WebConfigError> {
        let file_stamp = stamp(file);
        let text = std::fs::read_to_string(file).map_err(|source| WebConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let parsed: WebConfigFile = if text.trim().is_empty() {
            WebConfigFile::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| crate::config::yaml_error(file, &text, &e))?
        };
        let invalid = |message: String| WebConfigError::Invalid {
            file: file.to_path_buf(),
            message,
        };
        let mut users = BTreeMap::new();
        for (user, hash) in parsed.basic_auth_users {
            // The user's name, never the hash: it is a secret.
            auth::check_hash(&hash.0)
                .map_err(|why| invalid(format!("basic_auth_users.{user}: {why}")))?;
            users.insert(user, hash.0);
        }
        let http = parsed.http_server_config.unwrap_or_default();
        if http.http2 == Some(true) {
            return Err(invalid(
                "http_server_config.http2: true is not supported: this exporter serves HTTP/1.1 only (a scraper that offers HTTP/2 falls back to it); remove the key or set it to false".into(),
            ));
        }
        let headers = headers(&http.headers).map_err(invalid)?;
        let limiter = match parsed.rate_limit {
            None => None,
            Some(r) => RateLimiter::new(&r).map_err(invalid)?,
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let mut stamps = vec![(file.to_path_buf(), file_stamp)];
        let tls = match &parsed.tls_server_config {
            None => None,
            Some(t) => build_tls(base, t, &mut stamps).map_err(invalid)?,
        };
        Ok(WebConfig {
            tls: tls.map(Arc::new),
            auth: Auth::new(users).map(Arc::new),
            headers,
            limiter,
            stamps,
        })
    }

    /// bcrypt checks run so far by this config.
    pub fn auth_verifications(&self) -> u64 {
        self.auth.as_ref().map_or(0, |a| a.verifications())
    }

    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    /// Whether a request for `path` must carry credentials.
    pub fn needs_auth(&self, path: &str) -> bool {
        self.auth.is_some() && !is_probe(path)
    }

    /// The rate limit, then basic auth, for a request to `path` with this
    /// `Authorization` header. `None` lets it through. Cheap unless the
    /// credentials are new (then it waits for the bcrypt thread).
    pub async fn admit(&self, path: &str, authorization: Option<&str>) -> Option<Refusal> {
        if is_probe(path) {
            return None;
        }
        if let Some(l) = &self.limiter {
            if !l.allow() {
                return Some(Refusal::RateLimited);
            }
        }
        match &self.auth {
            None => None,
            Some(a) => match a.check(authorization).await {
                Verdict::Allow => None,
                Verdict::Deny => Some(Refusal::Unauthorized),
                Verdict::Busy => Some(Refusal::Busy),
            },
        }
    }

    /// Adds `http_server_config.headers` to a response.
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
    }
}

fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// `http_server_config.headers`, checked as exporter-toolkit checks them
/// (only its five headers; its enumerated values), and as valid HTTP.
/// A blank value leaves the header unset, as its docs say.
fn headers(map: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for (name, value) in map {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| n == name) else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "http_server_config.headers: {name:?} can not be configured (one of: {})",
                names.join(", ")
            ));
        };
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(format!(
                "http_server_config.headers.{name}: invalid value {value:?} (expected one of: {})",
                allowed.join(", ")
            ));
        }
        let v = HeaderValue::from_str(value).map_err(|_| {
            format!("http_server_config.headers.{name}: not a valid HTTP header value")
        })?;
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("http_server_config.headers: {name:?} is not a header name"))?;
        out.push((n, v));
    }
    Ok(out)
}

/// A token bucket: `burst` requests at once, refilled at one per
/// `interval`; golang.org/x/time/rate's `Allow` as exporter-toolkit uses
/// it, shared by every client (it protects the exporter, not fairness).
struct RateLimiter {
    interval: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `None` when off (no or zero interval, as in exporter-toolkit).
    fn new(c: &RateLimitConfig) -> Result<Option<RateLimiter>, String> {
        let interval = match c.interval.as_deref().map(str::trim) {
            None | Some("") => return Ok(None),
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                format!("rate_limit.interval: {s:?} is not a duration such as 100ms or 1s: {e}")
            })?,
        };
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = c.burst.unwrap_or(0);
        if burst == 0 {
            return Err("rate_limit.burst must be at least 1 when rate_limit.interval is set (0 would refuse every request)".into());
        }
        Ok(Some(RateLimiter {
            interval,
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    fn allow(&self) -> bool {
        let mut s = self.state.lock();
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() / self.interval.as_secs_f64();
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How often the files behind the web config are looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// What identifies a file's content without reading it: a rotated
/// Kubernetes Secret swaps a symlink (new inode), an edit changes mtime.
type Stamp = Option<(SystemTime, u64, u64)>;

#[allow(
    clippy::disallowed_methods,
    reason = "a stat; called from load and refresh, which run off the async workers"
)]
fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.ino(), m.len()))
}

/// The web config in force, published on a `tokio::sync::watch` channel:
/// the server holds a receiver ([`LiveWebConfig::subscribe`]) and clones
/// the current `Arc` per connection and request, with no file system work.
/// New ones come from [`LiveWebConfig::refresh`], which two callers share:
/// the one reload path (`config::Watch::reload`, for SIGHUP and
/// `POST /-/reload`), and a task ([`LiveWebConfig::watch`]) that looks at
/// the files (a `stat` each) once a second on the blocking pool, so that
/// certificates rotated by cert-manager or a Secret update, and edited
/// users or headers, apply without a restart or a signal, as with
/// exporter-toolkit (which reads the file on every request). A changed
/// file that does not load is refused with a log line and the running
/// config stays; so is turning TLS on or off, which would change what the
/// port speaks.
pub struct LiveWebConfig {
    file: PathBuf,
    current: tokio::sync::watch::Sender<Arc<WebConfig>>,
    /// Held by a refresh, so two never interleave; holds the stamps of a
    /// load that was refused, so it is reported once, not every second.
    refused: Mutex<Option<(Vec<Stamp>, String)>>,
}

impl LiveWebConfig {
    pub fn new(file: PathBuf, initial: WebConfig) -> LiveWebConfig {
        LiveWebConfig {
            file,
            current: tokio::sync::watch::Sender::new(Arc::new(initial)),
            refused: Mutex::new(None),
        }
    }

    pub fn current(&self) -> Arc<WebConfig> {
        self.current.borrow().clone()
    }

    /// A receiver of every web config put in force from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<WebConfig>> {
        self.current.subscribe()
    }

    /// Looks at the files and loads them again if one changed. Blocking
    /// (stat, read, parse): call it on the blocking pool. `Ok(true)` when a
    /// new config was installed, `Ok(false)` when nothing changed, the
    /// reason when the files on disk are refused (the running config
    /// stays; logged once per change, reported on every call).
    pub fn refresh(&self) -> Result<bool, String> {
        let mut refused = self.refused.lock();
        let current = self.current();
        let now: Vec<Stamp> = current.stamps.iter().map(|(p, _)| stamp(p)).collect();
        if current
            .stamps
            .iter()
            .map(|(_, s)| *s)
            .eq(now.iter().copied())
        {
            *refused = None;
            return Ok(false);
        }
        if let Some((_, why)) = refused.as_ref().filter(|(s, _)| *s == now) {
            return Err(why.clone());
        }
        let why = match WebConfig::load(&self.file) {
            Ok(new) if new.has_tls() != current.has_tls() => {
                tracing::error!(
                    file = %self.file.display(),
                    "web config reload refused: turning TLS on or off needs a restart"
                );
                format!(
                    "{}: turning TLS on or off needs a restart",
                    self.file.display()
                )
            }
            Ok(new) => {
                self.current.send_replace(Arc::new(new));
                *refused = None;
                tracing::info!(file = %self.file.display(), "web config reloaded");
                return Ok(true);
            }
            Err(e) => {
                tracing::error!(error = %e, "web config reload refused; the running one stays");
                e.to_string()
            }
        };
        *refused = Some((now, why.clone()));
        Err(why)
    }

    /// Refreshes every [`RECHECK`] on the blocking pool until `shutdown`.
    pub fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RECHECK) => {}
                }
                let this = self.clone();
                let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
            }
        });
    }
}

impl crate::config::Companion for LiveWebConfig {
    fn refresh(&self) -> Result<bool, String> {
        LiveWebConfig::refresh(self)
    }
}

/// The TLS settings, or `None` when no certificate, key or client-auth
/// key is set (exporter-toolkit then serves plain HTTP). Settings are
/// checked before any file is read, so every mistake in the file is
/// reported even while a certificate is still missing.
fn build_tls(
    base: &Path,
    t: &TlsServerConfig,
    stamps: &mut Vec<(PathBuf, Stamp)>,
) -> Result<Option<rustls::ServerConfig>, String> {
    let nonempty = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let path = |p: &Option<PathBuf>| {
        p.as_deref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| base.join(p))
    };
    let cert = nonempty(&t.cert);
    let key = t
        .key
        .as_ref()
        .map(|k| k.0.clone())
        .filter(|k| !k.is_empty());
    let client_ca = nonempty(&t.client_ca);
    let (cert_file, key_file, ca_file) = (
        path(&t.cert_file),
        path(&t.key_file),
        path(&t.client_ca_file),
    );
    let auth_type = nonempty(&t.client_auth_type);
    let enabled = cert.is_some()
        || key.is_some()
        || client_ca.is_some()
        || cert_file.is_some()
        || key_file.is_some()
        || ca_file.is_some()
        || auth_type.is_some();
    if !enabled {
        // Go would serve plain HTTP and ignore these; a key that does
        // nothing is refused instead.
        let set = [
            ("min_version", t.min_version.is_some()),
            ("max_version", t.max_version.is_some()),
            ("cipher_suites", t.cipher_suites.is_some()),
            ("curve_preferences", t.curve_preferences.is_some()),
            (
                "prefer_server_cipher_suites",
                t.prefer_server_cipher_suites.is_some(),
            ),
            ("client_allowed_sans", t.client_allowed_sans.is_some()),
        ];
        if let Some((k, _)) = set.iter().find(|(_, s)| *s) {
            return Err(format!(
                "tls_server_config.{k} is set but no certificate is (cert_file and key_file, or cert and key): TLS would be off"
            ));
        }
        return Ok(None);
    }
    for (inline, file, a, b) in [
        (cert.is_some(), cert_file.is_some(), "cert", "cert_file"),
        (key.is_some(), key_file.is_some(), "key", "key_file"),
        (
            client_ca.is_some(),
            ca_file.is_some(),
            "client_ca",
            "client_ca_file",
        ),
    ] {
        if inline && file {
            return Err(format!("tls_server_config: set {a} or {b}, not both"));
        }
        if !inline && !file && a != "client_ca" {
            return Err(format!("tls_server_config: missing one of {a} or {b}"));
        }
    }

    let versions = versions(t)?;
    let provider = Arc::new(provider(t, &versions)?);
    let mode = ClientAuth::parse(auth_type.as_deref())?;
    let ca_key = if client_ca.is_some() {
        "client_ca"
    } else {
        "client_ca_file"
    };
    let has_ca = client_ca.is_some() || ca_file.is_some();
    if mode == ClientAuth::NoClientCert && has_ca {
        return Err(format!(
            "tls_server_config.{ca_key} is set but client_auth_type is not: client certificates would not be checked (set client_auth_type: RequireAndVerifyClientCert; exporter-toolkit refuses this too)"
        ));
    }
    if mode != ClientAuth::NoClientCert && !has_ca {
        return Err(format!(
            "tls_server_config.client_ca_file is required when client_auth_type is {mode:?}"
        ));
    }
    let allowed_sans = match &t.client_allowed_sans {
        None => None,
        Some(_) if mode != ClientAuth::RequireAndVerifyClientCert => {
            return Err("tls_server_config.client_allowed_sans requires client_auth_type: RequireAndVerifyClientCert (otherwise a client could connect without a certificate to match)".into());
        }
        Some(list) if list.iter().all(|s| s.is_empty()) => {
            return Err("tls_server_config.client_allowed_sans is empty: no client could connect (remove the key to allow any verified certificate)".into());
        }
        Some(list) => Some(list.clone()),
    };

    let verifier: Arc<dyn ClientCertVerifier> = if mode == ClientAuth::NoClientCert {
        rustls::server::WebPkiClientVerifier::no_client_auth()
    } else {
        let roots = if let Some(pem) = &client_ca {
            crate::pem::roots_from_pem(pem.as_bytes(), Path::new("(inline client_ca)"))
        } else if let Some(f) = &ca_file {
            stamps.push((f.clone(), stamp(f)));
            crate::pem::roots(f)
        } else {
            return Err("tls_server_config.client_ca_file is required".into());
        }
        .map_err(|e| format!("tls_server_config.{ca_key} {e}"))?;
        let mut builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        );
        if mode == ClientAuth::VerifyClientCertIfGiven {
            builder = builder.allow_unauthenticated();
        }
        let inner = builder
            .build()
            .map_err(|e| format!("tls_server_config.{ca_key}: {e}"))?;
        Arc::new(CheckedClientCert {
            inner,
            allowed_sans,
        })
    };

    let certs = match (&cert, &cert_file) {
        (Some(pem), _) => crate::pem::certs_from_pem(pem.as_bytes(), Path::new("(inline cert)"))
            .map_err(|e| format!("tls_server_config.cert {e}"))?,
        (None, Some(f)) => {
            stamps.push((f.clone(), stamp(f)));
            crate::pem::certs(f).map_err(|e| format!("tls_server_config.cert_file {e}"))?
        }
        (None, None) => return Err("tls_server_config: missing one of cert or cert_file".into()),
    };
    let private_key = match (&key, &key_file) {
        (Some(pem), _) => {
            crate::pem::private_key_from_pem(pem.as_bytes(), Path::new("(inline key)"))
                .map_err(|e| format!("tls_server_config.key {e}"))?
        }
        (None, Some(f)) => {
            stamps.push((f.clone(), stamp(f)));
            crate::pem::private_key(f).map_err(|e| format!("tls_server_config.key_file {e}"))?
        }
        (None, None) => return Err("tls_server_config: missing one of key or key_file".into()),
    };
    let cert_name = if cert.is_some() { "cert" } else { "cert_file" };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, private_key)
        .map_err(|e| format!("tls_server_config.{cert_name} and its key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // exporter-toolkit's default is true: the server's order (the order of
    // cipher_suites and curve_preferences) wins over the client's.
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    Ok(Some(cfg))
}

/// exporter-toolkit's version names.
fn version_number(key: &str, v: Option<&str>, default: u8) -> Result<u8, String> {
    match v {
        None | Some("") => Ok(default),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(format!(
            "tls_server_config.{key}: unknown TLS version {other:?} (TLS10, TLS11, TLS12 or TLS13)"
        )),
    }
}

/// `min_version` (default TLS12) and `max_version` (default TLS13) as
/// rustls versions. rustls has no TLS 1.0 or 1.1: a minimum below 1.2 is
/// raised with a warning (clients that need 1.0/1.1 fail visibly, nobody
/// gets less security than asked for); a maximum below 1.2 cannot be met
/// and is refused.
fn versions(t: &TlsServerConfig) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let min = version_number("min_version", t.min_version.as_deref(), 12)?;
    let max = version_number("max_version", t.max_version.as_deref(), 13)?;
    if max < 12 {
        return Err(format!(
            "tls_server_config.max_version: TLS1{} is not supported: rustls implements TLS 1.2 and 1.3 only",
            max - 10
        ));
    }
    if min < 12 {
        tracing::warn!(
            min_version = %format!("TLS1{}", min - 10),
            "tls_server_config.min_version is raised to TLS12: rustls implements TLS 1.2 and 1.3 only, so clients limited to TLS 1.0/1.1 cannot connect"
        );
    }
    let min = min.max(12);
    if min > max {
        return Err(format!(
            "tls_server_config: min_version TLS1{} is above max_version TLS1{}",
            min - 10,
            max - 10
        ));
    }
    let mut out = Vec::new();
    if max >= 13 {
        out.push(&rustls::version::TLS13);
    }
    if min <= 12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

/// Go's name for a cipher suite (`tls.CipherSuites()`) as rustls' suite:
/// `Ok(None)` for a TLS 1.3 suite, which Go does not let a config choose
/// either (accepted, with a warning that it has no effect).
fn cipher_suite(name: &str) -> Result<Option<SupportedCipherSuite>, String> {
    use rustls::crypto::ring::cipher_suite as cs;
    Ok(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            tracing::warn!(
                cipher = name,
                "tls_server_config.cipher_suites: a TLS 1.3 suite has no effect (TLS 1.3 suites are not configurable, as in Go)"
            );
            return Ok(None);
        }
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => {
            return Err(format!(
                "tls_server_config.cipher_suites: {name} is not supported: rustls has no CBC suites (supported: {})",
                SUPPORTED_CIPHERS.join(", ")
            ))
        }
        other => {
            return Err(format!(
                "tls_server_config.cipher_suites: unknown cipher {other:?} (supported: {})",
                SUPPORTED_CIPHERS.join(", ")
            ))
        }
    }))
}

const SUPPORTED_CIPHERS: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// The crypto provider for `cipher_suites` (TLS 1.2 suites, in order;
/// TLS 1.3 suites always all, as in Go) and `curve_preferences` (in
/// order).
fn provider(
    t: &TlsServerConfig,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<CryptoProvider, String> {
    use rustls::crypto::ring::kx_group;
    let mut p = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        let mut tls12 = Vec::new();
        for n in names {
            if let Some(s) = cipher_suite(n)? {
                tls12.push(s);
            }
        }
        if tls12.is_empty() && versions.contains(&&rustls::version::TLS12) {
            return Err("tls_server_config.cipher_suites names no TLS 1.2 suite, so TLS 1.2 clients could not connect (add one, or set min_version: TLS13)".into());
        }
        let mut suites: Vec<SupportedCipherSuite> = p
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .collect();
        suites.extend(tls12);
        p.cipher_suites = suites;
    }
    if let Some(names) = t.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        let mut groups = Vec::new();
        for n in names {
            groups.push(match n.as_str() {
                "X25519" => kx_group::X25519,
                "CurveP256" => kx_group::SECP256R1,
                "CurveP384" => kx_group::SECP384R1,
                "CurveP521" => return Err("tls_server_config.curve_preferences: CurveP521 is not supported by rustls (supported: X25519, CurveP256, CurveP384)".into()),
                other => return Err(format!(
                    "tls_server_config.curve_preferences: unknown curve {other:?} (supported: X25519, CurveP256, CurveP384)"
                )),
            });
        }
        p.kx_groups = groups;
    }
    Ok(p)
}

/// rustls' verifier plus what exporter-toolkit adds: `client_allowed_sans`,
/// and a log line when a client certificate is refused because it says
/// `CA:TRUE` (what `openssl req -x509` makes by default): Go accepts such a
/// certificate as a client's, rustls does not, and the handshake failure
/// alone would not say why.
#[derive(Debug)]
struct CheckedClientCert {
    inner: Arc<dyn ClientCertVerifier>,
    allowed_sans: Option<Vec<String>>,
}

/// At most one refusal line per this long, so a client retrying in a loop
/// cannot flood the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

fn log_allowed() -> bool {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    static LAST: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(Instant::now);
    // Milliseconds since START, plus one so the first call is always due.
    let now = start.elapsed().as_millis() as u64 + REFUSAL_LOG_EVERY.as_millis() as u64;
    let last = LAST.load(Ordering::Relaxed);
    now.saturating_sub(last) >= REFUSAL_LOG_EVERY.as_millis() as u64
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

impl ClientCertVerifier for CheckedClientCert {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let facts = super::x509::facts(end_entity);
        let verified = match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(v) => v,
            Err(e) => {
                if facts.as_ref().is_some_and(|f| f.is_ca) && log_allowed() {
                    tracing::warn!(
                        error = %e,
                        "client certificate refused: it is a CA certificate (basicConstraints CA:TRUE), which rustls does not accept as a client's; Go (node_exporter) does. Issue the client a certificate with CA:FALSE signed by client_ca_file (see the README)"
                    );
                }
                return Err(e);
            }
        };
        if let Some(allowed) = &self.allowed_sans {
            let sans = facts.map(|f| f.sans).unwrap_or_default();
            if !sans.iter().any(|s| allowed.contains(s)) {
                if log_allowed() {
                    tracing::info!(
                        presented = ?sans,
                        "client certificate refused: none of its subject alternative names is in client_allowed_sans"
                    );
                }
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `web.yml` in `dir` and returns the load error, checked to be
    /// one line naming the file.
    fn load_error(dir: &Path, yaml: &str) -> String {
        let f = dir.join("web.yml");
        std::fs::write(&f, yaml).expect("write");
        let e = WebConfig::load(&f).expect_err(yaml).to_string();
        assert!(e.contains("web.yml"), "names the web config file: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
        e
    }

    /// `tls_server_config` with the given extra lines (the serving
    /// certificate need not exist: settings are checked first).
    fn client_auth_error(dir: &Path, extra: &str) -> String {
        load_error(
            dir,
            &format!("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n{extra}"),
        )
    }

    #[test]
    fn bad_hashes_and_unknown_keys_are_refused_with_the_file_named() {
        let d = tempfile::tempdir().expect("tempdir");
        let e = load_error(d.path(), "basic_auth_users:\n  alice: plaintext\n");
        assert!(
            e.contains("basic_auth_users.alice") && e.contains("not a bcrypt hash"),
            "{e}"
        );
        // Too short to be bcrypt: refused with the user named, never the
        // hash (exporter-toolkit's bcrypt.Cost refuses it too).
        let cut = "$2y$10$QOauhQNbBCuQDKes6eFzPe";
        let e = load_error(d.path(), &format!("basic_auth_users:\n  bob: {cut}\n"));
        assert!(
            e.contains("basic_auth_users.bob") && e.contains("too short") && !e.contains(cut),
            "{e}"
        );
        let e = load_error(
            d.path(),
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n",
        );
        assert!(e.contains("web.yml:4:") && e.contains("bogus"), "{e}");
        let e = load_error(
            d.path(),
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
        );
        assert!(e.contains("missing.crt"), "{e}");
    }

    #[test]
    fn client_auth_types_that_cannot_be_enforced_are_refused_at_load() {
        let d = tempfile::tempdir().expect("tempdir");
        let e = client_auth_error(d.path(), "  client_auth_type: VerifyAlways\n");
        assert!(
            e.contains("tls_server_config.client_auth_type")
                && e.contains("\"VerifyAlways\"")
                && e.contains(SUPPORTED_CLIENT_AUTH),
            "{e}"
        );
        for unverified in [
            "RequireAnyClientCert",
            "RequestClientCert",
            "RequireClientCert",
        ] {
            let e = client_auth_error(
                d.path(),
                &format!("  client_auth_type: {unverified}\n  client_ca_file: ca.crt\n"),
            );
            assert!(
                e.contains(&format!("{unverified} is not supported"))
                    && e.contains("without verifying")
                    && e.contains(SUPPORTED_CLIENT_AUTH),
                "{e}"
            );
        }
    }

    #[test]
    fn a_client_ca_without_client_auth_type_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        // Even a CA file that does not exist: the combination is the error.
        for (line, key) in [
            ("  client_ca_file: nope.crt\n", "client_ca_file"),
            (
                "  client_ca: \"-----BEGIN CERTIFICATE-----\"\n",
                "client_ca",
            ),
            (
                "  client_ca_file: nope.crt\n  client_auth_type: NoClientCert\n",
                "client_ca_file",
            ),
        ] {
            let e = client_auth_error(d.path(), line);
            assert!(
                e.contains(&format!(
                    "tls_server_config.{key} is set but client_auth_type is not"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn verifying_client_auth_needs_a_readable_client_ca_file_with_a_certificate() {
        let d = tempfile::tempdir().expect("tempdir");
        for mode in ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"] {
            let e = client_auth_error(d.path(), &format!("  client_auth_type: {mode}\n"));
            assert!(
                e.contains("tls_server_config.client_ca_file is required") && e.contains(mode),
                "{e}"
            );
            let e = client_auth_error(
                d.path(),
                &format!("  client_auth_type: {mode}\n  client_ca_file: \"\"\n"),
            );
            assert!(
                e.contains("client_ca_file is required"),
                "empty is unset: {e}"
            );
        }
        let mode = "  client_auth_type: RequireAndVerifyClientCert\n";
        let e = client_auth_error(d.path(), &format!("{mode}  client_ca_file: nope.crt\n"));
        // Relative to the web config file's folder, like cert_file.
        let missing = d.path().join("nope.crt");
        assert!(
            e.contains("tls_server_config.client_ca_file")
                && e.contains(&missing.display().to_string()),
            "{e}"
        );
        std::fs::write(
            d.path().join("key-only.pem"),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\nnot a certificate\n",
        )
        .expect("write");
        let e = client_auth_error(d.path(), &format!("{mode}  client_ca_file: key-only.pem\n"));
        assert!(
            e.contains("tls_server_config.client_ca_file")
                && e.contains("key-only.pem")
                && e.contains("no PEM certificate found"),
            "{e}"
        );
        std::fs::write(
            d.path().join("junk.pem"),
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = client_auth_error(d.path(), &format!("{mode}  client_ca_file: junk.pem\n"));
        assert!(
            e.contains("junk.pem") && e.contains("not a usable CA certificate"),
            "{e}"
        );
    }

    #[test]
    fn every_unsupported_value_is_refused_naming_its_key() {
        let d = tempfile::tempdir().expect("tempdir");
        for (extra, want) in [
            ("  max_version: TLS11\n", "tls_server_config.max_version"),
            ("  min_version: TLS14\n", "tls_server_config.min_version"),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "min_version TLS13 is above max_version TLS12",
            ),
            (
                "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n",
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA is not supported",
            ),
            (
                "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
                "tls_server_config.cipher_suites: unknown cipher",
            ),
            (
                "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "names no TLS 1.2 suite",
            ),
            (
                "  curve_preferences: [CurveP521]\n",
                "CurveP521 is not supported",
            ),
            (
                "  curve_preferences: [P256]\n",
                "tls_server_config.curve_preferences: unknown curve",
            ),
            (
                "  client_allowed_sans: [a]\n",
                "client_allowed_sans requires client_auth_type",
            ),
            (
                "  cert: x\n",
                "tls_server_config: set cert or cert_file, not both",
            ),
        ] {
            let e = client_auth_error(d.path(), extra);
            assert!(e.contains(want), "{extra}: {e}");
        }
        for (yaml, want) in [
            (
                "http_server_config:\n  http2: true\n",
                "http_server_config.http2: true is not supported",
            ),
            (
                "http_server_config:\n  headers:\n    Server: x\n",
                "\"Server\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "http_server_config.headers.X-Frame-Options: invalid value",
            ),
            (
                "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
                "X-Content-Type-Options: invalid value",
            ),
            (
                "http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\nb\"\n",
                "not a valid HTTP header value",
            ),
            ("rate_limit:\n  interval: 1s\n", "rate_limit.burst"),
            (
                "rate_limit:\n  interval: soon\n  burst: 1\n",
                "rate_limit.interval",
            ),
            (
                "tls_server_config:\n  min_version: TLS13\n",
                "tls_server_config.min_version is set but no certificate is",
            ),
            (
                "tls_server_config:\n  key_file: k\n",
                "missing one of cert or cert_file",
            ),
        ] {
            let e = load_error(d.path(), yaml);
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn headers_rate_limit_and_http2_false_load() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("web.yml");
        std::fs::write(
            &f,
            "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    X-XSS-Protection: \"\"\n    Strict-Transport-Security: max-age=31536000\nrate_limit:\n  interval: 1s\n  burst: 2\n",
        )
        .expect("write");
        let web = WebConfig::load(&f).expect("load");
        let mut h = HeaderMap::new();
        web.add_headers(&mut h);
        assert_eq!(
            h.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"deny"[..])
        );
        assert!(h.get("x-xss-protection").is_none(), "blank is unset");
        assert_eq!(h.len(), 2);
        let limiter = web.limiter.as_ref().expect("limiter");
        assert!(limiter.allow() && limiter.allow(), "the burst");
        assert!(!limiter.allow(), "then one per interval");
        // An interval of 0 turns it off, as in exporter-toolkit.
        std::fs::write(&f, "rate_limit:\n  interval: 0s\n  burst: 0\n").expect("write");
        assert!(WebConfig::load(&f).expect("load").limiter.is_none());
    }
}
