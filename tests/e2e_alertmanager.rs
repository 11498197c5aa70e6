//! End to end: real memory pressure in a cgroup -> kernel PSI trigger ->
//! agent -> a real Alertmanager (`/usr/bin/prometheus-alertmanager`).
//! Needs root, PSI, cgroupfs and Alertmanager; prints `skipped: <reason>`
//! otherwise (fails instead when `CGPE_REQUIRE_KERNEL=1` or `CI=true`).
//! Cases run one at a time (they share the machine's memory).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cgroup_psi_exporter::config::Config;
use cgroup_psi_exporter::psi::{self, ArmedInfo, PsiMetrics};
use common::alertmanager::{self, Alertmanager};
use common::capture::Capture;
use common::*;
use serde_json::Value;

fn config(yaml: &str) -> Arc<Config> {
    // Straight from YAML, without the app's validation: these tests are
    // about what the agent does with whatever config it is handed.
    Arc::new(serde_yaml::from_str::<Config>(yaml).expect("config"))
}

fn ready() -> bool {
    if !kernel_ok() {
        return false;
    }
    if !alertmanager::available() {
        let _ = std::process::Command::new("apt-get")
            .args(["install", "-y", "prometheus-alertmanager"])
            .status();
    }
    if !alertmanager::available() {
        if std::env::var("CGPE_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true")
        {
            panic!("{} missing and skipping is forbidden", alertmanager::BINARY);
        }
        println!("skipped: {} not installed", alertmanager::BINARY);
        return false;
    }
    true
}

fn node() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .expect("hostname")
                .trim()
                .to_string()
        })
}

fn exposition(m: &PsiMetrics) -> String {
    let mut reg = prometheus_client::registry::Registry::default();
    m.register_metrics(&mut reg);
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, &reg).expect("encode");
    s
}

