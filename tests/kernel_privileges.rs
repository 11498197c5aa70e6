//! Least privilege, measured: the exporter run as root with its capability
//! set cut down by `setpriv`, to show what each feature needs. Needs root
//! and util-linux's `setpriv`.
//!
//! - no capabilities at all: cgroup metrics and PSI triggers still work (the
//!   files are root's own), but other processes' `/proc/<pid>/ns/*` are
//!   refused (ptrace access check) and counted, not fatal;
//! - `CAP_SYS_PTRACE` + `CAP_DAC_READ_SEARCH`: namespaces are read too.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::KernelCgroup;

struct Capped {
    child: std::process::Child,
    port: u16,
}

impl Capped {
    fn start(bounding: &str, config: &std::path::Path) -> Capped {
        let port = common::free_port();
        let child = Command::new("setpriv")
            .arg(format!("--bounding-set=-all{bounding}"))
            .arg("--inh-caps=-all")
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_cgroup-psi-exporter"))
            .args([
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
                "--log.level",
                "warn",
            ])
            .arg("--config.file")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv");
        let c = Capped { child, port };
        let t0 = Instant::now();
        while common::http_get(port, "/readyz").map(|r| r.0).ok() != Some(200) {
            assert!(t0.elapsed() < Duration::from_secs(20), "not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn cap_eff(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
            .unwrap_or_default()
    }

    fn scrape(&self) -> common::Exposition {
        // A generous scrape timeout, as Prometheus states it: a debug build
        // on a machine with many cgroups can need more than the default.
        let (s, body) = common::http_request(
            self.port,
            "GET",
            "/metrics",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "120")],
        )
        .expect("scrape");
        assert_eq!(s, 200);
        common::Exposition::parse(&body)
    }
}

impl Drop for Capped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn capabilities_each_feature_needs() {
    if let Some(r) = common::kernel_unavailable() {
        return common::skip(&r);
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return common::skip("setpriv (util-linux) not installed");
    }
    let mut cg = KernelCgroup::new("caps");
    // Outlives the test (killed when `cg` drops).
    cg.spawn("sleep 600");
    let cfg = std::env::temp_dir().join(format!("cgpe-caps-{}.yaml", std::process::id()));
    std::fs::write(
        &cfg,
        format!("psi:\n  rules:\n    - name: CapsMemory\n      cgroups: [\"{}\"]\n      resource: memory\n      threshold: 100ms\n      window: 2s\n", cg.path()),
    )
    .expect("config");

    // Full root first: the baseline (on this machine PID 1's ns links are
    // refused even to root; those refusals are not about capabilities).
    let full = Capped::start(",+all", &cfg);
    std::thread::sleep(Duration::from_millis(500));
    let baseline = full
        .scrape()
        .get(
            "cgroup_psi_exporter_namespace_read_errors_total",
            &[("reason", "permission")],
        )
        .unwrap_or(0.0);
    drop(full);

    // No capabilities.
    let none = Capped::start("", &cfg);
    assert_eq!(
        none.cap_eff(),
        "0000000000000000",
        "really without capabilities"
    );
    std::thread::sleep(Duration::from_millis(500));
    let m = none.scrape();
    assert!(
        m.get("cgroup_memory_usage_bytes", &[("cgroup", &cg.path())])
            .is_some(),
        "cgroup metrics need no capability"
    );
    assert_eq!(
        m.get("psi_triggers_armed", &[("rule", "CapsMemory")]),
        Some(1.0),
        "PSI triggers need no capability, only write access to the pressure file"
    );
    let refused = m
        .get(
            "cgroup_psi_exporter_namespace_read_errors_total",
            &[("reason", "permission")],
        )
        .unwrap_or(0.0);
    assert!(
        refused > baseline,
        "other processes' namespaces are refused without CAP_SYS_PTRACE (counted: {refused}, as root: {baseline})"
    );
    drop(none);

    // CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH.
    let some = Capped::start(",+sys_ptrace,+dac_read_search", &cfg);
    std::thread::sleep(Duration::from_millis(500));
    let m = some.scrape();
    let refused = m
        .get(
            "cgroup_psi_exporter_namespace_read_errors_total",
            &[("reason", "permission")],
        )
        .unwrap_or(0.0);
    assert_eq!(
        refused, baseline,
        "with both capabilities, namespaces are as readable as for full root"
    );
    assert!(
        m.get(
            "cgroup_namespace_info",
            &[("cgroup", &cg.path()), ("type", "net")]
        )
        .is_some(),
        "the test cgroup's namespaces are mapped"
    );
}
