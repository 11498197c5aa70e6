//! The namespace collector against a fake procfs
//! (`tests/fixtures/procfs-ns`, made by its `regenerate.sh`): golden
//! exposition plus targeted checks. `UPDATE_GOLDEN=1 cargo test --test
//! namespaces_fixture` rewrites `tests/golden/namespaces.prom`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cgroup_psi_exporter::cgroupfs::CgroupPath;
use cgroup_psi_exporter::namespaces::{HostSource, NamespaceCollector, NsType};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

const POD_A: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d4e1f2a_3b5c_4d6e_8f90_a1b2c3d4e5f6.slice/cri-containerd-4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c.scope";
const POD_B: &str = "/kubepods.slice/kubepods-pod7a8b9c0d_1e2f_4a3b_8c4d_5e6f7a8b9c0d.slice/cri-containerd-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d.scope";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procfs-ns")
}

fn exposition(procfs: PathBuf) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NamespaceCollector::new(procfs)));
    let mut out = String::new();
    encode(&mut out, &registry).expect("encoding into a String cannot fail");
    out
}

/// The scan duration changes every run: pin it for the golden comparison.
fn stable(exposition: &str) -> String {
    exposition
        .lines()
        .map(|l| {
            if l.starts_with("cgroup_psi_exporter_namespace_scan_duration_seconds ") {
                "cgroup_psi_exporter_namespace_scan_duration_seconds <elapsed>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A private, writable copy of the fixture (symlinks kept as symlinks).
fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture().display()))
        .arg(dir.path())
        .status()
        .expect("cp runs");
    assert!(status.success(), "cp -a of the fixture failed");
    dir
}

#[test]
fn fixture_exposition_matches_golden() {
    let got = stable(&exposition(fixture()));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/namespaces.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&golden).expect("golden exists (UPDATE_GOLDEN=1 makes it)");
    assert_eq!(got, want, "exposition differs from {}", golden.display());
}

#[test]
fn host_reference_falls_back_to_self_when_pid1_ns_is_missing() {
    let snap = NamespaceCollector::new(fixture()).scan();
    assert_eq!(snap.host_source, Some(HostSource::SelfProcess));
    assert_eq!(snap.host_namespaces[NsType::Net.index()], Some(4026531840));
    assert_eq!(snap.host_namespaces[NsType::User.index()], Some(4026531837));
}

#[test]
fn rootless_container_is_isolated_and_not_real_root() {
    let snap = NamespaceCollector::new(fixture()).scan();
    let pod = &snap.cgroups[&CgroupPath::new(POD_A)];
    assert_eq!(pod.processes, 2);
    assert_eq!(pod.host_root_processes, 0);
    assert_eq!(pod.labels.container_id.as_deref().map(str::len), Some(64));
    assert_eq!(pod.labels.qos_class, Some("burstable"));
    for t in [
        NsType::Net,
        NsType::Uts,
        NsType::Pid,
        NsType::Ipc,
        NsType::Mnt,
        NsType::User,
    ] {
        assert_eq!(pod.host_namespace.get(&t), Some(&false), "{t}");
    }
    assert_eq!(pod.host_namespace.get(&NsType::Time), Some(&true));
    assert!(pod.namespaces.contains(&(NsType::Net, 4026532305)));
    assert_eq!(snap.user_root_mapped_to_host.get(&4026532300), Some(&false));
    assert_eq!(snap.user_root_mapped_to_host.get(&4026531837), Some(&true));
    let lo = snap.network[&4026532305]
        .iter()
        .find(|l| l.interface == "lo")
        .expect("pod A's netns has lo");
    assert_eq!((lo.rx_packets, lo.tx_bytes), (8, 640));
}

#[test]
fn host_network_pod_shares_net_but_not_mnt() {
    let snap = NamespaceCollector::new(fixture()).scan();
    let pod = &snap.cgroups[&CgroupPath::new(POD_B)];
    assert_eq!(pod.host_namespace.get(&NsType::Net), Some(&true));
    assert_eq!(pod.host_namespace.get(&NsType::User), Some(&true));
    assert_eq!(pod.host_namespace.get(&NsType::Mnt), Some(&false));
    assert_eq!(pod.host_root_processes, 1);
    assert_eq!(pod.labels.qos_class, Some("guaranteed"));
}

