//! Alert delivery against a local HTTP receiver: retries, the keyed
//! bounded queue, drops, and the shutdown flush. No kernel needed.

use crate::common;

use common::{capture, pki};

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capture::Capture;
use cgroup_psi_exporter::alerting::{Alert, AlertingMetrics, NotificationLabels, Notifier};
use cgroup_psi_exporter::config::{AlertingConfig, Config, HttpUrl, TlsClientConfig};

fn alert(name: &str, resolved: bool) -> Alert {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), name.to_string());
    labels.insert("cgroup".to_string(), "/x".to_string());
    let now = SystemTime::now();
    Alert {
        labels,
        annotations: BTreeMap::new(),
        starts_at: now - Duration::from_secs(10),
        ends_at: resolved.then_some(now - Duration::from_secs(1)),
        generator_url: "http://test/".to_string(),
        contributors: Vec::new(),
    }
}

fn cfg(url: &str, capacity: usize) -> AlertingConfig {
    AlertingConfig {
        webhooks: vec![HttpUrl::parse(url).unwrap()],
        timeout: Duration::from_secs(2),
        queue_capacity: capacity,
        ..AlertingConfig::default()
    }
}

fn outcome(m: &AlertingMetrics, url: &str, outcome: &'static str) -> u64 {
    m.notifications
        .get_or_create(&NotificationLabels {
            receiver: url.to_string(),
            outcome,
        })
        .get()
}

