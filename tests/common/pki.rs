//! A throwaway PKI made with the `openssl` CLI (no certificate-generating
//! crate is a dependency): a CA, a server certificate for IP 127.0.0.1 and
//! a client certificate signed by it, and a second CA with its own client
//! certificate that the first CA does not trust.
//!
//! `Pki::make()` fails with a reason when openssl cannot run; callers pass
//! that to [`super::skip`], which turns it into a failure in CI.

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
