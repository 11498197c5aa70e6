//! Time from the start of real memory pressure in a cgroup to the alert
//! being in Alertmanager: this agent (a kernel PSI trigger, 2 s window)
//! against Prometheus (scraping the exporter every 15 s, a rule on
//! `rate(cgroup_pressure_memory_waiting_seconds_total[1m])` with `for: 0s`,
//! evaluated every 15 s), side by side in one run, against one real
//! Alertmanager. Root, and the Debian packages `prometheus` and
//! `prometheus-alertmanager`: `cargo bench --bench psi_latency`.
//! `CGPE_BENCH_RUNS` (default 3) sets the number of pressure episodes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pressure, KernelCgroup};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &str, args: &[String]) -> Proc {
    Proc(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}")),
    )
}

/// When Alertmanager holds an active alert `name` for `cgroup`.
fn in_alertmanager(am: u16, name: &str, cgroup: &str) -> bool {
    let Ok((200, body)) = common::http_get(am, "/api/v2/alerts?active=true") else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return false;
    };
    v.as_array()
        .map(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == name && x["labels"]["cgroup"] == cgroup)
        })
        .unwrap_or(false)
}

fn main() {
    if let Some(r) = common::kernel_unavailable() {
        eprintln!("skipped: {r}");
        return;
    }
    for b in ["prometheus", "prometheus-alertmanager"] {
        if Command::new(b).arg("--version").output().is_err() {
            eprintln!(
                "skipped: {b} not installed (apt-get install prometheus prometheus-alertmanager)"
            );
            return;
        }
    }
    let runs: usize = std::env::var("CGPE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (am_port, ex_port, prom_port) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );

    std::fs::write(d.join("am.yml"), "route:\n  receiver: 'null'\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: 'null'\n").expect("am config");
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", d.join("am.yml").display()),
            format!("--storage.path={}", d.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
    );
    common::wait_ok(am_port, "/-/ready", Duration::from_secs(30));

    std::fs::write(
        d.join("exporter.yml"),
        format!(
            "namespaces: {{ enabled: false }}\npsi:\n  rules:\n    - name: AgentMemoryPressure\n      cgroups: [\"/cgpe-test-*-psilat\"]\n      resource: memory\n      kind: some\n      threshold: 50ms\n      window: 2s\n      resolve_after: 30s\nalerting:\n  alertmanagers: [\"http://127.0.0.1:{am_port}\"]\n"
        ),
    )
    .expect("exporter config");
    let _ex = spawn(
        env!("CARGO_BIN_EXE_cgroup-psi-exporter"),
        &[
            format!("--web.listen-address=127.0.0.1:{ex_port}"),
            format!("--config.file={}", d.join("exporter.yml").display()),
            "--log.level=warn".into(),
        ],
    );
    common::wait_ok(ex_port, "/readyz", Duration::from_secs(30));

    std::fs::write(
        d.join("rules.yml"),
        "groups:\n  - name: bench\n    rules:\n      - alert: PrometheusMemoryPressure\n        expr: rate(cgroup_pressure_memory_waiting_seconds_total{cgroup=~\"/cgpe-test-.*-psilat\"}[1m]) > 0.01\n        for: 0s\n",
    )
    .expect("rules");
    std::fs::write(
        d.join("prom.yml"),
        format!(
            "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files: [\"{}\"]\nalerting:\n  alertmanagers:\n    - static_configs: [{{ targets: [\"127.0.0.1:{am_port}\"] }}]\nscrape_configs:\n  - job_name: cgpe\n    static_configs: [{{ targets: [\"127.0.0.1:{ex_port}\"] }}]\n",
            d.join("rules.yml").display()
        ),
    )
    .expect("prometheus config");
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", d.join("prom.yml").display()),
            format!("--storage.tsdb.path={}", d.join("prom").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
    );
    common::wait_ok(prom_port, "/-/ready", Duration::from_secs(30));

    let file = pressure::BigFile::new((pressure::LIMIT * 8) as usize);
    let mut rows = Vec::new();
    for run in 0..runs {
        let mut cg = KernelCgroup::new("psilat");
        pressure::cap_memory(&cg, pressure::LIMIT);
        // Let Prometheus record a quiet baseline for the new cgroup.
        std::thread::sleep(Duration::from_secs(35));
        let path = cg.path();
        let t0 = Instant::now();
        pressure::start_readers(&mut cg, &file, 150, 2);
        let (mut agent, mut prom) = (None, None);
        while t0.elapsed() < Duration::from_secs(150) && (agent.is_none() || prom.is_none()) {
            if agent.is_none() && in_alertmanager(am_port, "AgentMemoryPressure", &path) {
                agent = Some(t0.elapsed());
            }
            if prom.is_none() && in_alertmanager(am_port, "PrometheusMemoryPressure", &path) {
                prom = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let s = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "none in 150 s".into())
        };
        println!(
            "run {}: agent {} | prometheus {}",
            run + 1,
            s(agent),
            s(prom)
        );
        rows.push((agent, prom));
        drop(cg);
    }
    println!();
    println!("| run | agent (PSI trigger → Alertmanager) | Prometheus (15 s scrape, rate[1m], for: 0s) | ratio |");
    println!("| --- | --- | --- | --- |");
    for (i, (a, p)) in rows.iter().enumerate() {
        let ratio = match (a, p) {
            (Some(a), Some(p)) => format!("{:.1}×", p.as_secs_f64() / a.as_secs_f64()),
            _ => "-".into(),
        };
        let f = |d: &Option<Duration>| {
            d.map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into())
        };
        println!("| {} | {} | {} | {} |", i + 1, f(a), f(p), ratio);
    }
}
