//! Whole-exposition regressions: the exporter run with `--once` on a fake
//! cgroupfs/procfs of each layout, compared with `tests/golden/<layout>.prom`.
//! `UPDATE_GOLDEN=1 cargo test --test fixtures_golden` rewrites the goldens.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::fixtures;

/// The exporter's own volatile series (durations, process stats) are not
/// part of the golden: everything else is.
fn stable(text: &str) -> String {
    let volatile = ["cgroup_psi_exporter_", "process_"];
    text.lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ")
                .trim_start_matches("# UNIT ");
            !volatile.iter().any(|v| name.starts_with(v))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn once(tree: &fixtures::Tree, extra: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cgroup-psi-exporter"))
        .arg("--once")
        .arg("--path.cgroupfs")
        .arg(tree.cgroupfs())
        .arg("--path.procfs")
        .arg(tree.procfs())
        .args(extra)
        .output()
        .expect("run the exporter");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn check(layout: &str) -> String {
    let tree = fixtures::by_name(layout);
    let (text, _) = once(&tree, &[]);
    let got = stable(&text);
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{layout}.prom"));
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
        std::fs::write(&golden, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .filter(|l| !want.lines().any(|w| w == *l))
            .map(|l| format!("+ {l}"))
            .chain(
                want.lines()
                    .filter(|l| !got.lines().any(|g| g == *l))
                    .map(|l| format!("- {l}")),
            )
            .take(40)
            .collect();
        panic!(
            "{layout}: exposition differs from {}:\n{}",
            golden.display(),
            diff.join("\n")
        );
    }
    if let Err(lint) = common::promtool_check_metrics(&text) {
        panic!("{layout}: promtool check metrics: {lint}");
    }
    got
}

#[test]
fn v2_golden() {
    let t = check("v2");
    assert!(t.contains("cgroup_memory_limit_bytes{cgroup=\"/web\"} 268435456"));
    assert!(
        !t.contains("cgroup_memory_limit_bytes{cgroup=\"/batch\"}"),
        "max is an absent series"
    );
    assert!(t.contains("cgroup_cpu_limit_cores{cgroup=\"/web\"} 1.5"));
    assert!(t.contains("cgroup_io_read_bytes_total{cgroup=\"/web\",device=\"sda\"} 4096"));
    // The host's pressure, from /proc/pressure, as cgroup="/".
    assert!(t.contains("cgroup_pressure_memory_waiting_seconds_total{cgroup=\"/\"} 3.180044"));
}

#[test]
fn v1_golden() {
    let t = check("v1");
    let id = fixtures::CONTAINER_ID;
    let c = format!("/docker/{id}");
    assert!(t.contains(&format!(
        "cgroup_memory_limit_bytes{{cgroup=\"{c}\",container_id=\"{id}\"}} 134217728"
    )));
    assert!(t.contains(&format!(
        "cgroup_cpu_limit_cores{{cgroup=\"{c}\",container_id=\"{id}\"}} 0.5"
    )));
    assert!(t.contains(&format!(
        "cgroup_cpu_shares{{cgroup=\"{c}\",container_id=\"{id}\"}} 2048"
    )));
    assert!(
        !t.contains("cgroup_memory_limit_bytes{cgroup=\"/docker\"}"),
        "v1 unlimited is absent"
    );
    assert!(
        t.contains("cgroup_pressure_cpu_waiting_seconds_total{cgroup=\"/\"}"),
        "host pressure from /proc on v1"
    );
}

#[test]
fn hybrid_golden() {
    let t = check("hybrid");
    let id = fixtures::CONTAINER_ID;
    let c = format!("/docker/{id}");
    // usage from unified/cpu.stat, throttling from v1 cpu.stat, memory from v1.
    assert!(t.contains(&format!(
        "cgroup_cpu_usage_seconds_total{{cgroup=\"{c}\",container_id=\"{id}\"}} 1.998"
    )));
    assert!(t.contains(&format!(
        "cgroup_cpu_throttled_periods_total{{cgroup=\"{c}\",container_id=\"{id}\"}} 14"
    )));
    assert!(t.contains(&format!(
        "cgroup_memory_usage_bytes{{cgroup=\"{c}\",container_id=\"{id}\"}} 80000000"
    )));
    assert!(t.contains(&format!(
        "cgroup_pressure_memory_waiting_seconds_total{{cgroup=\"{c}\",container_id=\"{id}\"}} 0.004"
    )));
}

/// Real files of a pure cgroup v2 kernel (Linux 6.1, captured in the VM of
/// `scripts/vm` by `scripts/vm/run --capture`; see docs/testing.md).
#[test]
fn v2_linux_6_1_captured_golden() {
    let t = check("v2-linux-6.1");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kernel-files/linux-6.1-v2/cgroup/cgpe-capture");
    let usage_usec: u64 = std::fs::read_to_string(dir.join("cpu.stat"))
        .expect("captured cpu.stat")
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec ")?.parse().ok())
        .expect("usage_usec");
    let c = "cgroup=\"/cgpe-capture\"";
    assert!(t.contains(&format!(
        "cgroup_cpu_usage_seconds_total{{{c}}} {}\n",
        usage_usec as f64 / 1e6
    )));
    assert!(t.contains(&format!("cgroup_cpu_limit_cores{{{c}}} 0.5\n")));
    assert!(t.contains(&format!("cgroup_memory_limit_bytes{{{c}}} 268435456\n")));
    assert!(t.contains(&format!(
        "cgroup_io_limit_read_bytes_per_second{{{c},device=\"vda\"}} 16777216\n"
    )));
    assert!(
        !t.contains("cgroup_io_limit_write_bytes_per_second{cgroup=\"/cgpe-capture\""),
        "wbps=max is absent"
    );
    assert!(
        !t.contains("cgroup_memory_limit_bytes{cgroup=\"/cgpe-capture/unlimited\"}"),
        "memory.max = max is absent"
    );
}

#[test]
fn systemd_golden() {
    let t = check("systemd");
    assert!(t.contains("cgroup_memory_limit_bytes{cgroup=\"/system.slice/nginx.service\",unit=\"nginx.service\"} 268435456"));
}

#[test]
fn kubernetes_golden() {
    let t = check("kubernetes");
    let c = format!(
        "cgroup_memory_limit_bytes{{cgroup=\"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope\",container_id=\"{}\",pod_uid=\"{}\",qos_class=\"burstable\"}} 268435456",
        fixtures::POD_UID_SYSTEMD,
        fixtures::CONTAINER_ID,
        fixtures::CONTAINER_ID,
        fixtures::POD_UID
    );
    assert!(t.contains(&c), "missing: {c}");
}

#[test]
fn a_tree_of_garbage_files_still_scrapes_the_good_files_and_counts_errors() {
    let tree = fixtures::v2();
    for f in [
        "cpu.stat",
        "memory.stat",
        "io.stat",
        "memory.events",
        "cpu.pressure",
        "pids.max",
    ] {
        tree.file(
            &format!("batch/{f}"),
            "\u{0}garbage \u{fffd} 99999999999999999999999\n",
        );
    }
    let (text, _) = once(&tree, &[]);
    assert!(
        text.contains("cgroup_memory_usage_bytes{cgroup=\"/batch\"}"),
        "good files of the broken cgroup still export"
    );
    assert!(!text.contains("cgroup_cpu_usage_seconds_total{cgroup=\"/batch\"}"));
    assert!(
        text.contains("cgroup_cpu_usage_seconds_total{cgroup=\"/web\"}"),
        "other cgroups unaffected"
    );
    let errors: f64 = text
        .lines()
        .filter(|l| l.starts_with("cgroup_psi_exporter_read_errors_total{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert!(errors >= 5.0, "read errors counted: {errors}\n{text}");
}

#[test]
fn disabled_families_are_neither_exported_nor_read() {
    let tree = fixtures::v2();
    let cfg = tree.dir.path().join("c.yaml");
    std::fs::write(&cfg, "metrics:\n  disable: [cgroup_memory_stat_bytes, cgroup_io_read_bytes_total, cgroup_io_write_bytes_total, cgroup_io_reads_total, cgroup_io_writes_total]\n").expect("write");
    // A broken io.stat would be counted if it were read.
    tree.file("web/io.stat", "garbage\n");
    let (text, _) = once(&tree, &["--config.file", cfg.to_str().expect("utf8")]);
    assert!(!text.contains("cgroup_memory_stat_bytes"));
    assert!(!text.contains("cgroup_io_read_bytes_total"));
    assert!(
        !text.contains("file=\"io.stat\""),
        "io.stat was read although its families are off"
    );
    assert!(
        text.contains("cgroup_memory_working_set_bytes"),
        "working set still computed"
    );
}
