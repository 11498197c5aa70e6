//! A throwaway PKI made with the `openssl` CLI (no certificate-generating
//! crate is a dependency): a CA, a server certificate for IP 127.0.0.1 and
//! a client certificate signed by it, and a second CA with its own client
//! certificate that the first CA does not trust.
//!
//! `Pki::make()` fails with a reason when openssl cannot run;
//! [`make_or_skip`] reports it, and fails instead in CI.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate and its private key, both PEM files.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn make() -> Result<Pki, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .map_err(|e| e.to_string())?;
        for ca in ["ca", "rogue-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=test-{ca}"),
                ],
            )?;
        }
        for (leaf, ca, ext) in [
            ("server", "ca", "server.ext"),
            ("client", "ca", "client.ext"),
            ("rogue-client", "rogue-ca", "client.ext"),
        ] {
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{leaf}.key"),
                    "-out",
                    &format!("{leaf}.csr"),
                    "-subj",
                    &format!("/CN={leaf}"),
                ],
            )?;
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{leaf}.csr"),
                    "-CA",
                    &format!("{ca}.crt"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &format!("{leaf}.crt"),
                    "-days",
                    "2",
                    "-extfile",
                    ext,
                ],
            )?;
        }
        Ok(Pki { dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The trusted CA's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir().join("ca.crt")
    }

    /// The untrusted CA's certificate.
    pub fn rogue_ca(&self) -> PathBuf {
        self.dir().join("rogue-ca.crt")
    }

    fn pair(&self, name: &str) -> Pair {
        Pair {
            cert: self.dir().join(format!("{name}.crt")),
            key: self.dir().join(format!("{name}.key")),
        }
    }

    /// Serving certificate for 127.0.0.1 / localhost, signed by the CA.
    pub fn server(&self) -> Pair {
        self.pair("server")
    }

    /// Client certificate signed by the CA.
    pub fn client(&self) -> Pair {
        self.pair("client")
    }

    /// Client certificate signed by the untrusted CA.
    pub fn rogue_client(&self) -> Pair {
        self.pair("rogue-client")
    }

    /// A TLS acceptor serving [`Pki::server`]; with `client_ca`, clients
    /// must present a certificate that CA signed.
    pub fn acceptor(&self, client_ca: Option<&Path>) -> tokio_rustls::TlsAcceptor {
        use std::sync::Arc;
        let pem = |path: &Path| std::fs::read(path).expect("read pem");
        let server = self.server();
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem(&server.cert))
            .collect::<Result<Vec<_>, _>>()
            .expect("certs");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem(&server.key)).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem(ca)) {
                    roots.add(c.expect("ca cert")).expect("add ca");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(certs, key).expect("server config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// The PKI, or `None` after reporting why it cannot be made; in CI
/// (`CI=true` or `CGPE_REQUIRE_KERNEL=1`) that is a failure, not a skip.
pub fn make_or_skip() -> Option<Pki> {
    match Pki::make() {
        Ok(p) => Some(p),
        Err(reason) => {
            let required = std::env::var("CGPE_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
                || std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!required, "TLS cases need the openssl CLI: {reason}");
            eprintln!("skipped: TLS cases need the openssl CLI: {reason}");
            None
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl not runnable: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
