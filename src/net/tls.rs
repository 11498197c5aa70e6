//! TLS for the exporter's outgoing connections: the kubelet and the alert
//! receivers. Both talk to servers that usually hold certificates of a
//! private CA (the cluster CA, an in-house PKI), so the public web roots
//! compiled in are only the fallback; a CA file, a client certificate
//! (Alertmanager behind mTLS) and, as a last resort, no verification at
//! all can be asked for.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pem::{self, PemError};

/// What to trust and what to present. Paths are read when the client is
/// built (at startup and on each reload), so rotated files are picked up
/// by a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA bundle to verify the server with; `None`: the public web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) to present, with `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. See [`AcceptAnyServerCert`].
    pub insecure_skip_verify: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("a client certificate needs both cert_file and key_file")]
    HalfPair,
    #[error("TLS client setup: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsClientError {
    /// The file the error is about, so config errors can point at its key.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TlsClientError::Pem(e) => Some(e.path()),
            TlsClientError::HalfPair | TlsClientError::Rustls(_) => None,
        }
    }
}

impl ClientTls {
    /// Whether anything differs from the defaults (public roots, no client
    /// certificate).
    pub fn is_set(&self) -> bool {
        *self != ClientTls::default()
    }

    pub fn build(&self) -> Result<rustls::ClientConfig, TlsClientError> {
        use hyper_rustls::ConfigBuilderExt;

        // An explicit provider: no dependence on a process-wide default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(&provider)))
        } else if let Some(path) = &self.ca_file {
            builder.with_root_certificates(pem::roots(path)?)
        } else {
            builder.with_webpki_roots()
        };
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                Ok(builder.with_client_auth_cert(pem::certs(cert)?, pem::private_key(key)?)?)
            }
            _ => Err(TlsClientError::HalfPair),
        }
    }
}

/// A certificate verifier that accepts any server certificate
/// (`insecure_skip_verify: true`).
///
/// Risk: anyone who can intercept the traffic can impersonate the server:
/// for the kubelet, receive the bearer token (good for `nodes/pods`, or the
/// much broader `nodes/proxy` on older clusters) and feed us false names;
/// for a receiver, swallow alerts. It is the common kubelet setting because
/// kubelets serve self-signed certificates unless `serverTLSBootstrap` is
/// on, and that traffic stays on the node (host IP to host network).
///
/// Handshake signatures are still checked, so the peer at least holds the
/// key of the certificate it presented.
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCert {
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> Self {
        AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_with_the_public_roots() {
        assert!(!ClientTls::default().is_set());
        assert!(ClientTls::default().build().is_ok());
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let d = tempfile::tempdir().expect("tempdir");
        let empty = d.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let missing = d.path().join("missing.pem");

        let e = ClientTls {
            ca_file: Some(missing.clone()),
            ..ClientTls::default()
        }
        .build()
        .expect_err("missing CA");
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let e = ClientTls {
            ca_file: Some(empty.clone()),
            ..ClientTls::default()
        }
        .build()
        .expect_err("CA without certificates");
        assert!(
            matches!(e, TlsClientError::Pem(PemError::NoCertificates { .. })),
            "{e}"
        );

        let e = ClientTls {
            cert_file: Some(empty.clone()),
            ..ClientTls::default()
        }
        .build()
        .expect_err("cert without key");
        assert!(matches!(e, TlsClientError::HalfPair), "{e}");

        let e = ClientTls {
            cert_file: Some(empty.clone()),
            key_file: Some(empty),
            ..ClientTls::default()
        }
        .build()
        .expect_err("no certificate in cert_file");
        assert!(
            matches!(e, TlsClientError::Pem(PemError::NoCertificates { .. })),
            "{e}"
        );
    }
}