async fn until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn names(c: &Capture) -> Vec<(String, String)> {
    c.alerts()
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn failed_deliveries_are_retried_until_the_receiver_answers() {
    let c = Capture::start().await;
    c.set_failing(true);
    let m = Arc::new(AlertingMetrics::default());
    let n = Notifier::start(&cfg(&c.url, 100), m.clone()).await;
    for name in ["a", "b", "c"] {
        n.notify(&alert(name, false));
    }
    assert!(
        until(Duration::from_secs(5), || c
            .state
            .requests
            .load(Ordering::SeqCst)
            >= 2)
        .await
    );
    assert!(c.alerts().is_empty());
    c.set_failing(false);
    assert!(
        until(Duration::from_secs(10), || c.alerts().len() == 3).await,
        "{:?}",
        names(&c)
    );
    // The receiver records a body before it answers, and the notifier
    // counts a success only once the answer is read: wait for the count.
    let successes = || outcome(&m, &c.url, "success");
    assert!(
        until(Duration::from_secs(5), || successes() == 3).await,
        "success={}",
        successes()
    );
    assert!(outcome(&m, &c.url, "retry") >= 3);
    let body = &c.bodies()[0];
    assert_eq!(body["version"], "1");
    assert_eq!(body["status"], "firing");
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_firing_alert_resolved_while_queued_is_sent_once_as_resolved() {
    let c = Capture::start().await;
    c.set_failing(true);
    let m = Arc::new(AlertingMetrics::default());
    let n = Notifier::start(&cfg(&c.url, 100), m.clone()).await;
    n.notify(&alert("a", false));
    assert!(
        until(Duration::from_secs(5), || c
            .state
            .requests
            .load(Ordering::SeqCst)
            >= 1)
        .await
    );
    n.notify(&alert("a", true));
    c.set_failing(false);
    assert!(until(Duration::from_secs(10), || !c.alerts().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(names(&c), vec![("a".to_string(), "resolved".to_string())]);
    assert_eq!(outcome(&m, &c.url, "dropped"), 0);
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn overflow_drops_the_oldest_alerts_and_counts_them() {
    let c = Capture::start().await;
    c.set_failing(true);
    let m = Arc::new(AlertingMetrics::default());
    let n = Notifier::start(&cfg(&c.url, 2), m.clone()).await;
    for name in ["a", "b", "c", "d", "e"] {
        n.notify(&alert(name, false));
    }
    assert_eq!(outcome(&m, &c.url, "dropped"), 3);
    c.set_failing(false);
    assert!(until(Duration::from_secs(10), || c.alerts().len() == 2).await);
    let got: Vec<String> = names(&c).into_iter().map(|(n, _)| n).collect();
    assert_eq!(got, ["d", "e"]);
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_flushes_the_queue_and_gives_up_after_the_grace_period() {
    let c = Capture::start().await;
    let m = Arc::new(AlertingMetrics::default());
    let n = Notifier::start(&cfg(&c.url, 100), m.clone()).await;
    n.notify(&alert("a", false));
    n.shutdown(Duration::from_secs(2)).await;
    assert_eq!(names(&c).len(), 1, "queued alert delivered during shutdown");

    c.set_failing(true);
    let n = Notifier::start(&cfg(&c.url, 100), m.clone()).await;
    n.notify(&alert("b", false));
    let t0 = Instant::now();
    n.shutdown(Duration::from_millis(500)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(900), "shutdown took {took:?}");
    assert_eq!(outcome(&m, &c.url, "failure"), 1);
}

#[tokio::test]
async fn every_alertmanager_url_gets_the_alerts_as_a_v2_array() {
    let a = Capture::start().await;
    let b = Capture::start().await;
    // Capture URLs end in /hook; an Alertmanager base URL gets
    // /api/v2/alerts appended, which the capture server accepts too.
    let base = |c: &Capture| HttpUrl::parse(c.url.trim_end_matches("/hook")).unwrap();
    let conf = AlertingConfig {
        alertmanagers: vec![base(&a), base(&b)],
        timeout: Duration::from_secs(2),
        ..AlertingConfig::default()
    };
    let n = Notifier::start(&conf, Arc::new(AlertingMetrics::default())).await;
    n.notify(&alert("x", false));
    for c in [&a, &b] {
        assert!(until(Duration::from_secs(5), || !c.bodies().is_empty()).await);
        let body = &c.bodies()[0];
        let arr = body.as_array().expect("a JSON array");
        assert_eq!(arr[0]["labels"]["alertname"], "x");
        assert!(arr[0]["startsAt"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')));
        assert!(arr[0].get("endsAt").is_none());
    }
    n.shutdown(Duration::from_secs(1)).await;
}

// === HTTPS receivers ===

fn tls_cfg(url: &str, tls: TlsClientConfig) -> AlertingConfig {
    AlertingConfig {
        tls_config: tls,
        ..cfg(url, 100)
    }
}

fn path(p: &std::path::Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Client TLS settings trusting `ca` and presenting `client`, if given.
fn client_tls(ca: Option<&pki::Pki>, client: Option<pki::Pair>) -> TlsClientConfig {
    TlsClientConfig {
        ca_file: ca.map(|p| path(&p.ca())).unwrap_or_default(),
        cert_file: client.as_ref().map(|c| path(&c.cert)).unwrap_or_default(),
        key_file: client.as_ref().map(|c| path(&c.key)).unwrap_or_default(),
        insecure_skip_verify: false,
    }
}

/// Sends one firing alert `name` to `c` with `tls`: `true` once its
/// success is counted, `false` once a retry is (a refused handshake).
async fn try_deliver(c: &Capture, tls: TlsClientConfig, name: &str) -> bool {
    let m = Arc::new(AlertingMetrics::default());
    let n = Notifier::start(&tls_cfg(&c.url, tls), m.clone()).await;
    n.notify(&alert(name, false));
    let mut delivered = None;
    until(Duration::from_secs(5), || {
        if outcome(&m, &c.url, "success") == 1 {
            delivered = Some(true);
        } else if outcome(&m, &c.url, "retry") >= 1 {
            delivered = Some(false);
        }
        delivered.is_some()
    })
    .await;
    n.shutdown(Duration::from_millis(200)).await;
    delivered.unwrap_or_else(|| panic!("{name}: neither delivered nor retried within 5 s"))
}

#[tokio::test]
async fn an_https_receiver_of_a_private_ca_gets_alerts_when_the_ca_is_configured() {
    let Some(p) = pki::make_or_skip() else { return };
    let c = Capture::start_tls(p.acceptor(None)).await;

    // The public roots do not know the private CA: nothing is delivered,
    // the failure is counted and retried.
    assert!(!try_deliver(&c, client_tls(None, None), "untrusted").await);
    assert!(c.alerts().is_empty(), "no alert crosses an unverified link");
    assert!(c.state.handshake_failures.load(Ordering::SeqCst) >= 1);

    // With the CA: delivered over TLS.
    assert!(try_deliver(&c, client_tls(Some(&p), None), "trusted").await);
    assert_eq!(names(&c), [("trusted".to_string(), "firing".to_string())]);

    // insecure_skip_verify: delivered without the CA.
    let insecure = TlsClientConfig {
        insecure_skip_verify: true,
        ..TlsClientConfig::default()
    };
    assert!(try_deliver(&c, insecure, "insecure").await);
}

#[tokio::test]
async fn a_receiver_that_requires_a_client_certificate_gets_alerts_only_with_one() {
    let Some(p) = pki::make_or_skip() else { return };
    let c = Capture::start_tls(p.acceptor(Some(&p.ca()))).await;
    // No client certificate, or one of another CA: refused at the handshake.
    assert!(!try_deliver(&c, client_tls(Some(&p), None), "anonymous").await);
    assert!(!try_deliver(&c, client_tls(Some(&p), Some(p.rogue_client())), "rogue").await);
    assert!(c.alerts().is_empty(), "{:?}", names(&c));
    // The trusted client certificate: delivered.
    assert!(try_deliver(&c, client_tls(Some(&p), Some(p.client())), "mtls").await);
    assert_eq!(names(&c), [("mtls".to_string(), "firing".to_string())]);
}

#[test]
fn tls_files_are_read_at_load_relative_to_the_config_and_named_when_bad() {
    let Some(p) = pki::make_or_skip() else { return };
    // Relative paths resolve against the config file's folder.
    let file = p.dir().join("config.yaml");
    std::fs::write(
        &file,
        "alerting:\n  alertmanagers: [\"https://127.0.0.1:9093\"]\n  tls_config:\n    ca_file: ca.crt\n    cert_file: client.crt\n    key_file: client.key\n",
    )
    .expect("write");
    // (The test's cwd is the crate root, where no ca.crt exists.)
    let cfg = Config::load(&file).expect("valid config");
    assert_eq!(cfg.alerting.tls_config.ca_file, path(&p.ca()));
    assert_eq!(cfg.alerting.tls_config.key_file, path(&p.client().key));

    // A missing CA is a load error at the key, not a failed first alert.
    std::fs::write(
        &file,
        "alerting:\n  tls_config:\n    ca_file: nowhere.crt\n",
    )
    .expect("write");
    let e = Config::load(&file).expect_err("missing CA").to_string();
    assert!(
        e.contains("config.yaml:3:14: alerting.tls_config.ca_file: /"),
        "{e}"
    );
    assert!(e.contains("nowhere.crt"), "{e}");

    // A key that is not a key.
    std::fs::write(
        &file,
        "alerting:\n  tls_config:\n    cert_file: client.crt\n    key_file: ca.crt\n",
    )
    .expect("write");
    let e = Config::load(&file).expect_err("bad key").to_string();
    assert!(
        e.contains("config.yaml:4:15: alerting.tls_config.key_file:")
            && e.contains("no PEM private key"),
        "{e}"
    );

    // Half a pair is a schema-level error.
    std::fs::write(
        &file,
        "alerting:\n  tls_config:\n    cert_file: client.crt\n",
    )
    .expect("write");
    let e = Config::load(&file).expect_err("half pair").to_string();
    assert!(
        e.contains("alerting.tls_config.cert_file: a client certificate needs key_file too"),
        "{e}"
    );
}
