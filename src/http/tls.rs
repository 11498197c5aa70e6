//! `--web.config.file`: TLS and basic auth in the Prometheus
//! exporter-toolkit format, so a file written for node_exporter works here:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt hash
//! ```
//!
//! Probes (`/healthz`, `/readyz`) stay open so kubelet probes need no
//! credentials; they reveal nothing.
//!
//! Client certificates (mTLS) follow exporter-toolkit's `client_auth_type`,
//! except for the two modes that accept a certificate without checking its
//! chain: a certificate nobody verifies authenticates nobody, so a file
//! asking for one is refused rather than served with a false sense of
//! security.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
    /// Accepted for compatibility with exporter-toolkit files; ignored.
    #[serde(default)]
    pub http_server_config: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub min_version: Option<String>,
    /// Kept as the string exporter-toolkit documents, so an unknown or
    /// unsupported value is reported by name with the supported ones
    /// listed, instead of as a serde enum error; see [`ClientAuth`].
    #[serde(default)]
    pub client_auth_type: Option<String>,
    /// Trust anchors for client certificates. Relative to the web config
    /// file, like `cert_file`. Required by the two verifying modes: without
    /// it there is nothing to verify against (Go would fall back to the
    /// system roots, which would let any publicly issued certificate in).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
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
            Some(v @ ("RequestClientCert" | "RequireAnyClientCert")) => Err(format!(
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

#[derive(Clone)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    users: Arc<BTreeMap<String, String>>,
    /// The web config file and every file it names: a change to any of
    /// them is a reason to load again (see [`LiveWebConfig`]).
    files: Vec<PathBuf>,
    auth_cache: Arc<AuthCache>,
}

/// Credentials that passed bcrypt, so a scraper that sends the same ones
/// every 15 s pays bcrypt's deliberate cost (tens of ms at cost 10) once,
/// not per scrape. Only successes are kept, at most [`AuthCache::MAX`];
/// failures always pay the full cost, so guessing gets no faster. The
/// cache belongs to one loaded config: changing a hash starts a new one.
#[derive(Debug, Default)]
pub struct AuthCache {
    ok: Mutex<HashSet<(String, String)>>,
    /// bcrypt verifications run, for tests.
    pub verifications: AtomicU64,
}

impl AuthCache {
    const MAX: usize = 64;

    fn verify(&self, user: &str, pass: &str, hash: &str) -> bool {
        let key = (user.to_string(), pass.to_string());
        let mut ok = self.ok.lock().unwrap_or_else(|e| e.into_inner());
        if ok.contains(&key) {
            return true;
        }
        drop(ok);
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let good = bcrypt::verify(pass, hash).unwrap_or(false);
        if good {
            ok = self.ok.lock().unwrap_or_else(|e| e.into_inner());
            if ok.len() >= Self::MAX {
                ok.clear();
            }
            ok.insert(key);
        }
        good
    }
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the hashes.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.len())
            .finish()
    }
}

impl WebConfig {
    pub fn load(file: &Path) -> Result<WebConfig, WebConfigError> {
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
        for (user, hash) in &parsed.basic_auth_users {
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(invalid(format!(
                    "basic_auth_users.{user}: not a bcrypt hash"
                )));
            }
        }
        let base = file.parent().unwrap_or(Path::new("."));
        let mut files = vec![file.to_path_buf()];
        let tls = match &parsed.tls_server_config {
            None => None,
            Some(t) => {
                files.push(base.join(&t.cert_file));
                files.push(base.join(&t.key_file));
                if let Some(ca) = t.client_ca_file.as_deref() {
                    if !ca.as_os_str().is_empty() {
                        files.push(base.join(ca));
                    }
                }
                Some(Arc::new(build_tls(base, t).map_err(invalid)?))
            }
        };
        Ok(WebConfig {
            tls,
            users: Arc::new(parsed.basic_auth_users),
            files,
            auth_cache: Arc::default(),
        })
    }

    /// bcrypt verifications run so far by this config.
    pub fn auth_verifications(&self) -> u64 {
        self.auth_cache.verifications.load(Ordering::Relaxed)
    }

    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    /// Whether a request for `path` must carry credentials.
    pub fn needs_auth(&self, path: &str) -> bool {
        !self.users.is_empty() && !matches!(path, "/healthz" | "/readyz")
    }

    /// `None` when the request may proceed, else the 401 to send.
    pub fn check_auth<B>(&self, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
        if !self.needs_auth(req.uri().path()) {
            return None;
        }
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.check_authorization(header)
    }

    /// The check on an `Authorization` header value. A cache miss runs
    /// bcrypt (tens of ms), so the server calls this off the async workers.
    pub fn check_authorization(&self, header: Option<&str>) -> Option<Response<Full<Bytes>>> {
        let ok = header
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b64| base64_decode(b64.trim()))
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                let (user, pass) = pair.split_once(':')?;
                let hash = self.users.get(user)?;
                Some(self.auth_cache.verify(user, pass, hash))
            })
            .unwrap_or(false);
        if ok {
            return None;
        }
        let mut r = super::simple(StatusCode::UNAUTHORIZED, "unauthorized\n");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"cgroup-psi-exporter\""),
        );
        Some(r)
    }
}

