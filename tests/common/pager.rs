//! A webhook receiver standing in for a pager: Alertmanager's
//! `webhook_configs` POST here, and each notification is kept with the
//! moment it arrived. Plain threads, so tests and benches (no runtime)
//! share it. Stops on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One notification as the pager got it.
#[derive(Debug, Clone)]
pub struct Page {
    pub at: Instant,
    pub body: Value,
}

impl Page {
    /// The alerts in the notification.
    pub fn alerts(&self) -> Vec<&Value> {
        self.body["alerts"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    /// Whether an alert with all of `want` as labels is in it.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        self.alerts()
            .iter()
            .any(|a| want.iter().all(|(k, v)| a["labels"][*k] == *v))
    }
}

pub struct Pager {
    pub url: String,
    port: u16,
    pages: Arc<Mutex<Vec<Page>>>,
    stop: Arc<AtomicBool>,
}

impl Pager {
    pub fn start() -> Pager {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind pager");
        let port = l.local_addr().expect("addr").port();
        let pages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (pages.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let p = p.clone();
                    std::thread::spawn(move || serve(conn, p));
                }
            }
        });
        Pager {
            url: format!("http://127.0.0.1:{port}/pager"),
            port,
            pages,
            stop,
        }
    }

    pub fn pages(&self) -> Vec<Page> {
        self.pages.lock().expect("pages").clone()
    }

    /// The first page (oldest first) for which `f` holds, waiting up to
    /// `timeout` for it.
    pub fn wait(&self, timeout: Duration, f: impl Fn(&Page) -> bool) -> Option<Page> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(p) = self.pages().into_iter().find(|p| f(p)) {
                return Some(p);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// HTTP/1.1 with keep-alive, as Alertmanager's client uses it.
fn serve(conn: TcpStream, pages: Arc<Mutex<Vec<Page>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut len = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        if let Ok(body) = serde_json::from_slice::<Value>(&body) {
            pages.lock().expect("pages").push(Page { at, body });
        }
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// The shipped route (examples/alertmanager.yml) as it is, with its
/// webhook URL pointed at `url`.
pub fn shipped_route(url: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/alertmanager.yml");
    let text = std::fs::read_to_string(path).expect("examples/alertmanager.yml");
    const PLACEHOLDER: &str = "http://pager.example.invalid/cgroup-psi";
    assert!(text.contains(PLACEHOLDER), "{path} names no pager URL");
    text.replace(PLACEHOLDER, url)
}
