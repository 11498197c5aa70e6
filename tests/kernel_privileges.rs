//! Least privilege, measured: the exporter run as root with its capability
//! set cut down by `setpriv`, to show what each feature needs. Needs root
//! and util-linux's `setpriv`.
//!
//! - no capabilities at all: cgroup metrics and PSI triggers still work (the
//!   files are root's own), but other processes' `/proc/<pid>/ns/*` are
//!   refused (ptrace access check) and counted, not fatal;
//! - `CAP_SYS_PTRACE` + `CAP_DAC_READ_SEARCH`: namespaces are read too.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

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
        common::wait_ok(port, "/readyz", Duration::from_secs(20));
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

/// An unprivileged pod on a cgroup v2 node runs in its own cgroup
/// namespace, where `/proc/<pid>/cgroup` of every other process reads
/// relative to the exporter's cgroup (`/../<cgroup>`). Here the exporter is
/// started the same way, by `unshare --cgroup` inside a cgroup of its own,
/// and the namespace families must still name host paths.
#[test]
fn in_a_private_cgroup_namespace_process_cgroups_keep_their_host_paths() {
    if let Some(reason) = common::kernel_unavailable() {
        return common::skip(&reason);
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        return common::skip("unshare (util-linux) not installed");
    }
    let mut other = KernelCgroup::new("nsother");
    let sleeper = other.spawn("sleep 120");
    let home = KernelCgroup::new("nshome");
    let port = common::free_port();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} exec unshare --cgroup '{}' --web.listen-address 127.0.0.1:{port}",
            home.join_script(),
            env!("CARGO_BIN_EXE_cgroup-psi-exporter")
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let exporter = Capped { child, port };
    common::wait_ok(port, "/readyz", Duration::from_secs(20));
    // The setting is real: the exporter's namespace differs from ours, and
    // it sees the sleeper's cgroup as relative.
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/cgroup")).ok();
    let exporter_pid = exporter.child.id().to_string();
    assert_ne!(
        ns(&exporter_pid),
        ns("self"),
        "not in a private cgroup namespace"
    );

    let e = exporter.scrape();
    let processes = e.all("cgroup_processes");
    let named = |path: &str| {
        processes
            .iter()
            .find(|s| s.labels.get("cgroup").map(String::as_str) == Some(path))
            .map(|s| s.value)
    };
    assert!(
        named(&other.path()).is_some_and(|v| v >= 1.0),
        "the sleeper ({sleeper}) under its host path {}: {:?}",
        other.path(),
        processes.iter().map(|s| &s.labels).collect::<Vec<_>>()
    );
    assert!(
        named(&home.path()).is_some_and(|v| v >= 1.0),
        "the exporter itself under {}",
        home.path()
    );
    let relative: Vec<_> = processes
        .iter()
        .filter_map(|s| s.labels.get("cgroup"))
        .filter(|c| c.starts_with("/.."))
        .collect();
    assert!(relative.is_empty(), "relative paths exported: {relative:?}");
}
