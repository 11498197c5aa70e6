//! Whole-exposition regressions: the exporter run with `--once` on a fake
//! cgroupfs/procfs of each layout, compared with `tests/golden/<layout>.prom`.
//! `UPDATE_GOLDEN=1 cargo test --test fixture fixtures_golden::` rewrites the goldens.

use crate::common;

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

/// The value of the first series of `text` whose line starts with
/// `series` (a name and the start of its labels) and holds `also`, as
/// written.
fn value_of(text: &str, series: &str, also: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(series) && l.contains(also))
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.to_string())
}

/// `cgroup_psi_exporter_read_errors_total{file}` of one exposition.
fn read_errors(text: &str, file: &str) -> f64 {
    value_of(
        text,
        &format!("cgroup_psi_exporter_read_errors_total{{file=\"{file}\"}} "),
        "",
    )
    .and_then(|v| v.parse().ok())
    .unwrap_or(0.0)
}

#[test]
fn a_known_key_or_single_value_that_does_not_parse_is_counted_and_logged() {
    let tree = fixtures::v2();
    // One bad value of a known key; the rest of the file is fine.
    tree.file(
        "web/cpu.stat",
        "usage_usec 12x4\nuser_usec 700000\nsystem_usec 300123\nnr_periods 100\nnr_throttled 7\nthrottled_usec 25000\n",
    );
    let (text, log) = once(&tree, &[]);
    assert_eq!(read_errors(&text, "cpu.stat"), 1.0, "{text}");
    assert!(log.contains("cpu.stat"), "logged: {log}");
    assert!(
        !text.contains("cgroup_cpu_usage_seconds_total{cgroup=\"/web\"}"),
        "no value made up for the broken key"
    );

    let tree = fixtures::v1();
    let c = format!("docker/{}", fixtures::CONTAINER_ID);
    tree.file(&format!("memory/{c}/memory.usage_in_bytes"), "lots\n");
    tree.file(&format!("cpuacct/{c}/cpuacct.usage"), "-5\n");
    let (text, log) = once(&tree, &[]);
    assert_eq!(read_errors(&text, "memory.usage_in_bytes"), 1.0, "{text}");
    assert_eq!(read_errors(&text, "cpuacct.usage"), 1.0, "{text}");
    assert!(
        log.contains("memory.usage_in_bytes") || log.contains("cpuacct.usage"),
        "logged: {log}"
    );
    assert!(
        text.contains(&format!("cgroup_memory_limit_bytes{{cgroup=\"/{c}\"")),
        "the cgroup's good files still export"
    );
}

#[test]
fn memory_stat_exports_the_byte_keys_of_newer_kernels_and_never_event_counters() {
    let tree = fixtures::v2();
    // Linux 6.18 memory.stat keys: `hugetlb` (bytes, 6.6+), `zswap_incomp`
    // (pages) and event counters (pgfault, workingset_*, pswpin).
    tree.file(
        "web/memory.stat",
        "anon 4096\nfile 8192\nzswap 12288\nzswapped 16384\nzswap_incomp 3\nhugetlb 2097152\ninactive_file 4096\nworkingset_refault_anon 5\npswpin 6\npgfault 7\nthp_fault_alloc 8\n",
    );
    let (text, _) = once(&tree, &[]);
    let stat = |k: &str| {
        value_of(
            &text,
            &format!("cgroup_memory_stat_bytes{{cgroup=\"/web\",stat=\"{k}\"}} "),
            "",
        )
    };
    assert_eq!(stat("hugetlb").as_deref(), Some("2097152"), "{text}");
    assert_eq!(stat("zswap").as_deref(), Some("12288"));
    assert_eq!(stat("zswapped").as_deref(), Some("16384"));
    for events in [
        "zswap_incomp",
        "workingset_refault_anon",
        "pswpin",
        "pgfault",
        "thp_fault_alloc",
    ] {
        assert_eq!(stat(events), None, "{events} is not bytes");
    }
}

