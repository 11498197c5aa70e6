//! Bad input never hurts the exporter: bad paths and configs give one clear
//! line and a non-zero exit; junk, slow and oversized HTTP requests get 4xx
//! or are cut without stalling others; TLS and basic auth work against a
//! real client (curl) and refuse a wrong password; SIGTERM mid-scrape and
//! SIGHUP with a broken config are handled. Runs on fixture trees: no root.

use crate::common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fixtures;

const EXE: &str = env!("CARGO_BIN_EXE_cgroup-psi-exporter");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXE).args(args).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The exporter on a fixture tree, as a child process.
struct Fixture {
    _tree: fixtures::Tree,
    child: std::process::Child,
    port: u16,
}

impl Fixture {
    fn start(extra: &[&str]) -> Fixture {
        let tree = fixtures::v2();
        let port = common::free_port();
        let child = Command::new(EXE)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .arg("--path.cgroupfs")
            .arg(tree.cgroupfs())
            .arg("--path.procfs")
            .arg(tree.procfs())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start");
        let f = Fixture {
            _tree: tree,
            child,
            port,
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return f;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("fixture exporter did not listen");
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    fn stderr(mut self) -> String {
        self.signal("TERM");
        let _ = self.child.wait();
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn missing_roots_are_named_in_one_line_with_exit_64() {
    let (code, _, err) = run(&["--once", "--path.cgroupfs", "/nonexistent/cg"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("/nonexistent/cg"), "{err}");
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{err}"
    );
    let (code, _, err) = run(&["--once", "--path.procfs", "/nonexistent/proc"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("/nonexistent/proc"), "{err}");
    let d = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run(&[
        "--once",
        "--path.cgroupfs",
        d.path().to_str().expect("utf8"),
    ]);
    assert_eq!(code, 64);
    assert!(err.contains("no cgroup hierarchy found"), "{err}");
}

#[test]
fn bad_config_files_give_file_line_column_and_exit_64() {
    let d = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str)] = &[
        ("cgroups:\n  max_depth: ten\n", ":2:"),
        ("cgroups:\n  bogus: 1\n", ":2:"),
        ("psi:\n  rules:\n    - name: x\n      cgroups: [\"/\"]\n      resource: gpu\n      threshold: 100ms\n", ":5:"),
        ("psi: [unclosed\n", ":"),
        ("alerting:\n  timeout: 5 parsecs\n", ":2:"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = d.path().join(format!("bad{i}.yaml"));
        std::fs::write(&f, text).expect("write");
        for mode in ["--check-config", "--once"] {
            let (code, _, err) = run(&[mode, "--config.file", f.to_str().expect("utf8")]);
            assert_eq!(code, 64, "{mode} case {i}: {err}");
            assert!(
                err.contains(&format!("bad{i}.yaml{want}")),
                "{mode} case {i}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let (code, _, err) = run(&["--check-config", "--config.file", "/nonexistent.yaml"]);
    assert_eq!(code, 64);
    assert!(err.contains("/nonexistent.yaml"), "{err}");
}

#[test]
fn a_bad_web_config_is_a_config_error_before_anything_listens() {
    let d = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str)] = &[
        (
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
            "nope.crt",
        ),
        (
            "basic_auth_users:\n  admin: plaintext\n",
            "not a bcrypt hash",
        ),
        ("tls_server_config: [\n", "web.yml:"),
    ];
    for (text, want) in cases {
        let web = d.path().join("web.yml");
        std::fs::write(&web, text).expect("write");
        let web = web.to_str().expect("utf8");
        let (code, _, err) = run(&["--check-config", "--web.config.file", web]);
        assert_eq!(code, 64, "{err}");
        assert!(err.contains(want), "{want}: {err}");
        // A server start fails the same way, without binding the port.
        let port = common::free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(EXE)
            .args(["--web.config.file", web, "--web.listen-address", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start");
        let (status, err) = common::exit_within(child, Duration::from_secs(10))
            .expect("a bad web config did not stop the start");
        assert_eq!(status.code(), Some(64), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(!err.contains("listening"), "{err}");
    }
}

#[test]
fn check_config_prints_the_normalised_config() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = d.path().join("ok.yaml");
    std::fs::write(&f, "cgroups:\n  max_depth: 4\n").expect("write");
    let (code, out, err) = run(&["--check-config", "--config.file", f.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("max_depth: 4") && out.contains("max_cgroups: 20000"),
        "{out}"
    );
}

#[test]
fn kubelet_url_expands_node_ip_from_the_environment() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = d.path().join("kubelet.yaml");
    std::fs::write(
        &f,
        "kubernetes:\n  kubelet_url: \"https://${NODE_IP}:10250\"\n  insecure_skip_verify: true\n",
    )
    .expect("write");
    let f = f.to_str().expect("utf8");
    let run_env = |mode: &str, node_ip: Option<&str>| {
        let mut c = Command::new(EXE);
        c.args([mode, "--config.file", f]);
        match node_ip {
            Some(ip) => c.env("NODE_IP", ip),
            None => c.env_remove("NODE_IP"),
        };
        let out = c.output().expect("run");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run_env("--check-config", Some("127.0.0.1"));
    assert_eq!(code, 0, "{err}");
    // The normalised config keeps the reference, not this node's address.
    assert!(
        out.contains("kubelet_url: https://${NODE_IP}:10250"),
        "{out}"
    );
    assert!(!out.contains("127.0.0.1"), "{out}");

    for mode in ["--check-config", "--once"] {
        let (code, _, err) = run_env(mode, None);
        assert_eq!(code, 64, "{mode}: {err}");
        assert!(
            err.contains("kubelet.yaml:2:16: kubernetes.kubelet_url:")
                && err.contains("environment variable NODE_IP is not set"),
            "{mode}: {err}"
        );
        let (code, _, err) = run_env(mode, Some(""));
        assert_eq!(code, 64, "{mode}: {err}");
        assert!(
            err.contains("environment variable NODE_IP is empty"),
            "{mode}: {err}"
        );
    }
}

#[test]
fn junk_slow_and_oversized_requests_do_not_stall_scrapes() {
    let f = Fixture::start(&[]);
    // A slow client that never finishes its headers.
    let mut slow = TcpStream::connect(("127.0.0.1", f.port)).expect("connect");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    // Many idle connections.
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", f.port)).ok())
        .collect();
    let (s, body) = common::http_get(f.port, "/metrics").expect("scrape");
    assert_eq!(s, 200);
    assert!(body.contains("cgroup_memory_usage_bytes{cgroup=\"/web\"}"));
    // Junk.
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GARBAGE\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
    ] {
        let mut c = TcpStream::connect(("127.0.0.1", f.port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(junk).expect("write");
        let mut r = Vec::new();
        let _ = c.read_to_end(&mut r);
        let r = String::from_utf8_lossy(&r);
        assert!(
            r.is_empty() || r.starts_with("HTTP/1.1 4") || r.starts_with("HTTP/1.1 505"),
            "junk answered: {r:.100}"
        );
    }
    // An oversized header block.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut c = TcpStream::connect(("127.0.0.1", f.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = c.write_all(big.as_bytes());
    let mut r = Vec::new();
    let _ = c.read_to_end(&mut r);
    let r = String::from_utf8_lossy(&r);
    assert!(
        r.is_empty() || r.starts_with("HTTP/1.1 431") || r.starts_with("HTTP/1.1 4"),
        "oversized: {r:.100}"
    );
    // Still serving.
    assert_eq!(
        common::http_get(f.port, "/healthz").expect("healthz").0,
        200
    );
    drop(idle);
    drop(slow);
    // 404 and 405.
    assert_eq!(
        common::http_get(f.port, "/../../etc/passwd")
            .expect("get")
            .0,
        404
    );
    assert_eq!(
        common::http_request(f.port, "PUT", "/metrics", &[])
            .expect("put")
            .0,
        405
    );
}

#[test]
fn sigterm_mid_scrape_finishes_or_cuts_cleanly_and_exits_zero() {
    let f = Fixture::start(&[]);
    let port = f.port;
    let scrapes: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || common::http_get(port, "/metrics")))
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    f.signal("TERM");
    for s in scrapes {
        // Either complete or refused/cut: never a half-written 200.
        if let Ok(Ok((200, body))) = s.join() {
            assert!(
                body.contains("cgroup_psi_exporter_build_info"),
                "a 200 carries the whole exposition"
            );
        }
    }
    let mut f = f;
    let t0 = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = f.child.try_wait() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
}

/// A SIGTERM sent the moment the port accepts connections is handled (exit
/// 0), not fatal: the handlers are installed before the port opens.
#[test]
fn sigterm_as_soon_as_the_port_accepts_exits_zero() {
    for round in 0..10 {
        let tree = fixtures::v2();
        let port = common::free_port();
        let mut child = Command::new(EXE)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .arg("--path.cgroupfs")
            .arg(tree.cgroupfs())
            .arg("--path.procfs")
            .arg(tree.procfs())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "never listened");
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = child.wait().expect("wait");
        assert!(status.success(), "round {round}: exit status {status:?}");
    }
}

#[test]
fn sighup_and_reload_with_a_broken_config_keep_the_old_one() {
    let d = tempfile::tempdir().expect("tempdir");
    let cfg = d.path().join("c.yaml");
    std::fs::write(&cfg, "namespaces: { enabled: false }\n").expect("write");
    let f = Fixture::start(&["--config.file", cfg.to_str().expect("utf8")]);
    std::fs::write(&cfg, "psi: [broken\n").expect("write");
    f.signal("HUP");
    let (s, body) = common::http_request(f.port, "POST", "/-/reload", &[]).expect("reload");
    assert_eq!(s, 500, "{body}");
    assert!(
        body.contains("c.yaml:"),
        "the refusal names the file and line: {body}"
    );
    assert_eq!(
        common::http_get(f.port, "/metrics").expect("scrape").0,
        200,
        "still serving"
    );
    std::fs::write(&cfg, "namespaces: { enabled: false }\n").expect("write");
    assert_eq!(
        common::http_request(f.port, "POST", "/-/reload", &[])
            .expect("reload")
            .0,
        200
    );
    let err = f.stderr();
    assert!(err.contains("config reload refused"), "{err}");
}

fn openssl_cert(dir: &std::path::Path) -> bool {
    Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn tls_and_basic_auth_work_with_a_real_client_and_refuse_a_wrong_password() {
    let d = tempfile::tempdir().expect("tempdir");
    if !openssl_cert(d.path()) {
        return common::skip("openssl not installed");
    }
    if Command::new("curl").arg("--version").output().is_err() {
        return common::skip("curl not installed");
    }
    let hash = bcrypt::hash("s3cret", 6).expect("bcrypt");
    let web = d.path().join("web.yml");
    std::fs::write(&web, format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: {hash}\n")).expect("write");
    let f = Fixture::start(&["--web.config.file", web.to_str().expect("utf8")]);
    let cert = d.path().join("cert.pem");
    let curl = |user: Option<&str>, scheme: &str| -> String {
        let mut args = vec![OsStr::new("--cacert"), cert.as_os_str()];
        if let Some(u) = user {
            args.extend([OsStr::new("-u"), OsStr::new(u)]);
        }
        curl_status(&format!("{scheme}://127.0.0.1:{}/metrics", f.port), &args)
    };
    assert_eq!(curl(Some("prometheus:s3cret"), "https"), "200");
    assert_eq!(curl(Some("prometheus:wrong"), "https"), "401");
    assert_eq!(curl(Some("nobody:s3cret"), "https"), "401");
    assert_eq!(curl(None, "https"), "401");
    assert_ne!(
        curl(Some("prometheus:s3cret"), "http"),
        "200",
        "plain HTTP is not served on a TLS port"
    );
    let err = f.stderr();
    assert!(!err.contains(&hash), "the hash never reaches the logs");
}

/// curl over HTTPS to `/metrics` trusting the test CA, optionally with a
/// client certificate; the HTTP status, or `000` when the handshake failed.
fn curl_mtls(pki: &common::pki::Pki, port: u16, client: Option<&common::pki::Pair>) -> String {
    let ca = pki.ca();
    let mut args = vec![OsStr::new("--cacert"), ca.as_os_str()];
    if let Some(p) = client {
        args.extend([
            OsStr::new("--cert"),
            p.cert.as_os_str(),
            OsStr::new("--key"),
            p.key.as_os_str(),
        ]);
    }
    curl_status(&format!("https://127.0.0.1:{port}/metrics"), &args)
}

/// The HTTP status curl gets for `url` with `args`, or `000` when it got
/// no answer (a refused handshake).
fn curl_status(url: &str, args: &[&OsStr]) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    if code == "200" {
        assert!(
            out.status.success(),
            "curl said 200 but exited {:?}",
            out.status
        );
    }
    code
}

/// The exporter serving TLS with the PKI's server certificate and the given
/// client-auth lines in its web config.
fn start_mtls(pki: &common::pki::Pki, name: &str, client_auth: &str) -> Fixture {
    let web = pki.dir().join(format!("{name}.yml"));
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{client_auth}",
            pki.server().cert.display(),
            pki.server().key.display(),
        ),
    )
    .expect("write");
    Fixture::start(&["--web.config.file", web.to_str().expect("utf8")])
}

#[test]
fn client_certificates_are_enforced_when_the_web_config_asks_for_them() {
    if Command::new("curl").arg("--version").output().is_err() {
        return common::skip("curl not installed");
    }
    let pki = match common::pki::Pki::make() {
        Ok(p) => p,
        Err(reason) => return common::skip(&reason),
    };
    let (trusted, rogue) = (pki.client(), pki.rogue_client());
    let ca = pki.ca();
    let ca = ca.to_str().expect("utf8");

    let f = start_mtls(
        &pki,
        "require",
        &format!("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}\n"),
    );
    assert_eq!(curl_mtls(&pki, f.port, Some(&trusted)), "200");
    assert_eq!(
        curl_mtls(&pki, f.port, None),
        "000",
        "no client certificate: the handshake fails"
    );
    assert_eq!(
        curl_mtls(&pki, f.port, Some(&rogue)),
        "000",
        "a certificate from an untrusted CA: the handshake fails"
    );
    assert_eq!(
        curl_mtls(&pki, f.port, Some(&trusted)),
        "200",
        "still serving"
    );
    drop(f);

    let f = start_mtls(
        &pki,
        "if-given",
        &format!("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {ca}\n"),
    );
    assert_eq!(
        curl_mtls(&pki, f.port, None),
        "200",
        "no certificate is fine"
    );
    assert_eq!(curl_mtls(&pki, f.port, Some(&trusted)), "200");
    assert_eq!(
        curl_mtls(&pki, f.port, Some(&rogue)),
        "000",
        "a certificate, if given, must verify"
    );
    drop(f);

    // A CA with NoClientCert looks like mTLS but checks nothing:
    // refused at start-up (exit 64), as exporter-toolkit refuses it.
    let web = pki.dir().join("none.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {ca}\n",
            pki.server().cert.display(),
            pki.server().key.display(),
        ),
    )
    .expect("write");
    let (code, _, err) = run(&[
        "--check-config",
        "--web.config.file",
        web.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("tls_server_config.client_ca_file is set but client_auth_type is not"),
        "{err}"
    );
}

#[test]
fn rotated_certificates_and_changed_users_apply_without_a_restart() {
    let d = tempfile::tempdir().expect("tempdir");
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir(dir).expect("mkdir");
        if !openssl_cert(dir) {
            return common::skip("openssl not installed");
        }
    }
    if Command::new("curl").arg("--version").output().is_err() {
        return common::skip("curl not installed");
    }
    // Replaced by rename, as a Secret volume or cert-manager does: a reader
    // never sees half a file.
    let install = |name: &str, content: &[u8]| {
        let tmp = d.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).expect("write");
        std::fs::rename(&tmp, d.path().join(name)).expect("rename");
    };
    let web_yml = |password: &str| {
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: {hash}\n")
    };
    let read = |p: std::path::PathBuf| std::fs::read(p).expect("read");
    install("cert.pem", &read(a.join("cert.pem")));
    install("key.pem", &read(a.join("key.pem")));
    install("web.yml", web_yml("one").as_bytes());
    let web = d.path().join("web.yml");
    let f = Fixture::start(&["--web.config.file", web.to_str().expect("utf8")]);
    let curl = |ca: &std::path::Path, user: &str| -> String {
        curl_status(
            &format!("https://127.0.0.1:{}/metrics", f.port),
            &[
                "--cacert".as_ref(),
                ca.as_ref(),
                "-u".as_ref(),
                user.as_ref(),
            ],
        )
    };
    let (ca_a, ca_b) = (a.join("cert.pem"), b.join("cert.pem"));
    assert_eq!(curl(&ca_a, "prometheus:one"), "200");

    // New key pair and a new password, no restart, no signal.
    install("key.pem", &read(b.join("key.pem")));
    install("cert.pem", &read(b.join("cert.pem")));
    install("web.yml", web_yml("two").as_bytes());
    let t0 = Instant::now();
    while curl(&ca_b, "prometheus:two") != "200" {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the new certificate and password were not picked up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        curl(&ca_a, "prometheus:two"),
        "000",
        "the old certificate is gone"
    );
    assert_eq!(
        curl(&ca_b, "prometheus:one"),
        "401",
        "the old password is gone"
    );

    // A broken file is refused; the running config keeps serving.
    install("web.yml", b"tls_server_config: [\n");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(curl(&ca_b, "prometheus:two"), "200");
    assert_eq!(curl(&ca_b, "prometheus:two"), "200");
    let err = f.stderr();
    assert!(err.contains("web config reloaded"), "{err}");
    assert!(err.contains("web config reload refused"), "{err}");
}

#[test]
fn an_fd_limit_below_the_cache_makes_it_back_off_and_scrapes_stay_complete() {
    // 150 cgroups × ~25 files, a cache allowed 5000 fds, and RLIMIT_NOFILE
    // 300: the cache must shrink instead of starving the server of fds.
    let tree = fixtures::v2_many(150);
    let cfg = tree.dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "namespaces: { enabled: false }\nmetrics: { fd_cache: 5000 }\n",
    )
    .expect("write");
    let port = common::free_port();
    let mut child = KillOnDrop(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 300 && exec '{EXE}' --web.listen-address 127.0.0.1:{port} --path.cgroupfs '{}' --path.procfs '{}' --config.file '{}'",
                tree.cgroupfs().display(),
                tree.procfs().display(),
                cfg.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start"),
    );
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "not listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..4 {
        let (s, body) = common::http_get(port, "/metrics").expect("scrape");
        assert_eq!(s, 200);
        let e = common::Exposition::parse(&body);
        let n = e
            .all("cgroup_memory_usage_bytes")
            .iter()
            .filter(|s| {
                s.labels
                    .get("cgroup")
                    .is_some_and(|c| c.starts_with("/many/"))
            })
            .count();
        assert_eq!(n, 150, "every cgroup in every scrape");
    }
    let (_, body) = common::http_get(port, "/metrics").expect("scrape");
    let e = common::Exposition::parse(&body);
    assert!(
        e.get("cgroup_psi_exporter_fd_cache_backoffs_total", &[])
            .unwrap_or(0.0)
            >= 1.0,
        "the cache backed off"
    );
    assert!(
        e.get("cgroup_psi_exporter_fd_cache_fds", &[])
            .unwrap_or(1e9)
            < 300.0
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status();
    let _ = child.0.wait();
    let mut err = String::new();
    if let Some(mut s) = child.0.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    assert!(err.contains("fd cache shrunk"), "{err}");
}

/// A child process killed when the test ends, also when it fails: a
/// panicking test must not leave an exporter running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
