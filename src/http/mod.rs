//! The HTTP endpoint: `/metrics` (Prometheus text or OpenMetrics, gzip on
//! request), a landing page, probes, and `POST /-/reload`.
//!
//! Hardening: a header read timeout and a small header buffer so a slow or
//! junk client cannot hold a connection open or make us buffer much; a cap
//! on concurrent connections; the scrape itself runs on the blocking pool so
//! a slow client never stalls the runtime that serves PSI triggers.
//!
//! With `--web.config.file` ([`tls`]), each request passes the rate limit
//! and basic auth ([`auth`]: bcrypt on its own thread, so wrong passwords
//! cannot delay a scrape) and every response gets the configured headers.
//! The async/blocking rule this follows is in the crate docs.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry as PromRegistry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::collector;

/// OpenMetrics 1.0 text; prometheus-client 0.26 only has a constant for the
/// 0.0.4 format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Most connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub struct Server {
    pub registry: Arc<PromRegistry>,
    pub telemetry_path: String,
    /// Turns true once the initial discovery walk is done.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// The config in force; `POST /-/reload` runs its reload.
    pub config: Arc<crate::config::Watch>,
    /// The web config in force, with `--web.config.file`.
    pub web: Option<tokio::sync::watch::Receiver<Arc<tls::WebConfig>>>,
    /// Size of the last exposition, to size the next one's buffer.
    pub last_size: Arc<std::sync::atomic::AtomicUsize>,
}

pub mod auth;
pub mod tls;
mod x509;

/// Parses `:9753`, `0.0.0.0:9753`, `[::1]:9753`, `localhost:9753`.
#[allow(
    clippy::disallowed_methods,
    reason = "resolves --web.listen-address once at start-up, before anything is served"
)]
pub fn parse_listen_address(addr: &str) -> Result<SocketAddr, String> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    if let Ok(a) = full.parse() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    full.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: resolves to no address"))
}

