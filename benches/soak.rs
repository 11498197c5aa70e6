//! Soak: cgroup churn and repeated real memory pressure while scraping every
//! second, with Alertmanager restarted twice; afterwards the exporter's fds,
//! inotify watches and RSS must be back where they were, no removed cgroup
//! may be exported, and every pressure episode must have reached
//! Alertmanager. Root and `prometheus-alertmanager`:
//!
//!     cargo bench --bench soak                       # 10 minutes
//!     CGPE_SOAK_SECS=120 cargo bench --bench soak    # shorter
//!
//! Exits non-zero when a check fails.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pressure, KernelCgroup};

fn spawn_am(dir: &std::path::Path, port: u16) -> Child {
    Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager")
}

fn active_cgroups(am: u16, alertname: &str) -> BTreeSet<String> {
    let Ok((200, body)) = common::http_get(am, "/api/v2/alerts") else {
        return BTreeSet::new();
    };
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname)
        .filter_map(|a| a["labels"]["cgroup"].as_str().map(String::from))
        .collect()
}

fn main() {
    if let Some(r) = common::kernel_unavailable() {
        eprintln!("skipped: {r}");
        return;
    }
    if Command::new("prometheus-alertmanager")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: prometheus-alertmanager not installed");
        return;
    }
    let secs: u64 = std::env::var("CGPE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let am_port = common::free_port();
    std::fs::write(
        d.join("am.yml"),
        "route:\n  receiver: 'null'\n  group_wait: 0s\nreceivers:\n  - name: 'null'\n",
    )
    .expect("am.yml");
    let mut am = spawn_am(d, am_port);
    let cfg = d.join("exporter.yml");
    std::fs::write(
        &cfg,
        format!(
            "psi:\n  rules:\n    - name: SoakMemoryPressure\n      cgroups: [\"/cgpe-test-*-soakp*\"]\n      resource: memory\n      threshold: 50ms\n      window: 2s\n      resolve_after: 40s\nalerting:\n  alertmanagers: [\"http://127.0.0.1:{am_port}\"]\n"
        ),
    )
    .expect("config");
    let ex = common::ExporterProcess::start(&[
        "--config.file",
        cfg.to_str().expect("utf8"),
        "--log.level",
        "warn",
    ]);
    let pid = ex.child.id();
    for _ in 0..5 {
        ex.scrape();
    }
    let base = (common::open_fds(pid), common::proc_status(pid, "VmRSS:"));
    let base_watches = ex
        .scrape()
        .get("cgroup_psi_exporter_inotify_watches", &[])
        .unwrap_or(0.0);
    println!(
        "soak for {secs} s: baseline fds={} rss={} kB watches={base_watches}",
        base.0, base.1
    );

    let file = pressure::BigFile::new((pressure::LIMIT * 8) as usize);
    let t0 = Instant::now();
    let mut churned = Vec::new();
    let mut episodes: Vec<String> = Vec::new();
    let mut delivered: BTreeSet<String> = BTreeSet::new();
    let mut pressured: Vec<KernelCgroup> = Vec::new();
    let mut restarts = 0;
    let mut scrapes = 0u64;
    let mut am_down_until: Option<Instant> = None;
    let mut next_episode = Duration::from_secs(5);
    while t0.elapsed() < Duration::from_secs(secs) {
        let tick = Instant::now();
        // Churn: five cgroups made and removed every second.
        for _ in 0..5 {
            let cg = KernelCgroup::new("soakc");
            churned.push(cg.path());
            drop(cg);
        }
        // A pressure episode every 60 s, 30 s long.
        if t0.elapsed() >= next_episode {
            let mut cg = KernelCgroup::new(&format!("soakp{}", episodes.len()));
            pressure::cap_memory(&cg, pressure::LIMIT);
            pressure::start_readers(&mut cg, &file, 30, 2);
            episodes.push(cg.path());
            pressured.push(cg);
            next_episode += Duration::from_secs(60);
        }
        // Alertmanager down for 20 s at 1/3 and 2/3 of the run, each time
        // 10 s into an episode so an alert is firing while it is away.
        let third = secs / 3;
        let at = |k: u64| Duration::from_secs(k * third - (k * third) % 60 + 15);
        if am_down_until.is_none() && restarts < 2 && t0.elapsed() >= at(restarts + 1) {
            let _ = am.kill();
            let _ = am.wait();
            am_down_until = Some(Instant::now() + Duration::from_secs(20));
            println!("t={:.0}s: alertmanager stopped", t0.elapsed().as_secs_f64());
        }
        if let Some(until) = am_down_until {
            if Instant::now() >= until {
                am = spawn_am(d, am_port);
                am_down_until = None;
                restarts += 1;
                println!(
                    "t={:.0}s: alertmanager restarted",
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        // Scrape every second.
        let m = ex.scrape();
        scrapes += 1;
        assert!(m.get("cgroup_psi_exporter_build_info", &[]).is_some());
        if am_down_until.is_none() {
            delivered.extend(active_cgroups(am_port, "SoakMemoryPressure"));
        }
        // Episodes over a minute old can go.
        if pressured.len() > 2 {
            pressured.remove(0);
        }
        if let Some(rest) = Duration::from_secs(1).checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    // Let the last alerts arrive, then stop the pressure.
    let wait = Instant::now();
    while wait.elapsed() < Duration::from_secs(20)
        && !episodes.iter().all(|e| delivered.contains(e))
    {
        delivered.extend(active_cgroups(am_port, "SoakMemoryPressure"));
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(pressured);
    std::thread::sleep(Duration::from_secs(3));
    let last = ex.scrape();
    let end = (common::open_fds(pid), common::proc_status(pid, "VmRSS:"));
    let end_watches = last
        .get("cgroup_psi_exporter_inotify_watches", &[])
        .unwrap_or(0.0);
    let stale: Vec<&String> = churned
        .iter()
        .filter(|c| last.cgroups().contains(*c))
        .collect();
    let missing: Vec<&String> = episodes
        .iter()
        .filter(|e| !delivered.contains(*e))
        .collect();
    let dropped = last
        .all("psi_alert_notifications_total")
        .iter()
        .filter(|s| {
            s.labels
                .get("outcome")
                .map(|o| o == "dropped")
                .unwrap_or(false)
        })
        .map(|s| s.value)
        .sum::<f64>();
    println!(
        "soak done: {scrapes} scrapes, {} cgroups churned, {} pressure episodes, {} delivered, alertmanager restarted {restarts}x",
        churned.len(),
        episodes.len(),
        episodes.len() - missing.len()
    );
    println!(
        "fds {} -> {}, rss {} -> {} kB (peak {} kB), watches {base_watches} -> {end_watches}, stale series {}, dropped notifications {dropped}",
        base.0,
        end.0,
        base.1,
        end.1,
        common::proc_status(pid, "VmHWM:"),
        stale.len()
    );
    let _ = am.kill();
    let _ = am.wait();
    let mut failed = Vec::new();
    if end.0 > base.0 + 4 {
        failed.push(format!("fds grew {} -> {}", base.0, end.0));
    }
    if end_watches > base_watches + 2.0 {
        failed.push(format!("watches grew {base_watches} -> {end_watches}"));
    }
    if end.1 > base.1 + 8192 {
        failed.push(format!(
            "RSS grew by more than 8 MiB: {} -> {} kB",
            base.1, end.1
        ));
    }
    if !stale.is_empty() {
        failed.push(format!("{} removed cgroups still exported", stale.len()));
    }
    if !missing.is_empty() {
        failed.push(format!("alerts never reached Alertmanager: {missing:?}"));
    }
    if failed.is_empty() {
        println!("soak: all checks passed");
    } else {
        println!("soak: FAILED: {}", failed.join("; "));
        // exit() runs no destructors: stop the exporter first, or it
        // outlives the bench.
        drop(ex);
        std::process::exit(1);
    }
}
