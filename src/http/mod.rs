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
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Frame, Incoming};
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
use tokio::sync::{mpsc, Semaphore};
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
}

/// A response body: whole, or the exposition as it is encoded.
pub type Body = Either<Full<Bytes>, Streamed>;

fn whole(r: Response<Full<Bytes>>) -> Response<Body> {
    r.map(Either::Left)
}

/// Bytes of exposition (compressed, with gzip) sent at a time. With the
/// chunks ahead, the pending one and the one being written, about seven
/// are alive at once: 32 KiB keeps that ~0.2 MiB under the 64 KiB chunks'
/// at the scrape's peak RSS, for twice as many (cheap) channel sends.
const CHUNK_BYTES: usize = 32 * 1024;
/// Chunks encoded ahead of the client.
const CHUNKS_AHEAD: usize = 4;
/// How long the encoder waits for a client that does not read, past the
/// scrape's deadline, before it gives up on the response.
const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(30);

/// The exposition as the blocking encoder sends it, a chunk at a time: the
/// whole text (~5 MiB at 2,000 hybrid cgroups) never exists in memory,
/// only [`CHUNKS_AHEAD`] chunks of it. An encoder's failure ends the body
/// with an error, so the client sees a truncated response, not a short
/// valid one.
pub struct Streamed {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(Frame::data(b))));
        }
        self.rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data)))
    }
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
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
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
                whole(r)
            }
            Some(tls::Refusal::RateLimited) => {
                whole(simple(StatusCode::TOO_MANY_REQUESTS, "too many requests\n"))
            }
            Some(tls::Refusal::Busy) => {
                let mut r = simple(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many password checks waiting\n",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                whole(r)
            }
        };
        web.add_headers(resp.headers_mut());
        resp
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() == self.telemetry_path
            && (req.method() == Method::GET || req.method() == Method::HEAD)
        {
            return self.metrics(&req).await;
        }
        whole(self.route_other(req).await)
    }

    /// Everything but the metrics: small, whole responses.
    async fn route_other(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
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

    async fn metrics(&self, req: &Request<Incoming>) -> Response<Body> {
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
        let (tx, mut rx) = mpsc::channel(CHUNKS_AHEAD);
        let runtime = tokio::runtime::Handle::current();
        let give_up = deadline + SLOW_CLIENT_GRACE;
        let encoder = tokio::task::spawn_blocking(move || {
            collector::with_deadline(deadline, || {
                let mut w = ChunkWriter::new(gzip, tx, runtime, give_up);
                let r = encode(&mut w, &registry, openmetrics);
                w.end(r);
            })
        });
        // The first chunk comes once the collection is done and ~32 KiB is
        // encoded: wait for it, so a failure before it is still a 500.
        let first = match rx.recv().await {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                warn!(error = %e, "encoding the exposition failed");
                return whole(simple(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding failed\n",
                ));
            }
            None => {
                if let Err(e) = encoder.await {
                    warn!(error = %e, "scrape task failed");
                }
                return whole(simple(StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n"));
            }
        };
        let content_type = if openmetrics {
            OPENMETRICS_CONTENT_TYPE
        } else {
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE
        };
        let mut r = Response::new(Either::Right(Streamed {
            first: Some(first),
            rx,
        }));
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

/// `fmt::Write` that sends the exposition in chunks of [`CHUNK_BYTES`]
/// (gzip-compressed as it is written, when asked), from the blocking pool.
/// A client that reads nothing for [`SLOW_CLIENT_GRACE`] past the deadline,
/// or one that went away, makes the next write fail and the encoding stop.
struct ChunkWriter {
    plain: Vec<u8>,
    gz: Option<flate2::write::GzEncoder<Vec<u8>>>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    runtime: tokio::runtime::Handle,
    give_up: Instant,
}

impl ChunkWriter {
    fn new(
        gzip: bool,
        tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
        runtime: tokio::runtime::Handle,
        give_up: Instant,
    ) -> ChunkWriter {
        ChunkWriter {
            plain: Vec::with_capacity(if gzip { 0 } else { CHUNK_BYTES + 4096 }),
            gz: gzip.then(|| {
                flate2::write::GzEncoder::new(
                    Vec::with_capacity(CHUNK_BYTES + 4096),
                    flate2::Compression::fast(),
                )
            }),
            tx,
            runtime,
            give_up,
        }
    }

    /// The bytes ready to go out.
    fn pending(&mut self) -> &mut Vec<u8> {
        match self.gz.as_mut() {
            Some(gz) => gz.get_mut(),
            None => &mut self.plain,
        }
    }

    fn send(&mut self, item: Result<Bytes, std::io::Error>) -> std::fmt::Result {
        let until = tokio::time::Instant::from_std(self.give_up);
        match self
            .runtime
            .block_on(tokio::time::timeout_at(until, self.tx.send(item)))
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::fmt::Error), // the client went away
            Err(_) => {
                debug!("client read nothing past the scrape deadline: response dropped");
                Err(std::fmt::Error)
            }
        }
    }

    fn flush(&mut self) -> std::fmt::Result {
        let chunk = std::mem::replace(self.pending(), Vec::with_capacity(CHUNK_BYTES + 4096));
        if chunk.is_empty() {
            return Ok(());
        }
        self.send(Ok(Bytes::from(chunk)))
    }

    /// Ends the body: the rest (and the gzip trailer), or the error that
    /// cut the encoding short.
    fn end(mut self, encoded: std::fmt::Result) {
        let finished = encoded.map_err(|_| std::io::Error::other("encoding failed"));
        let tail = finished.and_then(|()| match self.gz.take() {
            Some(gz) => gz.finish(),
            None => Ok(std::mem::take(&mut self.plain)),
        });
        let _ = match tail {
            Ok(rest) if rest.is_empty() => Ok(()),
            Ok(rest) => self.send(Ok(Bytes::from(rest))),
            Err(e) => self.send(Err(e)),
        };
    }
}

impl std::fmt::Write for ChunkWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        match self.gz.as_mut() {
            Some(gz) => gz.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)?,
            None => self.plain.extend_from_slice(s.as_bytes()),
        }
        if self.pending().len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;
    use std::io::Read as _;

    /// Writes `text` through a [`ChunkWriter`] on a blocking thread and
    /// collects what the body would send.
    async fn through(gzip: bool, text: String) -> (Vec<Bytes>, Option<std::io::Error>) {
        let (tx, mut rx) = mpsc::channel(CHUNKS_AHEAD);
        let rt = tokio::runtime::Handle::current();
        let give_up = Instant::now() + Duration::from_secs(10);
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(gzip, tx, rt, give_up);
            let mut r = Ok(());
            for line in text.split_inclusive('\n') {
                r = w.write_str(line);
                if r.is_err() {
                    break;
                }
            }
            w.end(r);
        });
        let mut chunks = Vec::new();
        let mut err = None;
        while let Some(c) = rx.recv().await {
            match c {
                Ok(b) => chunks.push(b),
                Err(e) => err = Some(e),
            }
        }
        writer.await.expect("writer");
        (chunks, err)
    }

    fn text(lines: usize) -> String {
        (0..lines)
            .map(|i| {
                format!("cgroup_cpu_usage_seconds_total{{cgroup=\"/kubepods/pod{i}\"}} {i}.5\n")
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_exposition_goes_out_in_bounded_chunks_whole() {
        let t = text(20_000);
        let (chunks, err) = through(false, t.clone()).await;
        assert!(err.is_none());
        assert!(
            chunks.len() > 10,
            "{} chunks for {} bytes",
            chunks.len(),
            t.len()
        );
        assert!(chunks.iter().all(|c| c.len() < CHUNK_BYTES + 4096));
        assert_eq!(chunks.concat(), t.as_bytes());
        // gzip: one stream across the chunks, the same text inside.
        let (chunks, err) = through(true, t.clone()).await;
        assert!(err.is_none());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&chunks.concat()[..])
            .read_to_string(&mut out)
            .expect("gunzip");
        assert_eq!(out, t);
    }

    /// Writes `lines` of text through a [`ChunkWriter`] on a blocking
    /// thread into `tx`, giving up at `give_up`; the first write error.
    async fn write_lines(
        tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
        give_up: Instant,
        lines: usize,
    ) -> std::fmt::Result {
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(false, tx, rt, give_up);
            text(lines)
                .split_inclusive('\n')
                .try_for_each(|l| w.write_str(l))
        })
        .await
        .expect("writer")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_gone_stops_the_encoding() {
        let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
        drop(rx);
        let r = write_lines(tx, Instant::now() + Duration::from_secs(10), 20_000).await;
        assert!(r.is_err(), "the first full chunk finds no receiver");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_reads_nothing_is_given_up_on() {
        let (tx, _rx) = mpsc::channel(CHUNKS_AHEAD);
        let t0 = Instant::now();
        let r = write_lines(tx, t0 + Duration::from_millis(200), 50_000).await;
        assert!(r.is_err(), "gave up once the channel stayed full");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