#[test]
fn v1_io_comes_from_bfq_where_it_lists_a_device_else_from_the_throttle_files() {
    let tree = fixtures::v1();
    let c = format!("docker/{}", fixtures::CONTAINER_ID);
    // The container's disk runs BFQ: its files hold the real IO; the
    // throttle files (fixture: 8:0 4096*2 / 8192*2) only throttled IO.
    tree.file(
        &format!("blkio/{c}/blkio.bfq.io_service_bytes_recursive"),
        "8:0 Read 1048576\n8:0 Write 2097152\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 3145728\nTotal 3145728\n",
    );
    tree.file(
        &format!("blkio/{c}/blkio.bfq.io_serviced_recursive"),
        "8:0 Read 256\n8:0 Write 512\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 768\nTotal 768\n",
    );
    // The root lists every disk any cgroup does (a cgroup's blkg on a
    // disk implies its ancestors'): the exporter asks it first.
    tree.file(
        "blkio/blkio.bfq.io_serviced_recursive",
        "8:0 Read 300\n8:0 Write 600\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 900\nTotal 900\n",
    );
    // No IO of its own on the BFQ disk: just `Total 0`.
    tree.file(
        "blkio/docker/blkio.bfq.io_service_bytes_recursive",
        "Total 0\n",
    );
    tree.file("blkio/docker/blkio.bfq.io_serviced_recursive", "Total 0\n");
    let (text, _) = once(&tree, &[]);
    let m = |name: &str, cg: &str| {
        value_of(
            &text,
            &format!("{name}{{cgroup=\"/{cg}\""),
            "device=\"sda\"",
        )
    };
    assert_eq!(
        m("cgroup_io_read_bytes_total", &c).as_deref(),
        Some("1048576"),
        "{text}"
    );
    assert_eq!(
        m("cgroup_io_write_bytes_total", &c).as_deref(),
        Some("2097152")
    );
    assert_eq!(m("cgroup_io_reads_total", &c).as_deref(), Some("256"));
    assert_eq!(m("cgroup_io_writes_total", &c).as_deref(), Some("512"));
    // An empty BFQ file: the throttle files (4096 * 1).
    assert_eq!(
        m("cgroup_io_read_bytes_total", "docker").as_deref(),
        Some("4096")
    );
    assert_eq!(m("cgroup_io_reads_total", "docker").as_deref(), Some("10"));

    // The root's BFQ file lists no disk (no disk runs BFQ): no cgroup's
    // can, so none is asked and the throttle files give the IO.
    tree.file("blkio/blkio.bfq.io_serviced_recursive", "Total 0\n");
    let (text, _) = once(&tree, &[]);
    assert_eq!(
        value_of(
            &text,
            &format!("cgroup_io_read_bytes_total{{cgroup=\"/{c}\""),
            "device=\"sda\""
        )
        .as_deref(),
        Some("8192"),
        "{text}"
    );
}

#[test]
fn v1_swap_limit_is_memsw_minus_memory_and_absent_when_memsw_is_below_it() {
    let tree = fixtures::v1();
    let c = format!("docker/{}", fixtures::CONTAINER_ID);
    // The container's memory limit is 134217728.
    let swap_limit = |memsw: &str| {
        tree.file(&format!("memory/{c}/memory.memsw.limit_in_bytes"), memsw);
        let (text, _) = once(&tree, &[]);
        value_of(
            &text,
            &format!("cgroup_memory_swap_limit_bytes{{cgroup=\"/{c}\""),
            "",
        )
    };
    assert_eq!(swap_limit("201326592\n").as_deref(), Some("67108864"));
    assert_eq!(
        swap_limit("134217728\n").as_deref(),
        Some("0"),
        "equal: no swap"
    );
    // The kernel refuses memsw < memory (EINVAL): not a limit, no series.
    assert_eq!(swap_limit("67108864\n"), None);
    assert_eq!(swap_limit("9223372036854771712\n"), None, "unlimited");
}

