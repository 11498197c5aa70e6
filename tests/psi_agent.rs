//! The agent on a fake cgroup2 tree (a temp dir): OOM kills seen through
//! inotify on `memory.events` (cgroup v2), trigger errors counted, reload
//! of `oom_kills`. No root needed: inotify works on any filesystem.

use crate::common;

use common::capture;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capture::Capture;
use cgroup_psi_exporter::cgroupfs::{CgroupPath, Hierarchy, HierarchyId, Layout, Mode};
use cgroup_psi_exporter::config::Config;
use cgroup_psi_exporter::psi::{self, PsiMetrics};
use cgroup_psi_exporter::registry::{Filter, Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn v2_registry(root: &Path) -> Arc<Registry> {
    let layout = Layout {
        mode: Mode::V2,
        hierarchies: vec![Hierarchy {
            id: HierarchyId(0),
            root: root.to_path_buf(),
            unified: true,
            controllers: Vec::new(),
        }],
        detected_from: "test",
    };
    Registry::new(Arc::new(layout), Filter::default())
}

fn fake_cgroup(root: &Path, rel: &str) -> PathBuf {
    let d = root.join(rel);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(
        d.join("memory.events"),
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    )
    .expect("write");
    std::fs::write(
        d.join("memory.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    )
    .expect("write");
    d
}

fn config(yaml: &str) -> Arc<Config> {
    // Straight from YAML, without the app's validation: these tests are
    // about what the agent does with whatever config it is handed.
    Arc::new(serde_yaml::from_str::<Config>(yaml).expect("config"))
}

async fn until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn exposition(m: &PsiMetrics) -> String {
    let mut reg = prometheus_client::registry::Registry::default();
    m.register_metrics(&mut reg);
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, &reg).expect("encode");
    s
}

#[tokio::test]
async fn v2_oom_kill_in_memory_events_sends_an_alert_with_kubernetes_labels() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rel = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice";
    let dir = fake_cgroup(tmp.path(), rel);
    let registry = v2_registry(tmp.path());
    let hook = Capture::start().await;
    let (tx, rx) = watch::channel(config(&format!(
        "alerting:\n  webhooks: ['{}']\n  oom_kills: true\n  timeout: 2s\n",
        hook.url
    )));
    // Listening on a port of its own: the generator URL names it.
    let agent = psi::spawn_listening(
        registry.clone(),
        tmp.path().to_path_buf(),
        rx,
        PsiMetrics::new(),
        CancellationToken::new(),
        Some(psi::Listen {
            port: 19753,
            https: true,
        }),
    );
    let path = CgroupPath::new(rel);
    registry.add(HierarchyId(0), &path);
    until(Duration::from_secs(2), || {
        agent
            .oom_watched()
            .contains(&path.to_string())
            .then_some(())
    })
    .await
    .expect("watched");
    // Let the inotify task take the watch before the counter moves.
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    )
    .expect("write");
    let a = until(Duration::from_secs(5), || {
        hook.alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "CgroupOOMKill")
    })
    .await
    .expect("CgroupOOMKill alert");
    assert_eq!(a["labels"]["cgroup"], path.as_str());
    assert_eq!(a["labels"]["pod_uid"], "1234-5678", "{a}");
    assert_eq!(a["labels"]["qos_class"], "burstable", "{a}");
    assert_eq!(a["annotations"]["oom_kill"], "1");
    let url = a["generatorURL"].as_str().unwrap_or("");
    assert!(
        url.starts_with("https://") && url.ends_with(":19753/"),
        "generator URL names the real listen port: {url}"
    );

    // Reload with oom_kills off: the watch goes.
    tx.send(config("alerting:\n  oom_kills: false\n"))
        .expect("send");
    until(Duration::from_secs(2), || {
        agent.oom_watched().is_empty().then_some(())
    })
    .await
    .expect("OOM watches dropped on reload");
    agent.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_pressure_file_that_cannot_be_polled_is_counted_not_armed() {
    let tmp = tempfile::tempdir().expect("tmp");
    fake_cgroup(tmp.path(), "a");
    let registry = v2_registry(tmp.path());
    let (_tx, rx) = watch::channel(config(
        "psi:\n  rules:\n    - name: r\n      cgroups: ['/a']\n      resource: memory\n      threshold: 150ms\n    - name: irq\n      cgroups: ['/a']\n      resource: irq\n      kind: full\n      threshold: 150ms\nalerting:\n  oom_kills: false\n",
    ));
    let metrics = PsiMetrics::new();
    let agent = psi::spawn(
        registry.clone(),
        tmp.path().to_path_buf(),
        rx,
        metrics.clone(),
        CancellationToken::new(),
    );
    registry.add(HierarchyId(0), &CgroupPath::new("/a"));
    // A regular file takes the write but cannot be registered with epoll;
    // a missing irq.pressure in a present cgroup is "unsupported".
    let text = until(Duration::from_secs(2), || {
        let t = exposition(&metrics);
        (t.contains("psi_trigger_errors_total{rule=\"r\",reason=\"register\"} 1")
            && t.contains("psi_trigger_errors_total{rule=\"irq\",reason=\"unsupported\"} 1"))
        .then_some(t)
    })
    .await;
    assert!(text.is_some(), "{}", exposition(&metrics));
    assert!(agent.armed().is_empty());
    agent.shutdown(Duration::from_secs(1)).await;
}