/// How often the files behind the web config are looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// What identifies a file's content without reading it: a rotated
/// Kubernetes Secret swaps a symlink (new inode), an edit changes mtime.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.ino(), m.len()))
}

/// The web config in force. Its files are looked at (a `stat` each) at most
/// once a second, when a connection or request comes, and loaded again when
/// one changed: certificates rotated by cert-manager or a Secret update,
/// and edited users, apply without a restart, as with exporter-toolkit
/// (which reads the file on every handshake). A changed file that does not
/// load is refused with a log line and the running config stays; so is
/// turning TLS on or off, which would change what the port speaks.
pub struct LiveWebConfig {
    file: PathBuf,
    state: Mutex<Live>,
}

struct Live {
    current: Arc<WebConfig>,
    stamps: Vec<Stamp>,
    checked: Instant,
}

impl LiveWebConfig {
    pub fn new(file: PathBuf, initial: WebConfig) -> LiveWebConfig {
        let stamps = initial.files.iter().map(|f| stamp(f)).collect();
        LiveWebConfig {
            file,
            state: Mutex::new(Live {
                current: Arc::new(initial),
                stamps,
                checked: Instant::now(),
            }),
        }
    }

    pub fn current(&self) -> Arc<WebConfig> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.checked.elapsed() < RECHECK {
            return s.current.clone();
        }
        s.checked = Instant::now();
        let stamps: Vec<Stamp> = s.current.files.iter().map(|f| stamp(f)).collect();
        if stamps == s.stamps {
            return s.current.clone();
        }
        // Remembered even when the load fails, so a broken file is
        // reported once, and tried again when it changes.
        s.stamps = stamps;
        match WebConfig::load(&self.file) {
            Ok(new) if new.has_tls() != s.current.has_tls() => {
                tracing::error!(
                    file = %self.file.display(),
                    "web config reload refused: turning TLS on or off needs a restart"
                );
            }
            Ok(new) => {
                s.stamps = new.files.iter().map(|f| stamp(f)).collect();
                s.current = Arc::new(new);
                tracing::info!(file = %self.file.display(), "web config reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "web config reload refused; the running one stays");
            }
        }
        s.current.clone()
    }
}