impl Server {
    /// Serves until `shutdown` is cancelled, then drains open connections
    /// for at most `grace`.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken, grace: Duration) {
        let this = Arc::new(self);
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        // Whether the port speaks TLS is fixed at start; the certificates
        // are taken from the web config in force per connection.
        let tls = this.web.clone().filter(|w| w.borrow().has_tls());
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off, never stop serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                debug!(%peer, "connection limit reached, closing");
                continue;
            };
            let svc_this = this.clone();
            let service = service_fn(move |req| {
                let this = svc_this.clone();
                async move { Ok::<_, Infallible>(this.handle(req).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES.max(8192));
            match &tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let fut = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = fut.await {
                            debug!(%peer, error = %e, "connection error");
                        }
                        drop(permit);
                    });
                }
                Some(web) => {
                    let Some(acceptor) = web.borrow().acceptor() else {
                        continue;
                    };
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream))
                                .await;
                        let stream = match handshake {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = watcher.watch(conn).await {
                            debug!(%peer, error = %e, "connection error");
                        }
                        drop(permit);
                    });
                }
            }
        }
        drop(listener);
        match tokio::time::timeout(grace, graceful.shutdown()).await {
            Ok(()) => info!("HTTP connections drained"),
            Err(_) => warn!(grace = ?grace, "HTTP drain did not finish in time"),
        }
    }

    /// The web config's gate (rate limit, basic auth), the route, then the
    /// web config's response headers on whatever is answered.
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(web) = &self.web else {
            return self.route(req).await;
        };
        let web = web.borrow().clone();
        let authorization = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut resp = match web.admit(req.uri().path(), authorization.as_deref()).await {
            None => self.route(req).await,
            Some(tls::Refusal::Unauthorized) => {
                let mut r = simple(StatusCode::UNAUTHORIZED, "unauthorized\n");
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"cgroup-psi-exporter\""),
                );
                r
            }
            Some(tls::Refusal::RateLimited) => {
                simple(StatusCode::TOO_MANY_REQUESTS, "too many requests\n")
            }
            Some(tls::Refusal::Busy) => {
                let mut r = simple(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many password checks waiting\n",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        };
        web.add_headers(resp.headers_mut());
        resp
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path == "/-/reload" {
            if req.method() != Method::POST && req.method() != Method::PUT {
                return simple(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
            }
            let config = self.config.clone();
            if !config.has_files() {
                return simple(StatusCode::NOT_FOUND, "no config file to reload\n");
            }
            // The one reload path, as SIGHUP's: both files. Reading and
            // checking files blocks: the blocking pool.
            return match tokio::task::spawn_blocking(move || config.reload()).await {
                Ok(Ok(())) => simple(StatusCode::OK, "config reloaded\n"),
                Ok(Err(refused)) => {
                    let lines: Vec<String> = refused.iter().map(|r| r.to_string()).collect();
                    simple(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("{}\n", lines.join("\n")),
                    )
                }
                Err(_) => simple(StatusCode::INTERNAL_SERVER_ERROR, "reload failed\n"),
            };
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return simple(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        if path == self.telemetry_path {
            return self.metrics(&req).await;
        }
        match path {
            "/" => {
                let body = format!(
                    "<html><head><title>cgroup-psi-exporter</title></head><body>\n<h1>cgroup-psi-exporter</h1>\n<p>Usage, limits and pressure of every cgroup, and a PSI alerting agent.</p>\n<ul><li><a href=\"{p}\">{p}</a></li><li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li></ul>\n<p>version {v}</p></body></html>\n",
                    p = html_escape(&self.telemetry_path),
                    v = env!("CARGO_PKG_VERSION")
                );
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            }
            "/healthz" => simple(StatusCode::OK, "ok\n"),
            "/readyz" => {
                if *self.ready.borrow() {
                    simple(StatusCode::OK, "ready\n")
                } else {
                    simple(StatusCode::SERVICE_UNAVAILABLE, "discovering cgroups\n")
                }
            }
            _ => simple(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    async fn metrics(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let openmetrics = header_has(req, ACCEPT, "application/openmetrics-text");
        let gzip = header_has(req, ACCEPT_ENCODING, "gzip");
        let deadline = Instant::now() + scrape_budget(req);
        // A scrape that lands before the initial walk is done (a restart
        // with Prometheus already scraping) would export no cgroups, and
        // every series would go stale and come back. Wait for the walk,
        // within the scrape's own budget.
        if !*self.ready.borrow() {
            let mut ready = self.ready.clone();
            let until = tokio::time::Instant::from_std(deadline);
            let _ = tokio::time::timeout_at(until, ready.wait_for(|r| *r)).await;
        }
        let registry = self.registry.clone();
        let last_size = self.last_size.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            collector::with_deadline(deadline, || {
                // Sized from the previous exposition, so the buffer does not
                // grow by doubling (old and new copies would coexist).
                let hint = last_size.load(Ordering::Relaxed);
                let body = if gzip {
                    // Compressed as it is encoded: the full text never
                    // exists in memory, only its ~10x smaller gzip.
                    let mut w = GzWriter::new(hint / 8);
                    encode(&mut w, &registry, openmetrics)?;
                    last_size.store(w.written, Ordering::Relaxed);
                    w.finish()?
                } else {
                    let mut out = String::with_capacity(hint + hint / 16 + 4096);
                    encode(&mut out, &registry, openmetrics)?;
                    last_size.store(out.len(), Ordering::Relaxed);
                    out.into_bytes()
                };
                Ok::<_, std::fmt::Error>(body)
            })
        })
        .await;
        let body = match encoded {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return simple(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            Err(e) => {
                warn!(error = %e, "scrape task failed");
                return simple(StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n");
            }
        };
        let content_type = if openmetrics {
            OPENMETRICS_CONTENT_TYPE
        } else {
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzip {
            r.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    }
}

fn encode(
    w: &mut impl std::fmt::Write,
    registry: &PromRegistry,
    openmetrics: bool,
) -> std::fmt::Result {
    if openmetrics {
        prometheus_client::encoding::text::encode(w, registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(w, registry)
    }
}

/// `fmt::Write` into a gzip stream.
struct GzWriter {
    enc: flate2::write::GzEncoder<Vec<u8>>,
    written: usize,
}

impl GzWriter {
    fn new(capacity: usize) -> GzWriter {
        GzWriter {
            enc: flate2::write::GzEncoder::new(
                Vec::with_capacity(capacity.max(4096)),
                flate2::Compression::fast(),
            ),
            written: 0,
        }
    }

    fn finish(self) -> Result<Vec<u8>, std::fmt::Error> {
        self.enc.finish().map_err(|_| std::fmt::Error)
    }
}

impl std::fmt::Write for GzWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.written += s.len();
        self.enc
            .write_all(s.as_bytes())
            .map_err(|_| std::fmt::Error)
    }
}

/// The collection budget: Prometheus's stated scrape timeout less a margin
/// for encoding and transfer, else the default.
fn scrape_budget(req: &Request<Incoming>) -> Duration {
    req.headers()
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64((s * 0.8).min(120.0)))
        .unwrap_or(collector::DEFAULT_DEADLINE)
}

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, needle: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(needle))
}

pub fn simple(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
