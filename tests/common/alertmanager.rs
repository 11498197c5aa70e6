//! A real Alertmanager for end-to-end tests: started on a free port (with a
//! null receiver, or a given config), stopped (killed) on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::free_port;

pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";

const CONFIG: &str = "\
route:
  receiver: 'null'
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: 'null'
";

pub struct Alertmanager {
    pub port: u16,
    pub dir: PathBuf,
    config: String,
    child: Option<Child>,
}

pub fn available() -> bool {
    Path::new(BINARY).exists()
}

impl Alertmanager {
    /// Starts Alertmanager in `dir` (config and storage) and waits until ready.
    pub fn start(dir: &Path) -> Alertmanager {
        Self::start_with(dir, CONFIG)
    }

    /// Starts with `config` as its alertmanager.yml (a real route).
    pub fn start_with(dir: &Path, config: &str) -> Alertmanager {
        let mut am = Alertmanager {
            port: free_port(),
            dir: dir.to_path_buf(),
            config: config.to_string(),
            child: None,
        };
        am.restart();
        am
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        std::fs::write(self.dir.join("am.yml"), &self.config).expect("write config");
        let storage = self.dir.join("data");
        std::fs::create_dir_all(&storage).expect("storage");
        let log = std::fs::File::create(self.dir.join("am.log")).expect("log");
        let child = Command::new(BINARY)
            .arg(format!(
                "--config.file={}",
                self.dir.join("am.yml").display()
            ))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn alertmanager");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Some((200, _)) = get(self.port, "/-/ready") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "alertmanager not ready; log:\n{}",
            std::fs::read_to_string(self.dir.join("am.log")).unwrap_or_default()
        );
    }

    /// `GET /api/v2/alerts`: the active alerts.
    pub fn alerts(&self) -> Vec<Value> {
        match get(self.port, "/api/v2/alerts") {
            Some((200, body)) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Active alerts whose labels include all of `want`.
    pub fn find(&self, want: &[(&str, &str)]) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|a| want.iter().all(|(k, v)| a["labels"][*k] == *v))
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking HTTP/1.0 GET: (status, body).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// `POST /api/v2/alerts` with `alerts` (a JSON array), as a client of
/// Alertmanager's API would: the HTTP status.
pub fn post_alerts(port: u16, alerts: &Value) -> Option<u16> {
    let body = alerts.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "POST /api/v2/alerts HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// Where `amtool` is, if installed (it comes with the Alertmanager package).
pub fn amtool() -> Option<PathBuf> {
    ["/usr/bin/amtool", "/usr/local/bin/amtool"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}