#[test]
fn broken_and_vanished_processes_are_skipped_or_counted() {
    let snap = NamespaceCollector::new(fixture()).scan();
    // 1, 2, 100, 200, 300, 301, 400, 500, 700; 600 vanished.
    assert_eq!(snap.processes, 9);
    // 500's garbage net link and garbage cgroup file.
    assert_eq!(snap.read_errors.parse, 2);
    assert_eq!(snap.read_errors.permission, 0);
    // 500 has no cgroup: it is in no cgroup's count.
    let total: u64 = snap.cgroups.values().map(|c| c.processes).sum();
    assert_eq!(total, 8);
    // PID 1 (no ns/) still counts in the root cgroup.
    assert_eq!(snap.cgroups[&CgroupPath::root()].processes, 2);
    // The host netns: 2, 100, 200, 400, 700.
    assert_eq!(snap.namespaces[&(NsType::Net, 4026531840)], 5);
}

#[test]
fn hybrid_cgroup_file_takes_the_most_specific_path() {
    let snap = NamespaceCollector::new(fixture()).scan();
    // 200: v2 path deeper than the v1 memory one.
    assert!(snap.cgroups.contains_key(&CgroupPath::new(
        "/user.slice/user-1000.slice/session-3.scope"
    )));
    assert!(!snap.cgroups.contains_key(&CgroupPath::new("/user.slice")));
    // 700: comm with parentheses parsed.
    assert_eq!(
        snap.cgroups[&CgroupPath::new("/system.slice/weird.service")].processes,
        1
    );
}

#[test]
fn warm_scan_reads_only_new_processes_and_evicts_gone_ones() {
    let dir = copy_fixture();
    let root = dir.path().to_path_buf();
    let c = NamespaceCollector::new(root.clone());
    let cold = c.scan();
    assert_eq!(cold.processes_read, 9);
    let warm = c.scan();
    assert_eq!(warm.processes_read, 0);
    assert_eq!(warm.processes, 9);
    // Parse errors are not recounted for cached processes.
    assert_eq!(warm.read_errors.parse, 2);

    // A new process (copy of 301 with a new pid) is the only one read.
    let status = Command::new("cp")
        .arg("-a")
        .arg(root.join("301"))
        .arg(root.join("302"))
        .status()
        .expect("cp runs");
    assert!(status.success());
    std::fs::remove_dir_all(root.join("200")).expect("rm 200");
    let next = c.scan();
    assert_eq!(next.processes_read, 1);
    assert_eq!(next.processes_cached, 9);
    assert_eq!(next.cgroups[&CgroupPath::new(POD_A)].processes, 3);
    assert!(!next.cgroups.contains_key(&CgroupPath::new(
        "/user.slice/user-1000.slice/session-3.scope"
    )));

    // Pid reuse: same pid, new starttime => read again, new cgroup seen.
    let stat = std::fs::read_to_string(root.join("700/stat")).expect("stat");
    std::fs::write(root.join("700/stat"), stat.replace(" 7000 ", " 7100 ")).expect("write");
    std::fs::write(root.join("700/cgroup"), "0::/system.slice/reused.service\n").expect("write");
    let reused = c.scan();
    assert_eq!(reused.processes_read, 1);
    assert!(reused
        .cgroups
        .contains_key(&CgroupPath::new("/system.slice/reused.service")));
}

#[test]
fn net_dev_member_is_rechosen_when_it_exits() {
    let dir = copy_fixture();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("301/net")).expect("mkdir");
    std::fs::write(
        root.join("301/net/dev"),
        "h|\nh|\n    lo:     999       9    0    0    0     0          0         0      999       9    0    0    0     0       0          0\n",
    )
    .expect("write");
    let c = NamespaceCollector::new(root.clone());
    let first = c.scan();
    assert_eq!(
        first.network[&4026532305][0].rx_bytes, 640,
        "lowest pid (300) first"
    );
    std::fs::remove_dir_all(root.join("300")).expect("rm 300");
    let second = c.scan();
    assert_eq!(
        second.network[&4026532305][0].rx_bytes, 999,
        "301 takes over"
    );
}

#[test]
fn exposition_names_follow_the_contract() {
    let text = exposition(fixture());
    for name in [
        "# TYPE namespaces gauge",
        "# TYPE namespace_info gauge",
        "# TYPE namespace_processes gauge",
        "# TYPE cgroup_namespace_info gauge",
        "# TYPE cgroup_host_namespace gauge",
        "# TYPE cgroup_processes gauge",
        "# TYPE cgroup_host_root_processes gauge",
        "# TYPE namespace_user_root_mapped_to_host gauge",
        "# TYPE namespace_network_receive_bytes counter",
        "# TYPE namespace_network_transmit_drops counter",
        "# TYPE cgroup_psi_exporter_namespace_scan_duration_seconds gauge",
        "# TYPE cgroup_psi_exporter_namespace_read_errors counter",
        "# TYPE cgroup_psi_exporter_namespace_processes_cached gauge",
    ] {
        assert!(text.contains(name), "missing {name:?}");
    }
    assert!(text.contains(
        "namespace_network_receive_packets_total{inode=\"4026532305\",interface=\"lo\"} 8\n"
    ));
    assert!(text.contains("namespaces{type=\"net\"} 2\n"));
    assert!(text.contains("cgroup_psi_exporter_namespace_read_errors_total{reason=\"parse\"} 2\n"));
    let pod_a_net = format!(
        "cgroup_host_namespace{{cgroup=\"{POD_A}\",container_id=\"4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c\",pod_uid=\"0d4e1f2a-3b5c-4d6e-8f90-a1b2c3d4e5f6\",qos_class=\"burstable\",type=\"net\"}} 0\n"
    );
    assert!(text.contains(&pod_a_net), "{text}");
}