fn build_tls(base: &Path, t: &TlsServerConfig) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_verifier = client_verifier(base, t, &provider)?;
    let cert_path = base.join(&t.cert_file);
    let certs =
        crate::pem::certs(&cert_path).map_err(|e| format!("tls_server_config.cert_file {e}"))?;
    let key = crate::pem::private_key(&base.join(&t.key_file))
        .map_err(|e| format!("tls_server_config.key_file {e}"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version.as_deref() {
        Some("TLS13") => &[&rustls::version::TLS13],
        None | Some("TLS12") | Some("TLS10") | Some("TLS11") => {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        }
        Some(other) => {
            return Err(format!(
                "tls_server_config.min_version: unknown {other:?} (TLS12 or TLS13)"
            ))
        }
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The verifier for `client_auth_type`, built at load so a broken mTLS
/// setup stops the exporter at start-up instead of serving without client
/// checks. Runs before the server key is read so these mistakes are
/// reported even while the serving certificate is still missing.
fn client_verifier(
    base: &Path,
    t: &TlsServerConfig,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mode = ClientAuth::parse(t.client_auth_type.as_deref())?;
    // An empty path means unset, as in exporter-toolkit.
    let ca_file = t
        .client_ca_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| base.join(p));
    if mode == ClientAuth::NoClientCert {
        if let Some(ca) = &ca_file {
            // exporter-toolkit accepts this combination, so refusing would
            // break files that work with node_exporter; but the operator
            // likely believes clients are checked, so say they are not.
            tracing::warn!(
                client_ca_file = %ca.display(),
                "tls_server_config.client_ca_file is set but client_auth_type is NoClientCert: client certificates are not checked"
            );
        }
        return Ok(rustls::server::WebPkiClientVerifier::no_client_auth());
    }
    let Some(ca_path) = ca_file else {
        return Err(format!(
            "tls_server_config.client_ca_file is required when client_auth_type is {mode:?}"
        ));
    };
    let roots =
        crate::pem::roots(&ca_path).map_err(|e| format!("tls_server_config.client_ca_file {e}"))?;
    let mut builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    if mode == ClientAuth::VerifyClientCertIfGiven {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| {
        format!(
            "tls_server_config.client_ca_file {}: {e}",
            ca_path.display()
        )
    })
}

/// Standard base64 with padding, as HTTP Basic uses. `None` on bad input.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 != 0 || s.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() * 3 / 4);
    for chunk in b.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = chunk.len();
        out.push((acc >> 16) as u8);
        if n > 2 {
            out.push((acc >> 8) as u8);
        }
        if n > 3 {
            out.push(acc as u8);
        }
        if n == 1 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_credentials_pay_bcrypt_once_and_bad_ones_every_time() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("web.yml");
        let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
        std::fs::write(&f, format!("basic_auth_users:\n  alice: {hash}\n")).expect("write");
        let web = WebConfig::load(&f).expect("load");
        let req = |cred: &str| {
            Request::builder()
                .uri("/metrics")
                .header(AUTHORIZATION, format!("Basic {}", b64(cred)))
                .body(())
                .expect("request")
        };
        for _ in 0..3 {
            assert!(web.check_auth(&req("alice:s3cret")).is_none());
        }
        assert_eq!(web.auth_verifications(), 1);
        for _ in 0..3 {
            let r = web.check_auth(&req("alice:wrong")).expect("refused");
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(web.auth_verifications(), 4);
        // Unknown users are refused without a hash to check.
        assert!(web.check_auth(&req("mallory:s3cret")).is_some());
        // A reloaded config (a changed hash) starts with an empty cache.
        let web = WebConfig::load(&f).expect("load");
        assert!(web.check_auth(&req("alice:s3cret")).is_none());
        assert_eq!(web.auth_verifications(), 1);
    }

    fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn base64_round_trips_basic_credentials() {
        assert_eq!(
            base64_decode("dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("!!!!"), None);
        assert_eq!(base64_decode("abc"), None);
    }

    #[test]
    fn bad_hashes_and_unknown_keys_are_refused_with_the_file_named() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("web.yml");
        std::fs::write(&f, "basic_auth_users:\n  alice: plaintext\n").expect("write");
        let e = WebConfig::load(&f).expect_err("plaintext password");
        assert!(e.to_string().contains("not a bcrypt hash"), "{e}");
        std::fs::write(
            &f,
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n",
        )
        .expect("write");
        let e = WebConfig::load(&f).expect_err("unknown key");
        assert!(e.to_string().contains("web.yml:4:"), "{e}");
        std::fs::write(
            &f,
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
        )
        .expect("write");
        let e = WebConfig::load(&f).expect_err("missing cert");
        assert!(e.to_string().contains("missing.crt"), "{e}");
    }

    /// Writes `tls_server_config` with the given client-auth lines (the
    /// serving certificate need not exist: client auth is checked first)
    /// and returns the load error.
    fn client_auth_error(dir: &Path, extra: &str) -> String {
        let f = dir.join("web.yml");
        std::fs::write(
            &f,
            format!("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n{extra}"),
        )
        .expect("write");
        let e = WebConfig::load(&f).expect_err(extra).to_string();
        assert!(e.contains("web.yml"), "names the web config file: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
        e
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
        std::fs::write(d.path().join("ca.crt"), "").expect("write");
        for unverified in ["RequireAnyClientCert", "RequestClientCert"] {
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
    fn basic_auth_accepts_the_right_password_only() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let cfg = WebConfig {
            tls: None,
            users: Arc::new([("prom".to_string(), hash)].into_iter().collect()),
            files: Vec::new(),
            auth_cache: Arc::default(),
        };
        let req = |auth: Option<&str>, path: &str| {
            let mut b = Request::builder().uri(path);
            if let Some(a) = auth {
                b = b.header(AUTHORIZATION, a);
            }
            b.body(()).expect("request")
        };
        assert!(cfg
            .check_auth(&req(Some("Basic cHJvbTpzM2NyZXQ="), "/metrics"))
            .is_none());
        assert!(cfg
            .check_auth(&req(Some("Basic cHJvbTp3cm9uZw=="), "/metrics"))
            .is_some());
        assert!(cfg.check_auth(&req(None, "/metrics")).is_some());
        assert!(cfg.check_auth(&req(None, "/healthz")).is_none());
    }
}
