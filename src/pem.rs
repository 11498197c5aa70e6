//! PEM files named in configs: certificate chains, private keys and CA
//! bundles. One reader for the exporter's own endpoint
//! (`--web.config.file`) and for its clients (the kubelet, the alert
//! receivers), so a bad file is reported the same way wherever it is named.
//!
//! Parsing is rustls-pki-types' `PemObject` (the maintained successor of
//! the archived rustls-pemfile). PEM given inline in a config (the web
//! config's `cert`, `key`, `client_ca`) goes through the same functions
//! with a label in place of the path; errors never quote the PEM itself,
//! since it may be a private key.
//!
//! Blocking: the path functions read files; call them at start-up or off
//! the async workers (see the crate docs).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid PEM: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("{path}: no PEM certificate found")]
    NoCertificates { path: PathBuf },
    #[error("{path}: no PEM private key found")]
    NoKey { path: PathBuf },
    #[error("{path}: not a usable CA certificate: {reason}")]
    BadCa { path: PathBuf, reason: String },
}

impl PemError {
    /// The file the error is about, so a config error can point at the key
    /// that names it.
    pub fn path(&self) -> &Path {
        match self {
            PemError::Read { path, .. }
            | PemError::Syntax { path, .. }
            | PemError::NoCertificates { path }
            | PemError::NoKey { path }
            | PemError::BadCa { path, .. } => path,
        }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "reads a config-named file; callers run at start-up or on the blocking pool"
)]
fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A pki-types PEM error as ours. Its text names markers and base64
/// problems, never the section's content.
fn syntax(origin: &Path, e: pem::Error) -> PemError {
    match e {
        pem::Error::Io(source) => PemError::Read {
            path: origin.to_path_buf(),
            source,
        },
        other => PemError::Syntax {
            path: origin.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// Every certificate in the file, in order (a leaf and its chain, or a CA
/// bundle); none is an error.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    certs_from_pem(&read(path)?, path)
}

/// [`certs`] on PEM text already in memory; `origin` names it in errors.
pub fn certs_from_pem(pem: &[u8], origin: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| syntax(origin, e))?;
    if certs.is_empty() {
        return Err(PemError::NoCertificates {
            path: origin.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in the file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    private_key_from_pem(&read(path)?, path)
}

/// [`private_key`] on PEM text already in memory; `origin` names it in
/// errors.
pub fn private_key_from_pem(pem: &[u8], origin: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => PemError::NoKey {
            path: origin.to_path_buf(),
        },
        other => syntax(origin, other),
    })
}

/// A CA bundle as trust anchors. Every certificate must be usable: one that
/// is not would silently trust less than the operator wrote.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, PemError> {
    roots_from_pem(&read(path)?, path)
}

/// [`roots`] on PEM text already in memory; `origin` names it in errors.
pub fn roots_from_pem(pem: &[u8], origin: &Path) -> Result<rustls::RootCertStore, PemError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs_from_pem(pem, origin)? {
        store.add(cert).map_err(|e| PemError::BadCa {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let d = tempfile::tempdir().expect("tempdir");
        let missing = d.path().join("missing.pem");
        let e = certs(&missing).expect_err("missing");
        assert!(
            matches!(e, PemError::Read { .. }) && e.path() == missing,
            "{e}"
        );
        let text = d.path().join("text.pem");
        std::fs::write(&text, "not a certificate\n").expect("write");
        assert!(matches!(certs(&text), Err(PemError::NoCertificates { .. })));
        assert!(matches!(private_key(&text), Err(PemError::NoKey { .. })));
        // A PEM block labelled CERTIFICATE whose bytes are no certificate.
        let junk = d.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = roots(&junk).expect_err("junk");
        assert!(matches!(e, PemError::BadCa { .. }), "{e}");
        assert!(e.to_string().contains("junk.pem"), "{e}");
    }
}
