//! The ecosystem end to end: a real Prometheus (Debian package) scrapes the
//! exporter; a cgroup made here at a Kubernetes-shaped path carries the
//! right `pod_uid`, `container_id` and `qos_class` in Prometheus; the live
//! exposition passes `promtool check metrics`; and the dashboards' queries
//! return data while a cgroup is under real memory pressure. Needs root.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pressure, ExporterProcess, KernelCgroup};

const POD_UID: &str = "7c1e2f3a-4b5c-4d6e-8f90-0123456789ab";
const CONTAINER_ID: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Option<Prometheus> {
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = common::free_port();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: cgroup-psi-exporter\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n        labels: {{ node: test-node }}\n"
            ),
        )
        .expect("write prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        common::wait_ok(port, "/-/ready", Duration::from_secs(30));
        Some(p)
    }

    /// Instant query; the result vector.
    fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let enc: String = q
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (s, body) =
            common::http_get(self.port, &format!("/api/v1/query?query={enc}")).expect("query");
        assert_eq!(s, 200, "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn wait_for(&self, q: &str) -> Vec<serde_json::Value> {
        let t0 = Instant::now();
        loop {
            let r = self.query(q);
            if !r.is_empty() {
                return r;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no data for {q}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kubernetes_shaped_cgroup_carries_pod_labels_in_a_real_prometheus() {
    if let Some(r) = common::kernel_unavailable() {
        return common::skip(&r);
    }
    let path = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER_ID}.scope",
        POD_UID.replace('-', "_")
    );
    let mut cg = KernelCgroup::at(&path);
    cg.spawn("sleep 120");
    let ex = ExporterProcess::start(&[]);
    let Some(prom) = Prometheus::start(ex.port) else {
        return common::skip("prometheus not installed (apt-get install prometheus)");
    };
    let r = prom.wait_for(&format!(
        "cgroup_cpu_usage_seconds_total{{container_id=\"{CONTAINER_ID}\"}}"
    ));
    let m = &r[0]["metric"];
    assert_eq!(m["pod_uid"], POD_UID);
    assert_eq!(m["qos_class"], "burstable");
    assert_eq!(m["cgroup"], format!("/{path}"));
    // The pod-level cgroup has the pod but no container.
    let pod = prom.wait_for(&format!(
        "cgroup_memory_usage_bytes{{pod_uid=\"{POD_UID}\",container_id=\"\"}}"
    ));
    assert!(pod[0]["metric"]["cgroup"]
        .as_str()
        .unwrap_or("")
        .ends_with(".slice"));
    // And the live exposition lints clean.
    match common::promtool_check_metrics(&ex.scrape_text()) {
        Ok(true) => {}
        Ok(false) => common::skip("promtool not installed"),
        Err(e) => panic!("promtool check metrics: {e}"),
    }
}

/// `major:minor` of the whole disk holding `path`, as blkio and io.max
/// want it.
fn block_device_of(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = std::path::PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    // A partition: throttle its disk.
    if sys.join("partition").exists() {
        let parent = std::fs::read_to_string(sys.join("../dev")).ok()?;
        return Some(parent.trim().to_string());
    }
    Some(format!("{major}:{minor}"))
}

#[test]
fn dashboard_queries_return_data_from_a_real_prometheus() {
    if let Some(r) = common::kernel_unavailable() {
        return common::skip(&r);
    }
    let checker = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/ecosystem/check-dashboard-queries.py");
    if !checker.exists() {
        return common::skip("scripts/ecosystem/check-dashboard-queries.py missing");
    }
    // Conditions every panel needs: memory pressure, IO, CPU throttling, a
    // pids limit, an OOM kill, and the PSI agent with a receiver.
    let v2 = common::pure_v2();
    let mut cg = KernelCgroup::new("dash");
    pressure::cap_memory(&cg, pressure::LIMIT);
    let file = pressure::BigFile::new((pressure::LIMIT * 8) as usize);
    // Kernel quirk: v1 blkio.throttle.io_service_* only count IO of cgroups
    // that have a throttle rule on the device; a limit no one reaches does.
    if let Some(dev) = block_device_of(&file.path) {
        if v2 {
            let _ = std::fs::write(
                cg.dirs[0].join("io.max"),
                format!("{dev} rbps=100000000000"),
            );
        } else if let Some(d) = cg.dir("blkio") {
            let _ = std::fs::write(
                d.join("blkio.throttle.read_bps_device"),
                format!("{dev} 100000000000"),
            );
        }
    }
    if v2 {
        cg.write("", "cpu.max", "20000 100000");
        cg.write("", "pids.max", "200");
    } else {
        cg.write("cpu", "cpu.cfs_quota_us", "20000");
        cg.write("pids", "pids.max", "200");
    }
    pressure::start_readers(&mut cg, &file, 45, 2);
    cg.spawn("end=$(( $(date +%s) + 45 )); while [ $(date +%s) -lt $end ]; do :; done");
    let mut oom = KernelCgroup::new("dashoom");
    pressure::cap_memory(&oom, 32 << 20);
    oom.spawn("for i in 1 2 3 4 5 6; do python3 -c 'b = bytearray(200 << 20)' ; sleep 3; done");
    let ex = ExporterProcess::with_config(
        &format!(
            "psi:\n  rules:\n    - name: DashMemoryPressure\n      cgroups: [\"{}\"]\n      resource: memory\n      threshold: 50ms\n      window: 2s\nalerting:\n  alertmanagers: [\"http://127.0.0.1:9\"]\n",
            cg.path()
        ),
        &[],
    );
    let Some(prom) = Prometheus::start(ex.port) else {
        return common::skip("prometheus not installed (apt-get install prometheus)");
    };
    // Enough samples for rate() over the dashboards' windows.
    prom.wait_for("cgroup_pressure_memory_waiting_seconds_total");
    std::thread::sleep(Duration::from_secs(25));
    let out = Command::new("python3")
        .arg(&checker)
        .arg(format!("http://127.0.0.1:{}", prom.port))
        .output()
        .expect("run the dashboard query checker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "fewer than 90% of dashboard queries returned data:\n{text}"
    );
}
