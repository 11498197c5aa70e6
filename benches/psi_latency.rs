//! Time from the start of real memory pressure in a pod's cgroup to the
//! notification at a pager, through a real Alertmanager running the shipped
//! route (examples/alertmanager.yml, only its webhook URL pointed at a
//! local receiver): this agent (a kernel PSI trigger, 2 s window) against
//! Prometheus (scraping the exporter every 15 s, a rule on
//! `rate(cgroup_pressure_memory_waiting_seconds_total[1m])` with `for: 0s`,
//! evaluated every 15 s) through the same Alertmanager and route, side by
//! side in one run. Also reported: the agent's alert in Alertmanager's API
//! (before the route's `group_wait`).
//!
//! Root, and the Debian packages `prometheus` and `prometheus-alertmanager`:
//! `cargo bench --bench psi_latency`. `CGPE_BENCH_RUNS` (default 3) sets
//! the number of pressure episodes; each uses a new pod (its own
//! Alertmanager group, as a real incident would).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pager, pressure, KernelCgroup};

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

/// A pod cgroup, `/cgpe-test-<pid>-<run>-kubepods.slice/kubepods-pod<uid>.slice`,
/// in every hierarchy (the exporter derives `pod_uid` from the path).
fn pod_cgroup(run: usize) -> KernelCgroup {
    let uid = format!("0000{run:04}-0000-4000-8000-{:012}", std::process::id());
    let slice = format!("cgpe-test-{}-{run}-kubepods.slice", std::process::id());
    let cg = KernelCgroup::at(&format!(
        "{slice}/kubepods-pod{}.slice",
        uid.replace('-', "_")
    ));
    if common::pure_v2() {
        // `at` makes plain directories: hand memory down to the pod.
        let root = std::path::Path::new(common::CGROUP_MOUNT);
        let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
        let _ = std::fs::write(root.join(&slice).join("cgroup.subtree_control"), "+memory");
    }
    cg
}

/// `pressure::cap_memory` for a nested cgroup (v1 memory, else v2).
fn cap_memory(cg: &KernelCgroup, limit: u64) {
    let mem_root = std::path::Path::new(common::CGROUP_MOUNT).join("memory");
    let (dir, file) = match cg.dirs.iter().find(|d| d.starts_with(&mem_root)) {
        Some(d) => (d, "memory.limit_in_bytes"),
        None => (&cg.dirs[0], "memory.max"),
    };
    std::fs::write(dir.join(file), limit.to_string())
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()));
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into())
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
    let pager = pager::Pager::start();
    std::fs::write(d.join("am.yml"), pager::shipped_route(&pager.url)).expect("am config");
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

    let pid = std::process::id();
    std::fs::write(
        d.join("exporter.yml"),
        format!(
            "namespaces: {{ enabled: false }}\npsi:\n  rules:\n    - name: AgentMemoryPressure\n      cgroups: [\"/cgpe-test-{pid}-*-kubepods.slice/*\"]\n      resource: memory\n      kind: some\n      threshold: 50ms\n      window: 2s\n      resolve_after: 30s\nalerting:\n  alertmanagers: [\"http://127.0.0.1:{am_port}\"]\n"
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

    // The label puts Prometheus's alert on the same route as the agent's.
    std::fs::write(
        d.join("rules.yml"),
        format!("groups:\n  - name: bench\n    rules:\n      - alert: PrometheusMemoryPressure\n        expr: rate(cgroup_pressure_memory_waiting_seconds_total{{cgroup=~\"/cgpe-test-{pid}-.*-kubepods.slice/.*\"}}[1m]) > 0.01\n        for: 0s\n        labels: {{ generator: cgroup-psi-exporter }}\n"),
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
        let mut cg = pod_cgroup(run);
        cap_memory(&cg, pressure::LIMIT);
        // Let Prometheus record a quiet baseline for the new cgroup.
        std::thread::sleep(Duration::from_secs(35));
        let path = cg.path();
        let paged = |name: &str| {
            let path = path.clone();
            let name = name.to_string();
            move |p: &pager::Page| p.has(&[("alertname", &name), ("cgroup", &path)])
        };
        let t0 = Instant::now();
        pressure::start_readers(&mut cg, &file, 150, 2);
        let (mut in_am, mut agent, mut prom) = (None, None, None);
        while t0.elapsed() < Duration::from_secs(150) && (agent.is_none() || prom.is_none()) {
            if in_am.is_none() && in_alertmanager(am_port, "AgentMemoryPressure", &path) {
                in_am = Some(t0.elapsed());
            }
            let pages = pager.pages();
            if agent.is_none() {
                agent = pages
                    .iter()
                    .find(|p| paged("AgentMemoryPressure")(p))
                    .map(|p| p.at - t0);
            }
            if prom.is_none() {
                prom = pages
                    .iter()
                    .find(|p| paged("PrometheusMemoryPressure")(p))
                    .map(|p| p.at - t0);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "run {}: agent in Alertmanager {} | agent at the pager {} | prometheus at the pager {}",
            run + 1,
            secs(in_am),
            secs(agent),
            secs(prom)
        );
        rows.push((in_am, agent, prom));
        drop(cg);
    }
    println!();
    println!("| run | agent: pressure → pager | Prometheus rule: pressure → pager | ratio | (agent: pressure → Alertmanager API) |");
    println!("| --- | --- | --- | --- | --- |");
    for (i, (am, a, p)) in rows.iter().enumerate() {
        let ratio = match (a, p) {
            (Some(a), Some(p)) => format!("{:.1}×", p.as_secs_f64() / a.as_secs_f64()),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            i + 1,
            secs(*a),
            secs(*p),
            ratio,
            secs(*am)
        );
    }
}