/// `alerting.memory_events` on a fake v2 cgroup: `max` growing fires
/// `CgroupMemoryMax` once however often it grows, `high` stays off (not
/// opted in), and the alert resolves after `hold_off` without growth. With
/// `oom_kills: false` the watch runs for the limits alone.
#[tokio::test]
async fn v2_memory_max_alerts_once_per_episode_and_resolves_after_the_hold_off() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rel = "kubepods/burstable/pod0d4e1f2a-3b5c/c1";
    let dir = fake_cgroup(tmp.path(), rel);
    let registry = v2_registry(tmp.path());
    let hook = Capture::start().await;
    let (_tx, rx) = watch::channel(config(&format!(
        "alerting:\n  webhooks: ['{}']\n  oom_kills: false\n  timeout: 2s\n  memory_events: {{ max: true, hold_off: 1s }}\n",
        hook.url
    )));
    let agent = psi::spawn(
        registry.clone(),
        tmp.path().to_path_buf(),
        rx,
        PsiMetrics::new(),
        CancellationToken::new(),
    );
    let path = CgroupPath::new(rel);
    registry.add(HierarchyId(0), &path);
    until(Duration::from_secs(2), || {
        agent
            .oom_watched()
            .contains(&path.to_string())
            .then_some(())
    })
    .await
    .expect("memory.events watched for the limit alerts");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A cgroup at its limit: max and high grow on every reclaim pass.
    for i in 1..=5 {
        std::fs::write(
            dir.join("memory.events"),
            format!("low 0\nhigh {i}\nmax {i}\noom 0\noom_kill 0\n"),
        )
        .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fired = until(Duration::from_secs(5), || {
        hook.alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "CgroupMemoryMax")
    })
    .await
    .expect("CgroupMemoryMax");
    assert_eq!(fired["labels"]["cgroup"], path.as_str());
    assert_eq!(fired["labels"]["pod_uid"], "0d4e1f2a-3b5c", "{fired}");
    assert_eq!(fired["labels"]["resource"], "memory");
    assert_eq!(fired["annotations"]["max"], "1", "{fired}");
    let resolved = until(Duration::from_secs(5), || {
        hook.alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "CgroupMemoryMax" && a["status"] == "resolved")
    })
    .await
    .expect("resolved after hold_off");
    assert_eq!(
        resolved["startsAt"], fired["startsAt"],
        "one episode, one alert"
    );
    let alerts = hook.alerts();
    assert!(
        alerts
            .iter()
            .all(|a| a["labels"]["alertname"] == "CgroupMemoryMax"),
        "no high alert (not opted in), no OOM alert: {alerts:?}"
    );
    let starts: std::collections::BTreeSet<String> =
        alerts.iter().map(|a| a["startsAt"].to_string()).collect();
    assert_eq!(starts.len(), 1, "five increases, one alert: {alerts:?}");
    agent.shutdown(Duration::from_secs(1)).await;
}
