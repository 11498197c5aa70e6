//! The one HTTP(S) client builder, for the alert receivers and the kubelet.
//! Each use gives its own timeout, body limit and pool idle time; the
//! connector, TLS and exchange (request, response head, bounded body, all
//! under one deadline) are the same.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Request bodies: a JSON document or nothing.
pub type Body = Full<Bytes>;

/// What one use of the client allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// For the whole exchange: connect, TLS, request, response head and
    /// body. Also the connect timeout.
    pub timeout: Duration,
    /// Largest response body read; a longer one is [`BodyError::TooLarge`].
    pub max_body_bytes: usize,
    /// How long an idle pooled connection is kept for the next request.
    pub pool_idle: Duration,
}

/// An HTTP(S) client: `http://` and `https://` URLs alike, HTTP/1.1,
/// pooled. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Body>,
    limits: Limits,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A response: its status, and its body or why the body could not be read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Result<Bytes, BodyError>,
}

/// The exchange failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Connect, TLS or protocol failure.
    #[error(transparent)]
    Request(#[from] hyper_util::client::legacy::Error),
    /// No complete response within [`Limits::timeout`].
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading body: {0}")]
    Read(Box<dyn StdError + Send + Sync>),
}

impl HttpClient {
    /// `tls`: what to trust and present on `https://` connections; `None`
    /// is the public web roots compiled in. Does no I/O.
    pub fn new(tls: Option<rustls::ClientConfig>, limits: Limits) -> HttpClient {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(limits.timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match tls {
            Some(config) => builder.with_tls_config(config),
            None => builder.with_webpki_roots(),
        };
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(limits.pool_idle)
            .build(connector);
        HttpClient { inner, limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sends `req` and reads the response body (up to the limit, so the
    /// connection can be reused), all within the timeout.
    pub async fn send(&self, req: Request<Body>) -> Result<Reply, SendError> {
        let Limits {
            timeout,
            max_body_bytes,
            ..
        } = self.limits;
        let exchange = async {
            let resp = self.inner.request(req).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), max_body_bytes)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| {
                    if e.is::<LengthLimitError>() {
                        BodyError::TooLarge {
                            limit: max_body_bytes,
                        }
                    } else {
                        BodyError::Read(e)
                    }
                });
            Ok(Reply { status, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }
}
