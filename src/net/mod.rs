//! Outgoing HTTP(S), shared by the alert receivers and the kubelet client:
//! the URL type the config parses into ([`url`]), client TLS ([`tls`]) and
//! the one client builder ([`client`]).

pub mod client;
pub mod tls;
pub mod url;

pub use client::{BodyError, HttpClient, Limits, Reply, SendError};
pub use tls::{AcceptAnyServerCert, ClientTls, TlsClientError};
pub use url::HttpUrl;