async fn wait_am(am: &Alertmanager, timeout: Duration, want: &[(&str, &str)]) -> Option<Value> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(a) = am.find(want).into_iter().next() {
            return Some(a);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressure_alert_reaches_alertmanager_with_labels_and_resolves() {
    if !ready() {
        return;
    }
    let _serial = serial().await;
    sweep();
    let tmp = tempfile::tempdir().expect("tmp");
    let am = Alertmanager::start(tmp.path());
    let cg = TestCgroup::new(&unique("e2e"), true);
    let registry = registry();
    registry.add(unified_id(&registry), &cg.path());
    let cfg = config(&format!(
        "psi:
  rules:
    - name: CgroupMemoryPressure
      cgroups: ['{cg}']
      resource: memory
      kind: some
      threshold: 150ms
      window: 2s
      resolve_after: 4s
      labels: {{ severity: warning }}
      annotations: {{ summary: 'memory pressure in {{{{ cgroup }}}}', value: '{{{{ value }}}}' }}
    - name: HostMemoryPressure
      cgroups: ['/']
      resource: memory
      threshold: 100ms
      window: 2s
      resolve_after: 4s
alerting:
  alertmanagers: ['{am}']
  timeout: 2s
  oom_kills: false
",
        cg = cg.path(),
        am = am.url()
    ));
    let (agent, metrics, _tx) = start_agent(&registry, cfg);
    wait_for(Duration::from_secs(2), || {
        (agent.armed().len() == 2).then_some(())
    })
    .await
    .expect("cgroup and host triggers armed");

    let t0 = Instant::now();
    let pressure = Pressure::start(&cg, 10);
    let node = node();
    let cgs = cg.path().to_string();
    let a = wait_am(
        &am,
        Duration::from_secs(20),
        &[
            ("alertname", "CgroupMemoryPressure"),
            ("cgroup", &cgs),
            ("resource", "memory"),
            ("kind", "some"),
            ("node", &node),
            ("severity", "warning"),
        ],
    )
    .await
    .expect("cgroup alert in Alertmanager");
    println!(
        "cgroup alert in Alertmanager {:?} after pressure started",
        t0.elapsed()
    );
    assert_eq!(
        a["annotations"]["summary"],
        format!("memory pressure in {cgs}")
    );
    assert_eq!(a["status"]["state"], "active");
    let value: f64 = a["annotations"]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("{{ value }} filled with a number");
    println!("{{{{ value }}}} = {value}");
    let h = wait_am(
        &am,
        Duration::from_secs(15),
        &[
            ("alertname", "HostMemoryPressure"),
            ("cgroup", "/"),
            ("node", &node),
        ],
    )
    .await
    .expect("host alert (/proc/pressure/memory) in Alertmanager");
    println!(
        "host alert in Alertmanager {:?} after pressure started: {}",
        t0.elapsed(),
        h["labels"]
    );

    drop(pressure);
    let stop = Instant::now();
    let end = stop + Duration::from_secs(25);
    loop {
        let active = am.find(&[("alertname", "CgroupMemoryPressure"), ("cgroup", &cgs)]);
        let resolved = active.is_empty() || active.iter().all(|a| a["status"]["state"] != "active");
        if resolved
            && agent
                .firing()
                .iter()
                .all(|(r, _)| r != "CgroupMemoryPressure")
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "alert still active 25 s after pressure stopped: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "resolved in Alertmanager {:?} after pressure stopped",
        stop.elapsed()
    );
    let text = exposition(&metrics);
    assert!(
        text.contains("psi_alerts_firing{rule=\"CgroupMemoryPressure\"} 0"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "psi_trigger_events_total{{rule=\"CgroupMemoryPressure\",cgroup=\"{cgs}\",resource=\"memory\",kind=\"some\"}}"
    )));
    assert!(text.contains(&format!(
        "psi_alert_notifications_total{{receiver=\"{}\",outcome=\"success\"}}",
        am.url()
    )));

    // The cgroup goes: its trigger is dropped and its series with it.
    registry.remove_subtree(unified_id(&registry), &cg.path());
    drop(cg);
    wait_for(Duration::from_secs(2), || {
        (!agent.armed().iter().any(|a| a.cgroup == cgs)).then_some(())
    })
    .await
    .expect("trigger of the removed cgroup dropped");
    let text = exposition(&metrics);
    assert!(
        !text.contains(&format!("cgroup=\"{cgs}\"")),
        "stale series: {text}"
    );
    assert!(
        text.contains("psi_triggers_armed{rule=\"CgroupMemoryPressure\"} 0"),
        "{text}"
    );
    agent.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_fired_while_alertmanager_is_down_arrives_after_restart() {
    if !ready() {
        return;
    }
    let _serial = serial().await;
    sweep();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut am = Alertmanager::start(tmp.path());
    let cg = TestCgroup::new(&unique("restart"), true);
    let registry = registry();
    registry.add(unified_id(&registry), &cg.path());
    let cfg = config(&format!(
        "psi:
  rules:
    - name: RestartPressure
      cgroups: ['{cg}']
      resource: memory
      threshold: 150ms
      window: 2s
      resolve_after: 5m
alerting:
  alertmanagers: ['{am}']
  timeout: 2s
  oom_kills: false
",
        cg = cg.path(),
        am = am.url()
    ));
    let (agent, metrics, _tx) = start_agent(&registry, cfg);
    wait_for(Duration::from_secs(2), || {
        (agent.armed().len() == 1).then_some(())
    })
    .await
    .expect("armed");

    am.stop();
    let down = Instant::now();
    let pressure = Pressure::start(&cg, 8);
    wait_for(Duration::from_secs(20), || {
        (!agent.firing().is_empty()).then_some(())
    })
    .await
    .expect("alert fires while Alertmanager is down");
    drop(pressure);
    let rest = Duration::from_secs(30).saturating_sub(down.elapsed());
    tokio::time::sleep(rest).await;
    let text = exposition(&metrics);
    assert!(
        text.contains("outcome=\"retry\""),
        "retries counted while down:\n{text}"
    );
    am.restart();
    let up = Instant::now();
    let cgs = cg.path().to_string();
    wait_am(
        &am,
        Duration::from_secs(20),
        &[("alertname", "RestartPressure"), ("cgroup", &cgs)],
    )
    .await
    .expect("alert delivered after the restart");
    println!(
        "Alertmanager down {:?}; alert arrived {:?} after restart",
        up.duration_since(down),
        up.elapsed()
    );
    assert!(!exposition(&metrics).contains("outcome=\"dropped\""));
    agent.shutdown(Duration::from_secs(2)).await;
}

fn ids(armed: &[ArmedInfo], rule: &str) -> Vec<(String, u64)> {
    armed
        .iter()
        .filter(|a| a.rule == rule)
        .map(|a| (a.cgroup.clone(), a.id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rearms_changed_rules_and_keeps_unchanged_triggers() {
    if !ready() {
        return;
    }
    let _serial = serial().await;
    sweep();
    let parent = TestCgroup::new(&unique("reload"), false);
    let kids: Vec<TestCgroup> = (0..3)
        .map(|i| TestCgroup::new(&format!("{}/k{i}", parent.rel), false))
        .collect();
    let registry = registry();
    for k in &kids {
        registry.add(unified_id(&registry), &k.path());
    }
    let rule = |name: &str, threshold: &str, window: &str| {
        format!(
            "    - name: {name}\n      cgroups: ['{}/*']\n      resource: memory\n      threshold: {threshold}\n      window: {window}\n",
            parent.path()
        )
    };
    let yaml = |rules: &[String]| {
        format!(
            "psi:\n  rules:\n{}alerting:\n  oom_kills: false\n",
            rules.concat()
        )
    };
    let (agent, metrics, tx) = start_agent(
        &registry,
        config(&yaml(&[
            rule("keep", "150ms", "2s"),
            rule("change", "150ms", "2s"),
            rule("drop", "150ms", "2s"),
        ])),
    );
    wait_for(Duration::from_secs(2), || {
        (agent.armed().len() == 9).then_some(())
    })
    .await
    .expect("3 rules x 3 cgroups armed");
    let before = agent.armed();

    tx.send(config(&yaml(&[
        rule("keep", "150ms", "2s"),
        rule("change", "200ms", "2s"),
        rule("added", "150ms", "4s"),
    ])))
    .expect("send");
    let after = wait_for(Duration::from_secs(2), || {
        let a = agent.armed();
        (ids(&a, "added").len() == 3 && ids(&a, "drop").is_empty()).then_some(a)
    })
    .await
    .expect("reload applied");
    assert_eq!(
        ids(&after, "keep"),
        ids(&before, "keep"),
        "unchanged rule keeps its triggers (same fds)"
    );
    let (b, a) = (ids(&before, "change"), ids(&after, "change"));
    assert_eq!(a.len(), 3);
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && x.1 != y.1),
        "changed rule re-armed: {b:?} -> {a:?}"
    );
    let text = exposition(&metrics);
    assert!(
        text.contains("psi_triggers_armed{rule=\"keep\"} 3"),
        "{text}"
    );
    assert!(
        !text.contains("rule=\"drop\""),
        "no stale series of a removed rule: {text}"
    );

    // A config the kernel refuses (1 s window, no CAP_SYS_RESOURCE) that
    // slipped past validation: the bad rule arms nothing and is counted;
    // the others stay armed as they were.
    tx.send(config(&yaml(&[
        rule("keep", "150ms", "2s"),
        rule("change", "200ms", "2s"),
        rule("added", "150ms", "4s"),
        rule("bad", "150ms", "1s"),
    ])))
    .expect("send");
    let text = wait_for(Duration::from_secs(2), || {
        let t = exposition(&metrics);
        t.contains("psi_trigger_errors_total{rule=\"bad\",reason=\"invalid\"} 3")
            .then_some(t)
    })
    .await;
    let now = agent.armed();
    if text.is_none() {
        println!(
            "1 s window accepted here (CAP_SYS_RESOURCE?); armed: {}",
            ids(&now, "bad").len()
        );
    } else {
        assert!(ids(&now, "bad").is_empty());
    }
    assert_eq!(ids(&now, "keep"), ids(&before, "keep"));
    assert_eq!(ids(&now, "added"), ids(&after, "added"));
    agent.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_alert_names_the_pressured_sibling_first() {
    if !ready() {
        return;
    }
    let _serial = serial().await;
    sweep();
    let tmp = tempfile::tempdir().expect("tmp");
    let am = Alertmanager::start(tmp.path());
    let hook = Capture::start().await;
    let parent = TestCgroup::new(&unique("attr"), true);
    let sibs: Vec<TestCgroup> = ["a", "b", "c"]
        .iter()
        .map(|s| TestCgroup::new(&format!("{}/{s}", parent.rel), true))
        .collect();
    let registry = registry();
    let uid = unified_id(&registry);
    registry.add(uid, &parent.path());
    for s in &sibs {
        registry.add(uid, &s.path());
    }
    let cfg = config(&format!(
        "psi:
  rules:
    - name: ParentPressure
      cgroups: ['{p}']
      resource: memory
      threshold: 150ms
      window: 2s
      resolve_after: 4s
alerting:
  alertmanagers: ['{am}']
  webhooks: ['{hook}']
  timeout: 2s
  oom_kills: false
  resend_interval: 1s
",
        p = parent.path(),
        am = am.url(),
        hook = hook.url
    ));
    let (agent, _metrics, _tx) = start_agent(&registry, cfg);
    wait_for(Duration::from_secs(2), || {
        (agent.armed().len() == 1).then_some(())
    })
    .await
    .expect("parent armed");
    let busy = sibs[1].path().to_string();
    let pressure = Pressure::start(&sibs[1], 8);
    let ps = parent.path().to_string();
    let a = wait_am(
        &am,
        Duration::from_secs(20),
        &[("alertname", "ParentPressure"), ("cgroup", &ps)],
    )
    .await
    .expect("parent alert in Alertmanager");
    drop(pressure);
    let top = a["annotations"]["top_contributors"]
        .as_str()
        .unwrap_or("")
        .to_string();
    println!("top_contributors: {top}");
    assert!(
        top.starts_with(&format!("{busy} ")),
        "{busy} first in {top:?}"
    );
    let w = wait_for(Duration::from_secs(5), || {
        hook.alerts()
            .into_iter()
            .find(|a| a["labels"]["cgroup"] == ps.as_str())
    })
    .await
    .expect("webhook alert");
    assert_eq!(w["contributors"][0]["cgroup"], busy.as_str(), "{w}");
    assert!(
        w["contributors"][0]["share"]
            .as_f64()
            .is_some_and(|s| s > 0.5),
        "{w}"
    );
    // Firing alerts are sent again every `resend_interval` (1 s here) until
    // they resolve, so a receiver that lost one hears it again.
    let firing_posts = |h: &Capture| {
        h.alerts()
            .into_iter()
            .filter(|a| a["labels"]["cgroup"] == ps.as_str() && a["status"] == "firing")
            .count()
    };
    let before = firing_posts(&hook);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = firing_posts(&hook);
    assert!(
        after >= before + 2,
        "re-sent while firing: {before} -> {after} posts"
    );
    agent.shutdown(Duration::from_secs(2)).await;
}

// === the shipped route (examples/alertmanager.yml) ===

/// Alertmanager and amtool, without the kernel: route checks need no root.
fn am_ready() -> bool {
    if alertmanager::available() && alertmanager::amtool().is_some() {
        return true;
    }
    if std::env::var("CGPE_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
    {
        panic!("prometheus-alertmanager (with amtool) missing and skipping is forbidden");
    }
    println!("skipped: prometheus-alertmanager (amtool) not installed");
    false
}

const ROUTE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/alertmanager.yml");

fn amtool(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(alertmanager::amtool().expect("amtool"))
        .args(args)
        .output()
        .expect("run amtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn shipped_route_passes_amtool_and_takes_only_the_agents_alerts() {
    if !am_ready() {
        return;
    }
    let (ok, out) = amtool(&["check-config", ROUTE_FILE]);
    assert!(ok, "amtool check-config {ROUTE_FILE}:\n{out}");
    let route = |labels: &[&str]| {
        let mut args = vec!["config", "routes", "test", "--config.file", ROUTE_FILE];
        args.extend_from_slice(labels);
        let (ok, out) = amtool(&args);
        assert!(ok, "{out}");
        // The receiver name is the one line without amtool's warning.
        out.lines()
            .filter(|l| !l.starts_with("Warning"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let generator = format!("{}={}", psi::GENERATOR_LABEL.0, psi::GENERATOR_LABEL.1);
    for name in ["CgroupMemoryPressure", psi::OOM_ALERTNAME] {
        assert_eq!(
            route(&[&format!("alertname={name}"), &generator, "pod_uid=0d4e"]),
            "node-pager"
        );
    }
    // A Prometheus rule's alert without the label keeps the default route.
    assert_eq!(
        route(&["alertname=CgroupMemoryPressure", "pod_uid=0d4e"]),
        "default"
    );
}

fn posted(name: &str, pod: &str) -> Value {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    serde_json::json!({
        "labels": {
            "alertname": name,
            "node": "node-1",
            "pod_uid": pod,
            "cgroup": format!("/kubepods.slice/kubepods-pod{pod}.slice"),
            psi::GENERATOR_LABEL.0: psi::GENERATOR_LABEL.1,
        },
        "startsAt": now,
    })
}

/// The grouping the route promises, in a real Alertmanager: one pod's
/// alerts arrive in one page; a second pod's alert is paged after its own
/// `group_wait`, not held back by the first pod's `group_interval`; a new
/// alert of the first pod waits for that pod's `group_interval`.
#[test]
fn shipped_route_pages_a_pod_together_and_never_holds_back_another_pod() {
    if !am_ready() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let pager = common::pager::Pager::start();
    let am = Alertmanager::start_with(tmp.path(), &common::pager::shipped_route(&pager.url));
    let (a, b) = (
        "aaaa1111-0000-4000-8000-000000000001",
        "bbbb2222-0000-4000-8000-000000000002",
    );
    let sent_a = Instant::now();
    let status = alertmanager::post_alerts(
        am.port,
        &serde_json::json!([
            posted("CgroupMemoryPressure", a),
            posted(psi::OOM_ALERTNAME, a)
        ]),
    );
    assert_eq!(status, Some(200));
    let first = pager
        .wait(Duration::from_secs(15), |p| {
            p.body["groupLabels"]["pod_uid"] == a
        })
        .expect("pod a paged");
    assert_eq!(
        first.alerts().len(),
        2,
        "one page for the pod: {}",
        first.body
    );
    // The agent's webhook fingerprint is Alertmanager's own.
    for a in first.alerts() {
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_value(a["labels"].clone()).expect("labels");
        assert_eq!(
            a["fingerprint"],
            cgroup_psi_exporter::alerting::payload::fingerprint(&labels),
            "{a}"
        );
    }
    assert_eq!(
        first.body["groupLabels"],
        serde_json::json!({"node": "node-1", "pod_uid": a}),
        "grouped by node and pod"
    );
    assert!(
        first.at - sent_a >= Duration::from_millis(900),
        "group_wait (1s) honoured: {:?}",
        first.at - sent_a
    );
    println!(
        "pod a paged {:?} after its alerts reached Alertmanager",
        first.at - sent_a
    );

    // Right after pod a's page: another pod, and a new alert of pod a.
    let sent_b = Instant::now();
    assert_eq!(
        alertmanager::post_alerts(
            am.port,
            &serde_json::json!([
                posted("CgroupMemoryPressure", b),
                posted("CgroupCpuPressure", a)
            ]),
        ),
        Some(200)
    );
    let page_b = pager
        .wait(Duration::from_secs(15), |p| {
            p.body["groupLabels"]["pod_uid"] == b
        })
        .expect("pod b paged");
    println!(
        "pod b paged {:?} after its alert reached Alertmanager",
        page_b.at - sent_b
    );
    assert!(
        page_b.at - sent_b < Duration::from_secs(8),
        "pod b waited for pod a's group_interval (10s): {:?}",
        page_b.at - sent_b
    );
    assert!(!page_b.has(&[("pod_uid", a)]), "{}", page_b.body);
    let again_a = pager
        .wait(Duration::from_secs(20), |p| {
            p.has(&[("alertname", "CgroupCpuPressure")])
        })
        .expect("pod a's new alert paged");
    println!(
        "pod a's new alert paged {:?} after pod a's first page",
        again_a.at - first.at
    );
    assert!(
        again_a.at - first.at >= Duration::from_secs(9),
        "a pod's follow-up waits for its group_interval (10s): {:?}",
        again_a.at - first.at
    );
}

/// Real pressure in a Kubernetes-shaped cgroup -> trigger -> agent -> a
/// real Alertmanager with the shipped route -> the pager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressure_pages_through_the_shipped_route() {
    if !ready() || !am_ready() {
        return;
    }
    let _serial = serial().await;
    sweep();
    let tmp = tempfile::tempdir().expect("tmp");
    let pager = common::pager::Pager::start();
    let am = Alertmanager::start_with(tmp.path(), &common::pager::shipped_route(&pager.url));
    let uid = "cccc3333-0000-4000-8000-000000000003";
    // `<anything>-kubepods.slice/kubepods-pod<uid>.slice`: a guaranteed pod.
    let pod = TestCgroup::new(
        &format!(
            "{}/kubepods-pod{}.slice",
            unique("kubepods.slice"),
            uid.replace('-', "_")
        ),
        true,
    );
    let parent = TestCgroup {
        rel: pod
            .rel
            .rsplit_once('/')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default(),
        v2: pod.v2.parent().map(Into::into).unwrap_or_default(),
        v1: pod.v1.as_ref().and_then(|d| d.parent()).map(Into::into),
    };
    let registry = registry();
    registry.add(unified_id(&registry), &pod.path());
    let cfg = config(&format!(
        "psi:
  rules:
    - name: PodMemoryPressure
      cgroups: ['{cg}']
      resource: memory
      threshold: 50ms
      window: 2s
      resolve_after: 30s
alerting:
  alertmanagers: ['{am}']
  timeout: 2s
  oom_kills: false
",
        cg = pod.path(),
        am = am.url()
    ));
    let (agent, _metrics, _tx) = start_agent(&registry, cfg);
    wait_for(Duration::from_secs(2), || {
        (agent.armed().len() == 1).then_some(())
    })
    .await
    .expect("pod trigger armed");
    let t0 = Instant::now();
    let pressure = Pressure::start(&pod, 15);
    let page = tokio::task::spawn_blocking(move || {
        let p = pager.wait(Duration::from_secs(30), |p| {
            p.has(&[("alertname", "PodMemoryPressure")])
        });
        (p, pager)
    })
    .await
    .expect("join");
    let page = page.0.expect("the pager got the pod's alert");
    println!("pressure start -> page: {:?}", page.at - t0);
    assert_eq!(page.body["receiver"], "node-pager");
    assert_eq!(page.body["groupLabels"]["pod_uid"], uid);
    assert_eq!(page.body["groupLabels"]["node"], node().as_str());
    let alert = &page.alerts()[0];
    assert_eq!(alert["labels"]["cgroup"], pod.path().to_string());
    assert_eq!(alert["labels"]["qos_class"], "guaranteed");
    // Generous: one 2 s window, 1 s group_wait and delivery take ~3 s;
    // the bench reports the figure, the test only the order of magnitude.
    assert!(page.at - t0 < Duration::from_secs(20), "{:?}", page.at - t0);
    drop(pressure);
    agent.shutdown(Duration::from_secs(2)).await;
    drop(pod);
    drop(parent);
}