/// The families of a `--once` exposition, as its `# TYPE` lines name them
/// (the Prometheus text format: counters with `_total`).
fn families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// `metrics.disable` takes any family of the one table, whatever collector
/// makes it: a namespace family, two of the exporter's own (the scrape's
/// and the kubelet client's) and PSI/alerting families go, and nothing
/// else does. The PSI agent does not run under `--once`, so its families
/// have no series here; that they go is checked on the registry in
/// `psi::metrics`, and here that the names are accepted.
#[test]
fn disable_removes_exactly_the_named_families_whatever_collector_makes_them() {
    let tree = fixtures::v2();
    // The namespace fixture's processes, next to the v2 tree's host files.
    let procfs_ns = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procfs-ns");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", procfs_ns.display()))
        .arg(tree.procfs())
        .status()
        .expect("cp runs");
    assert!(cp.success(), "cp -a of the namespace fixture failed");
    let cfg = tree.dir.path().join("c.yaml");
    let run = |disable: &str| {
        std::fs::write(
            &cfg,
            format!("kubernetes:\n  kubelet_url: http://127.0.0.1:9\nmetrics:\n  disable: [{disable}]\n"),
        )
        .expect("write");
        once(&tree, &["--config.file", cfg.to_str().expect("utf8")]).0
    };
    let all = run("");
    let gone = [
        "namespace_info",
        "cgroup_psi_exporter_fd_cache_fds",
        "cgroup_psi_exporter_kubelet_up",
        "cgroup_psi_exporter_namespace_read_errors_total",
    ];
    let some = run(
        "namespace_info, cgroup_psi_exporter_fd_cache_fds, cgroup_psi_exporter_kubelet_up, \
         cgroup_psi_exporter_namespace_read_errors_total, psi_trigger_events_total, psi_alert_queue_length",
    );
    let (all, some) = (families(&all), families(&some));
    for g in gone {
        assert!(all.contains(g), "{g} is exported by default: {all:?}");
    }
    let removed: Vec<&str> = all.difference(&some).map(String::as_str).collect();
    assert_eq!(removed, {
        let mut g = gone.to_vec();
        g.sort_unstable();
        g
    });
    assert!(some.is_subset(&all), "nothing appears either");

    // Every family the exporter wrote is a row of the table.
    for name in &all {
        assert!(
            cgroup_psi_exporter::metrics::ALL
                .iter()
                .any(|d| d.exported == name),
            "{name} is exported but not in metrics::ALL"
        );
    }
}

#[test]
fn an_unknown_family_in_metrics_disable_is_refused_with_a_suggestion() {
    let tree = fixtures::v2();
    let cfg = tree.dir.path().join("c.yaml");
    std::fs::write(&cfg, "metrics:\n  disable: [namespace_infos]\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cgroup-psi-exporter"))
        .arg("--check-config")
        .arg("--config.file")
        .arg(&cfg)
        .output()
        .expect("run the exporter");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(
        err.contains(
            "unknown metric family \"namespace_infos\" (did you mean \"namespace_info\"?)"
        ),
        "{err}"
    );
}

#[test]
fn a_disk_missing_from_proc_partitions_is_named_from_proc_diskstats() {
    let tree = fixtures::v1();
    // A detached loop device: size 0, so not in /proc/partitions, but its
    // counters stay in /proc/diskstats (and so in the root's IO).
    fixtures::write(
        &tree.procfs().join("diskstats"),
        "   8       0 sda 1200 30 9600 500 340 12 4800 900 0 1000 1400 0 0 0 0 0 0\n   7       0 loop0 160 0 1280 5 2624 0 20992 79 0 64 84 0 0 0 0 0 0\n",
    );
    let (text, _) = once(&tree, &[]);
    assert!(
        text.contains("cgroup_io_reads_total{cgroup=\"/\",device=\"loop0\"} 160"),
        "{text}"
    );
    assert!(!text.contains("device=\"7:0\""), "{text}");
}
