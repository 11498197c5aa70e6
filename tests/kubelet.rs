//! Kubelet enrichment against a local fake kubelet: a hyper server on
//! 127.0.0.1 that serves a `/pods` list shaped like the kubelet's, checks
//! the bearer token, and can be stopped and restarted on the same port to
//! play an outage. The TLS cases use certificates made by the `openssl` CLI
//! at test time (tests/common/pki.rs) and are skipped, with the reason
//! printed, without it; in CI that is a failure.

#[allow(dead_code)]
#[path = "common/pki.rs"]
mod pki;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cgroup_psi_exporter::kubernetes::{
    Kubelet, KubeletError, KubeletOptions, PodNames, RefreshIntervals, DEFAULT_MAX_BODY_BYTES,
};
use cgroup_psi_exporter::net::{HttpUrl, TlsClientError};
use cgroup_psi_exporter::pem::PemError;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const UID_WEB: &str = "0d4e1f2a-3b5c-4d6e-8f90-a1b2c3d4e5f6";
const UID_DNS: &str = "7c1e9a52-6f0d-4b3e-9a8c-2d5f7e9b1c34";
const UID_JOB: &str = "b3a1c9e8-52d4-47f1-8e6a-0f9c2d7b4e81";
const UID_NEW: &str = "5e5e5e5e-1111-4222-8333-444455556666";
const CID_APP: &str = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";
const CID_INIT: &str = "1111aaaa2222bbbb3333cccc4444dddd5555eeee6666ffff7777000088889999";
const CID_DNS: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
const CID_NEW: &str = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.test-token";

fn pod(uid: &str, ns: &str, name: &str, statuses: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"{ns}","uid":"{uid}","labels":{{"app":"x"}}}},
        "spec":{{"containers":[{{"name":"c","image":"busybox"}}]}},
        "status":{{"phase":"Running","hostIP":"10.0.0.11"{statuses}}}}}"#
    )
}

fn pod_list(extra: bool) -> String {
    let mut items = vec![
        pod(
            UID_WEB,
            "shop",
            "web-7d9f8b6c5-x2x9q",
            &format!(
                r#","initContainerStatuses":[{{"name":"migrate","containerID":"containerd://{CID_INIT}"}}],
                "containerStatuses":[{{"name":"app","ready":true,"containerID":"containerd://{CID_APP}"}}]"#
            ),
        ),
        pod(
            UID_DNS,
            "kube-system",
            "coredns-5d78c9869d-4kq7z",
            &format!(
                r#","containerStatuses":[{{"name":"coredns","containerID":"cri-o://{CID_DNS}"}}]"#
            ),
        ),
        pod(UID_JOB, "shop", "batch-job-q8x2m", ""),
    ];
    if extra {
        items.push(pod(
            UID_NEW,
            "shop",
            "new-pod",
            &format!(
                r#","containerStatuses":[{{"name":"main","containerID":"containerd://{CID_NEW}"}}]"#
            ),
        ));
    }
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{}},"items":[{}]}}"#,
        items.join(",")
    )
}

/// What the fake kubelet serves and what it saw.
#[derive(Default)]
struct State {
    body: Mutex<String>,
    expected_token: Mutex<String>,
    authorizations: Mutex<Vec<String>>,
}

struct FakeKubelet {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKubelet {
    async fn start(
        addr: SocketAddr,
        state: Arc<State>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let st = state.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when the task is aborted) aborts every
            // connection, so a stopped server really goes away.
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        FakeKubelet { addr, state, task }
    }

