//! A tiny HTTP server that records JSON bodies POSTed to it, and can be
//! told to fail (503) to exercise retries.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Default)]
pub struct State {
    pub bodies: Mutex<Vec<Value>>,
    pub failing: AtomicBool,
    pub requests: AtomicUsize,
    pub handshake_failures: AtomicUsize,
}

pub struct Capture {
    pub url: String,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Capture {
    pub async fn start() -> Capture {
        Self::start_with(None).await
    }

    /// An `https://` capture; failed handshakes are counted in
    /// `state.handshake_failures`.
    pub async fn start_tls(acceptor: TlsAcceptor) -> Capture {
        Self::start_with(Some(acceptor)).await
    }

    async fn start_with(tls: Option<TlsAcceptor>) -> Capture {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/hook", l.local_addr().expect("addr"));
        let state = Arc::new(State::default());
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = l.accept().await {
                let s = s.clone();
                match tls.clone() {
                    None => {
                        tokio::spawn(serve(conn, s));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            match acceptor.accept(conn).await {
                                Ok(stream) => serve(stream, s).await,
                                Err(_) => {
                                    s.handshake_failures.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                        });
                    }
                }
            }
        });
        Capture { url, state, task }
    }

    pub fn set_failing(&self, on: bool) {
        self.state.failing.store(on, Ordering::SeqCst);
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.state.bodies.lock().expect("lock").clone()
    }

    /// Every alert in every webhook body received.
    pub fn alerts(&self) -> Vec<Value> {
        self.bodies()
            .iter()
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, state: Arc<State>) {
    let mut buf = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        state.requests.fetch_add(1, Ordering::SeqCst);
        let resp: &[u8] = if state.failing.load(Ordering::SeqCst) {
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown"
        } else {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                state.bodies.lock().expect("lock").push(v);
            }
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        };
        if conn.write_all(resp).await.is_err() {
            return;
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}