#[test]
fn prometheus_text_exposition_passes_promtool_lint() {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NamespaceCollector::new(fixture())));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .expect("encoding into a String cannot fail");
    assert!(text.contains("# TYPE namespace_network_receive_bytes_total counter\n"));
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        // Optional for contributors; CI installs promtool and must not skip.
        if std::env::var("CGPE_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true")
        {
            panic!("promtool missing and skipping is forbidden in CI");
        }
        eprintln!("skipped: promtool not installed");
        return;
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An exporter in a private cgroup namespace (an unprivileged pod on a v2
/// node): every `/proc/<pid>/cgroup` reads relative to the exporter's own
/// cgroup. With the layout, the scanner finds that cgroup by its pid in
/// `cgroup.procs` and reports host paths.
#[test]
fn a_private_cgroup_namespace_is_mapped_back_to_host_paths() {
    use cgroup_psi_exporter::cgroupfs::Layout;
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let cgroupfs = dir.path().join("cgroup");
    let procfs = dir.path().join("proc");
    let own = "/kubepods/pod1/exporter";
    for cg in [
        "",
        own,
        "/kubepods/pod2/c2",
        "/init.scope",
        "/kubepods/pod1/exporter/sub",
    ] {
        let d = cgroupfs.join(cg.trim_start_matches('/'));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("cgroup.procs"), "").expect("write");
    }
    std::fs::write(cgroupfs.join("cgroup.controllers"), "cpu memory io pids\n").expect("write");
    std::fs::write(
        cgroupfs
            .join(own.trim_start_matches('/'))
            .join("cgroup.procs"),
        "4242\n",
    )
    .expect("write");
    std::fs::create_dir(&procfs).expect("mkdir");
    // Processes as the exporter sees them from inside its namespace.
    for (pid, view) in [
        ("4242", "/"),
        ("5000", "/../../pod2/c2"),
        ("6000", "/../../../init.scope"),
        ("7000", "/sub"),
    ] {
        let p = procfs.join(pid);
        let status = Command::new("cp")
            .arg("-a")
            .arg(fixture().join("2"))
            .arg(&p)
            .status()
            .expect("cp runs");
        assert!(status.success());
        std::fs::write(p.join("cgroup"), format!("0::{view}\n")).expect("write");
    }
    std::os::unix::fs::symlink("4242", procfs.join("self")).expect("symlink");
    std::fs::copy(fixture().join("uptime"), procfs.join("uptime")).expect("copy");

    const HOST_PATHS: [&str; 4] = [
        "/init.scope",
        "/kubepods/pod1/exporter",
        "/kubepods/pod1/exporter/sub",
        "/kubepods/pod2/c2",
    ];
    let cgroups_of = |snap: &cgroup_psi_exporter::namespaces::NamespaceSnapshot| -> Vec<String> {
        snap.cgroups
            .keys()
            .map(|c| c.as_str().to_string())
            .collect()
    };
    let layout = Arc::new(Layout::from_files(&cgroupfs).expect("v2 layout"));
    let snap = NamespaceCollector::new(procfs.clone())
        .with_cgroup_layout(layout.clone())
        .scan();
    assert_eq!(cgroups_of(&snap), HOST_PATHS);

    // Without the layout the paths stay as the kernel rendered them.
    let snap = NamespaceCollector::new(procfs.clone()).scan();
    assert!(snap.cgroups.keys().any(|c| c.as_str().starts_with("/..")));

    // In the host's namespace (self reads its real path) nothing changes.
    std::fs::write(procfs.join("4242/cgroup"), format!("0::{own}\n")).expect("write");
    std::fs::write(procfs.join("5000/cgroup"), "0::/kubepods/pod2/c2\n").expect("write");
    std::fs::write(procfs.join("6000/cgroup"), "0::/init.scope\n").expect("write");
    std::fs::write(procfs.join("7000/cgroup"), format!("0::{own}/sub\n")).expect("write");
    let snap = NamespaceCollector::new(procfs)
        .with_cgroup_layout(layout)
        .scan();
    assert_eq!(cgroups_of(&snap), HOST_PATHS);
}