    async fn stop(self) -> (SocketAddr, Arc<State>) {
        self.task.abort();
        let _ = self.task.await;
        (self.addr, self.state)
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    state.authorizations.lock().unwrap().push(auth.clone());
    let expected = format!("Bearer {}", state.expected_token.lock().unwrap());
    let (status, body) = if req.uri().path() != "/pods" {
        (StatusCode::NOT_FOUND, "404 page not found".to_string())
    } else if auth != expected {
        (StatusCode::UNAUTHORIZED, "Unauthorized".to_string())
    } else {
        (StatusCode::OK, state.body.lock().unwrap().clone())
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

fn state(token: &str, extra_pod: bool) -> Arc<State> {
    let s = State::default();
    *s.body.lock().unwrap() = pod_list(extra_pod);
    *s.expected_token.lock().unwrap() = token.to_string();
    Arc::new(s)
}

fn options(url: String, token_file: &Path) -> KubeletOptions {
    KubeletOptions {
        url: HttpUrl::parse(&url).expect("test URL"),
        token_file: Some(token_file.to_path_buf()),
        ca_file: None,
        insecure_skip_verify: false,
        timeout: Duration::from_secs(2),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        intervals: RefreshIntervals {
            debounce: Duration::from_millis(20),
            period: Duration::from_secs(60),
            miss: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
        },
    }
}

fn token_file(dir: &Path, token: &str) -> std::path::PathBuf {
    let path = dir.join("token");
    // A trailing newline, as `kubectl create token > file` leaves.
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

fn exposition(k: &Kubelet) -> String {
    let mut registry = Registry::default();
    k.register_metrics(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn names(found: Option<PodNames>) -> Option<(String, String, Option<String>)> {
    found.map(|f| {
        (
            f.pod.to_string(),
            f.namespace.to_string(),
            f.container.map(|c| c.to_string()),
        )
    })
}

#[tokio::test]
async fn bearer_token_is_sent_and_names_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN);
    let server =
        FakeKubelet::start("127.0.0.1:0".parse().unwrap(), state(TOKEN, false), None).await;
    let k = Kubelet::new(options(format!("http://{}", server.addr), &token)).unwrap();

    assert!(!k.is_up());
    assert_eq!(k.refresh().await.unwrap(), 3);
    assert!(k.is_up());
    assert_eq!(
        server.state.authorizations.lock().unwrap().as_slice(),
        [format!("Bearer {TOKEN}")]
    );

    assert_eq!(
        names(k.lookup(UID_WEB, Some(CID_APP))),
        Some((
            "web-7d9f8b6c5-x2x9q".into(),
            "shop".into(),
            Some("app".into())
        ))
    );
    assert_eq!(
        names(k.lookup(UID_WEB, Some(CID_INIT)))
            .unwrap()
            .2
            .as_deref(),
        Some("migrate")
    );
    assert_eq!(
        names(k.lookup(UID_DNS, Some(CID_DNS))),
        Some((
            "coredns-5d78c9869d-4kq7z".into(),
            "kube-system".into(),
            Some("coredns".into())
        ))
    );
    assert_eq!(
        names(k.lookup(UID_JOB, None)),
        Some(("batch-job-q8x2m".into(), "shop".into(), None))
    );
    assert_eq!(names(k.lookup(UID_NEW, None)), None);

    let text = exposition(&k);
    for line in [
        "cgroup_psi_exporter_kubelet_up 1\n",
        "cgroup_psi_exporter_kubelet_pods 3\n",
        "cgroup_psi_exporter_kubelet_refreshes_total{outcome=\"success\"} 1\n",
        "# TYPE cgroup_psi_exporter_kubelet_refreshes counter\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    // Projected tokens rotate: the file is re-read on every refresh.
    *server.state.expected_token.lock().unwrap() = "rotated".into();
    std::fs::write(&token, "rotated").unwrap();
    k.refresh().await.unwrap();
    assert_eq!(
        server.state.authorizations.lock().unwrap().last().unwrap(),
        "Bearer rotated"
    );
    server.stop().await;
}

#[tokio::test]
async fn rejected_token_sets_up_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "wrong");
    let server =
        FakeKubelet::start("127.0.0.1:0".parse().unwrap(), state(TOKEN, false), None).await;
    let k = Kubelet::new(options(format!("http://{}", server.addr), &token)).unwrap();

    let err = k.refresh().await.unwrap_err();
    assert!(
        matches!(err, KubeletError::Status { status, .. } if status == StatusCode::UNAUTHORIZED),
        "{err}"
    );
    assert!(!k.is_up());
    let text = exposition(&k);
    assert!(
        text.contains("cgroup_psi_exporter_kubelet_up 0\n"),
        "{text}"
    );
    assert!(
        text.contains("cgroup_psi_exporter_kubelet_refreshes_total{outcome=\"unauthorized\"} 1\n"),
        "{text}"
    );
    assert!(k.snapshot().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_last_names_and_recovery_follows_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN);
    let server =
        FakeKubelet::start("127.0.0.1:0".parse().unwrap(), state(TOKEN, false), None).await;
    let k = Arc::new(Kubelet::new(options(format!("http://{}", server.addr), &token)).unwrap());
    let shutdown = CancellationToken::new();
    let task = k.clone().spawn(shutdown.clone());

    // The task fetches at once.
    eventually("first fetch", || k.is_up()).await;
    assert_eq!(k.snapshot().len(), 3);

    // The kubelet goes away: a requested refresh fails, names stay.
    let (addr, st) = server.stop().await;
    k.request_refresh();
    eventually("kubelet_up 0 after the outage", || !k.is_up()).await;
    assert_eq!(
        names(k.lookup(UID_WEB, Some(CID_APP)))
            .unwrap()
            .2
            .as_deref(),
        Some("app"),
        "last names are kept while the kubelet is down"
    );
    let text = exposition(&k);
    assert!(
        text.contains("cgroup_psi_exporter_kubelet_up 0\n"),
        "{text}"
    );
    assert!(
        text.contains("cgroup_psi_exporter_kubelet_pods 3\n"),
        "{text}"
    );
    assert!(
        text.contains("cgroup_psi_exporter_kubelet_refreshes_total{outcome=\"unreachable\"}"),
        "{text}"
    );

    // It comes back with a new pod; a lookup of that pod's UID (what a
    // scrape of its new cgroup does) is enough to bring it in.
    *st.body.lock().unwrap() = pod_list(true);
    let server = FakeKubelet::start(addr, st, None).await;
    eventually("the new pod after recovery", || {
        k.lookup(UID_NEW, Some(CID_NEW)).is_some()
    })
    .await;
    assert!(k.is_up());
    assert_eq!(
        names(k.lookup(UID_NEW, Some(CID_NEW))),
        Some(("new-pod".into(), "shop".into(), Some("main".into())))
    );
    assert!(exposition(&k).contains("cgroup_psi_exporter_kubelet_pods 4\n"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("task stops on shutdown")
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN);
    let server =
        FakeKubelet::start("127.0.0.1:0".parse().unwrap(), state(TOKEN, false), None).await;
    let mut opts = options(format!("http://{}", server.addr), &token);
    opts.max_body_bytes = 100;
    let k = Kubelet::new(opts).unwrap();
    let err = k.refresh().await.unwrap_err();
    assert!(
        matches!(err, KubeletError::TooLarge { limit: 100, .. }),
        "{err}"
    );
    assert!(exposition(&k)
        .contains("cgroup_psi_exporter_kubelet_refreshes_total{outcome=\"invalid_response\"} 1\n"));
    server.stop().await;
}

#[tokio::test]
async fn silent_kubelet_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN);
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut opts = options(format!("http://{addr}"), &token);
    opts.timeout = Duration::from_millis(200);
    let k = Kubelet::new(opts).unwrap();
    let started = std::time::Instant::now();
    let err = k.refresh().await.unwrap_err();
    assert!(matches!(err, KubeletError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    hold.abort();
}

// === TLS ===

#[tokio::test]
async fn https_kubelet_with_ca_insecure_and_untrusted_certs() {
    let Some(certs) = pki::make_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN);
    let server = FakeKubelet::start(
        "127.0.0.1:0".parse().unwrap(),
        state(TOKEN, false),
        Some(certs.acceptor(None)),
    )
    .await;
    let url = format!("https://{}", server.addr);

    // Verified against the cluster CA (the service-account ca.crt case).
    let mut opts = options(url.clone(), &token);
    opts.ca_file = Some(certs.ca());
    let k = Kubelet::new(opts).unwrap();
    assert_eq!(k.refresh().await.unwrap(), 3);
    assert_eq!(
        server.state.authorizations.lock().unwrap().last().unwrap(),
        &format!("Bearer {TOKEN}")
    );

    // Self-signed as far as we know: accepted only with insecure_skip_verify.
    let mut opts = options(url.clone(), &token);
    opts.insecure_skip_verify = true;
    let k = Kubelet::new(opts).unwrap();
    assert_eq!(k.refresh().await.unwrap(), 3);
    assert!(k.is_up());

    let k = Kubelet::new(options(url.clone(), &token)).unwrap();
    let err = k.refresh().await.unwrap_err();
    assert!(matches!(err, KubeletError::Request { .. }), "{err}");
    assert!(!k.is_up());
    let served = server.state.authorizations.lock().unwrap().len();
    assert_eq!(
        served, 2,
        "no request (and no token) reaches an unverified server"
    );

    // A CA file without certificates is a startup error.
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "not a pem\n").unwrap();
    let mut opts = options(url, &token);
    opts.ca_file = Some(empty);
    assert!(matches!(
        Kubelet::new(opts),
        Err(KubeletError::Tls(TlsClientError::Pem(
            PemError::NoCertificates { .. }
        )))
    ));
    server.stop().await;
}
