//! Fake cgroupfs and procfs trees for every layout, built in a temp dir
//! from real file contents (v1 and hybrid files copied from this project's
//! hybrid development machine, Linux 6.18; v2 files in the shapes of
//! cgroup-v2.rst as a systemd v2 host prints them).
//!
//! Layouts: `v2`, `v1`, `hybrid`, `systemd` (v2 with systemd's slices and
//! scopes), `kubernetes` (v2, kubelet's systemd driver, containerd).

use std::fs;
use std::path::{Path, PathBuf};

pub const POD_UID: &str = "0d4e1f2a-3b5c-4d6e-8f90-a1b2c3d4e5f6";
pub const POD_UID_SYSTEMD: &str = "0d4e1f2a_3b5c_4d6e_8f90_a1b2c3d4e5f6";
pub const CONTAINER_ID: &str = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";

pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn cgroupfs(&self) -> PathBuf {
        self.dir.path().join("cgroup")
    }
    pub fn procfs(&self) -> PathBuf {
        self.dir.path().join("proc")
    }
    pub fn file(&self, rel: &str, contents: &str) {
        write(&self.cgroupfs().join(rel), contents);
    }
}

pub fn write(p: &Path, contents: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(p, contents).expect("write fixture");
}

fn new_tree() -> Tree {
    let t = Tree {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let p = t.procfs();
    write(&p.join("pressure/cpu"), "some avg10=0.00 avg60=0.43 avg300=0.54 total=19419991\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    write(&p.join("pressure/memory"), "some avg10=1.25 avg60=0.40 avg300=0.10 total=3180044\nfull avg10=0.75 avg60=0.21 avg300=0.05 total=1810021\n");
    write(&p.join("pressure/io"), "some avg10=0.03 avg60=0.15 avg300=0.25 total=9891610\nfull avg10=0.01 avg60=0.12 avg300=0.24 total=9326581\n");
    write(
        &p.join("vmstat"),
        "nr_free_pages 123456\noom_kill 3\npgfault 99\n",
    );
    write(&p.join("partitions"), "major minor  #blocks  name\n\n 254        0  268435456 vda\n   8        0   20971520 sda\n   8        1   20970496 sda1\n");
    // The host's IO for cgroup="/" on v1 and hybrid trees (v2 has io.stat
    // at the root): sda whole (sda1 is its partition), vda idle.
    write(
        &p.join("diskstats"),
        " 254       0 vda 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n   8       0 sda 1200 30 9600 500 340 12 4800 900 0 1000 1400 0 0 0 0 0 0\n   8       1 sda1 1100 30 8800 480 300 12 4000 850 0 950 1330 0 0 0 0 0 0\n",
    );
    t
}

/// A v2 cgroup directory with every interface file, values derived from `n`
/// so each cgroup's series differ.
fn v2_cgroup(dir: &Path, n: u64, limits: bool) {
    let w = |f: &str, c: &str| write(&dir.join(f), c);
    w("cgroup.procs", "");
    w("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
    w("cgroup.events", &format!("populated {}\nfrozen 0\n", n % 2));
    w("cpu.stat", &format!(
        "usage_usec {}\nuser_usec {}\nsystem_usec {}\ncore_sched.force_idle_usec 0\nnr_periods {}\nnr_throttled {}\nthrottled_usec {}\nnr_bursts 0\nburst_usec 0\n",
        1_000_000 * n + 123, 700_000 * n, 300_000 * n + 123, 100 * n, 7 * n, 25_000 * n
    ));
    w("cpu.weight", &format!("{}\n", 100 * n));
    w(
        "cpu.max",
        if limits {
            "150000 100000\n"
        } else {
            "max 100000\n"
        },
    );
    w("cpuset.cpus.effective", "0-3,6\n");
    w("memory.current", &format!("{}\n", 50_000_000 * n));
    w("memory.peak", &format!("{}\n", 60_000_000 * n));
    w("memory.max", if limits { "268435456\n" } else { "max\n" });
    w("memory.high", if limits { "201326592\n" } else { "max\n" });
    w("memory.low", "0\n");
    w("memory.min", "0\n");
    w("memory.swap.current", "0\n");
    w("memory.swap.max", "max\n");
    w("memory.stat", &format!(
        "anon {a}\nfile {f}\nkernel 1638400\nkernel_stack 98304\npagetables 204800\nsec_pagetables 0\npercpu 2400\nsock 0\nvmalloc 0\nshmem 4096\nzswap 0\nzswapped 0\nfile_mapped 1048576\nfile_dirty 8192\nfile_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon {a}\nactive_anon 4096\ninactive_file {i}\nactive_file {af}\nunevictable 0\nslab_reclaimable 900000\nslab_unreclaimable 300000\nslab 1200000\nworkingset_refault_anon 0\nworkingset_refault_file 12\npgfault 4567\npgmajfault 3\npgscan 0\npgsteal 0\nthp_fault_alloc 0\n",
        a = 20_000_000 * n, f = 28_000_000 * n, i = 10_000_000 * n, af = 18_000_000 * n
    ));
    w(
        "memory.events",
        &format!(
            "low 0\nhigh {}\nmax {}\noom {}\noom_kill {}\noom_group_kill 0\n",
            3 * n,
            n,
            n / 2,
            n / 2
        ),
    );
    w(
        "io.stat",
        &format!(
            "8:0 rbytes={} wbytes={} rios={} wios={} dbytes=0 dios=0\n7:0 \n",
            4096 * n,
            8192 * n,
            10 * n,
            20 * n
        ),
    );
    w("io.weight", "default 100\n");
    w(
        "io.max",
        if limits {
            "8:0 rbps=2097152 wbps=max riops=max wiops=120\n"
        } else {
            ""
        },
    );
    w("pids.current", &format!("{}\n", 3 * n));
    w("pids.max", if limits { "512\n" } else { "max\n" });
    w("hugetlb.2MB.current", "0\n");
    w("hugetlb.2MB.max", "max\n");
    w("cpu.pressure", &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n", 1000 * n, 400 * n));
    w("memory.pressure", &format!("some avg10=0.50 avg60=0.10 avg300=0.02 total={}\nfull avg10=0.30 avg60=0.05 avg300=0.01 total={}\n", 2000 * n, 900 * n));
    w("io.pressure", &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n", 300 * n, 200 * n));
}

fn v2_root(root: &Path) {
    write(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    write(
        &root.join("cgroup.subtree_control"),
        "cpuset cpu io memory pids\n",
    );
    write(&root.join("cgroup.procs"), "1\n");
    write(&root.join("cpu.stat"), "usage_usec 322137034\nuser_usec 233417489\nsystem_usec 88719545\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
    write(
        &root.join("memory.stat"),
        "anon 123456789\nfile 987654321\ninactive_file 400000000\n",
    );
    write(
        &root.join("io.stat"),
        "8:0 rbytes=1000 wbytes=2000 rios=3 wios=4 dbytes=0 dios=0\n",
    );
    // Kernel quirk: the v2 root has no cpu.max/memory.current, and here no
    // pressure files either, so the host's pressure comes from /proc.
}

pub fn v2() -> Tree {
    let t = new_tree();
    let root = t.cgroupfs();
    v2_root(&root);
    v2_cgroup(&root.join("web"), 1, true);
    v2_cgroup(&root.join("web/worker"), 2, false);
    v2_cgroup(&root.join("batch"), 3, false);
    t
}

/// A v2 tree of `n` sibling cgroups under `/many`, for fd-limit tests.
pub fn v2_many(n: u64) -> Tree {
    let t = new_tree();
    let root = t.cgroupfs();
    v2_root(&root);
    v2_cgroup(&root.join("many"), 1, false);
    for i in 0..n {
        v2_cgroup(&root.join(format!("many/c{i}")), i + 1, i % 2 == 0);
    }
    t
}

pub fn systemd() -> Tree {
    let t = new_tree();
    let root = t.cgroupfs();
    v2_root(&root);
    v2_cgroup(&root.join("init.scope"), 1, false);
    v2_cgroup(&root.join("system.slice"), 2, false);
    v2_cgroup(&root.join("system.slice/nginx.service"), 3, true);
    v2_cgroup(
        &root.join("system.slice/systemd-journald.service"),
        4,
        false,
    );
    v2_cgroup(&root.join("user.slice"), 5, false);
    v2_cgroup(&root.join("user.slice/user-1000.slice"), 6, false);
    v2_cgroup(
        &root.join("user.slice/user-1000.slice/session-4.scope"),
        7,
        false,
    );
    t
}

pub fn kubernetes() -> Tree {
    let t = new_tree();
    let root = t.cgroupfs();
    v2_root(&root);
    let kp = root.join("kubepods.slice");
    v2_cgroup(&kp, 1, false);
    v2_cgroup(&kp.join("kubepods-burstable.slice"), 2, false);
    let pod = kp.join(format!(
        "kubepods-burstable.slice/kubepods-burstable-pod{POD_UID_SYSTEMD}.slice"
    ));
    v2_cgroup(&pod, 3, false);
    v2_cgroup(
        &pod.join(format!("cri-containerd-{CONTAINER_ID}.scope")),
        4,
        true,
    );
    let gpod = kp.join(format!("kubepods-pod{POD_UID_SYSTEMD}.slice"));
    v2_cgroup(&gpod, 5, true);
    v2_cgroup(&root.join("system.slice/kubelet.service"), 6, false);
    t
}

/// v1 files of one cgroup in each controller hierarchy under `root`.
fn v1_cgroup(root: &Path, rel: &str, n: u64, limits: bool) {
    let d = |c: &str| root.join(c).join(rel);
    let w = |c: &str, f: &str, s: &str| write(&d(c).join(f), s);
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "freezer",
    ] {
        w(c, "cgroup.procs", "");
    }
    w(
        "cpuacct",
        "cpuacct.usage",
        &format!("{}\n", 1_000_000_000 * n + 7),
    );
    w(
        "cpuacct",
        "cpuacct.usage_user",
        &format!("{}\n", 700_000_000 * n),
    );
    w(
        "cpuacct",
        "cpuacct.usage_sys",
        &format!("{}\n", 300_000_000 * n + 7),
    );
    w(
        "cpuacct",
        "cpuacct.stat",
        &format!("user {}\nsystem {}\n", 70 * n, 30 * n),
    );
    w(
        "cpu",
        "cpu.stat",
        &format!(
            "nr_periods {}\nnr_throttled {}\nthrottled_time {}\nnr_bursts 0\nburst_time 0\n",
            100 * n,
            7 * n,
            25_000_000 * n
        ),
    );
    w(
        "cpu",
        "cpu.cfs_quota_us",
        if limits { "50000\n" } else { "-1\n" },
    );
    w("cpu", "cpu.cfs_period_us", "100000\n");
    w("cpu", "cpu.shares", &format!("{}\n", 1024 * n));
    w("cpuset", "cpuset.cpus", "0-1\n");
    w("cpuset", "cpuset.effective_cpus", "0-1\n");
    w(
        "memory",
        "memory.usage_in_bytes",
        &format!("{}\n", 40_000_000 * n),
    );
    w(
        "memory",
        "memory.max_usage_in_bytes",
        &format!("{}\n", 45_000_000 * n),
    );
    w(
        "memory",
        "memory.limit_in_bytes",
        if limits {
            "134217728\n"
        } else {
            "9223372036854771712\n"
        },
    );
    w(
        "memory",
        "memory.soft_limit_in_bytes",
        "9223372036854771712\n",
    );
    w(
        "memory",
        "memory.memsw.usage_in_bytes",
        &format!("{}\n", 40_000_000 * n),
    );
    w(
        "memory",
        "memory.memsw.limit_in_bytes",
        "9223372036854771712\n",
    );
    w("memory", "memory.failcnt", &format!("{}\n", n));
    w(
        "memory",
        "memory.oom_control",
        &format!("oom_kill_disable 0\nunder_oom 0\noom_kill {}\n", n / 2),
    );
    w("memory", "memory.stat", &format!(
        "cache 9502720\nrss 7770112\nrss_huge 0\nshmem 9084928\nmapped_file 7573504\ndirty 36864\nwriteback 0\nswap 0\npgpgin 35158\npgpgout 30941\npgfault 37690\npgmajfault 0\ninactive_anon 0\nactive_anon 1531904\ninactive_file 12288\nactive_file 405504\nunevictable 15323136\nhierarchical_memory_limit 9223372036854771712\nhierarchical_memsw_limit 9223372036854771712\ntotal_cache {c}\ntotal_rss {r}\ntotal_rss_huge 0\ntotal_shmem 9084928\ntotal_mapped_file 11010048\ntotal_dirty 241664\ntotal_writeback 0\ntotal_swap 0\ntotal_pgpgin 10599052\ntotal_pgpgout 10331034\ntotal_pgfault 11618453\ntotal_pgmajfault 2753\ntotal_inactive_anon 7516160\ntotal_active_anon 1585152\ntotal_inactive_file {i}\ntotal_active_file 885280\ntotal_unevictable 15323136\n",
        c = 20_000_000 * n, r = 15_000_000 * n, i = 5_000_000 * n
    ));
    w("blkio", "blkio.throttle.io_service_bytes_recursive", &format!("8:0 Read {}\n8:0 Write {}\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total {}\nTotal {}\n", 4096 * n, 8192 * n, 12288 * n, 12288 * n));
    w("blkio", "blkio.throttle.io_serviced_recursive", &format!("8:0 Read {}\n8:0 Write {}\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total {}\nTotal {}\n", 10 * n, 20 * n, 30 * n, 30 * n));
    w("blkio", "blkio.weight", "500\n");
    w(
        "blkio",
        "blkio.throttle.read_bps_device",
        if limits { "8:0 1048576\n" } else { "" },
    );
    w("blkio", "blkio.throttle.write_bps_device", "");
    w("blkio", "blkio.throttle.read_iops_device", "");
    w(
        "blkio",
        "blkio.throttle.write_iops_device",
        if limits { "8:0 100\n" } else { "" },
    );
    w("pids", "pids.current", &format!("{}\n", 2 * n));
    w("pids", "pids.max", if limits { "100\n" } else { "max\n" });
    w("freezer", "freezer.state", "THAWED\n");
}

fn v1_tree(with_unified: bool) -> Tree {
    let t = new_tree();
    let root = t.cgroupfs();
    v1_cgroup(&root, "", 100, false);
    v1_cgroup(&root, "docker", 1, false);
    v1_cgroup(&root, &format!("docker/{CONTAINER_ID}"), 2, true);
    if with_unified {
        let u = root.join("unified");
        write(&u.join("cgroup.controllers"), "");
        write(&u.join("cgroup.procs"), "");
        write(
            &u.join("cpu.stat"),
            "usage_usec 322137034\nuser_usec 233417489\nsystem_usec 88719545\nnice_usec 0\n",
        );
        write(&u.join("cpu.pressure"), "some avg10=0.00 avg60=0.43 avg300=0.54 total=19419991\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        for (rel, n) in [("docker", 1u64), (&format!("docker/{CONTAINER_ID}"), 2)] {
            let d = u.join(rel);
            write(&d.join("cgroup.procs"), "");
            // Hybrid: no controller is enabled in unified/.
            write(&d.join("cgroup.controllers"), "");
            write(&d.join("cgroup.events"), "populated 1\nfrozen 0\n");
            // Hybrid quirk: cpu.stat in unified/ has usage only (no cpu
            // controller there); throttling comes from v1 cpu/.
            write(
                &d.join("cpu.stat"),
                &format!(
                    "usage_usec {}\nuser_usec {}\nsystem_usec {}\nnice_usec 0\n",
                    999_000 * n,
                    600_000 * n,
                    399_000 * n
                ),
            );
            write(&d.join("cpu.pressure"), &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n", 1000 * n, 400 * n));
            write(&d.join("memory.pressure"), &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n", 2000 * n, 900 * n));
            write(&d.join("io.pressure"), &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={}\n", 300 * n, 200 * n));
        }
    }
    t
}

pub fn v1() -> Tree {
    v1_tree(false)
}

pub fn hybrid() -> Tree {
    v1_tree(true)
}

pub fn by_name(name: &str) -> Tree {
    match name {
        "v2" => v2(),
        "v1" => v1(),
        "hybrid" => hybrid(),
        "systemd" => systemd(),
        "kubernetes" => kubernetes(),
        "v2-linux-6.1" => captured("linux-6.1-v2"),
        other => panic!("no fixture {other}"),
    }
}

/// A tree of real kernel files captured by `scripts/vm/run --capture` into
/// `tests/data/kernel-files/<dir>/{cgroup,proc}` (pure v2, Linux 6.1 in the
/// test VM), copied unchanged except `cgroup.procs`/`cgroup.threads`,
/// emptied: the fake procfs has no process directories for their PIDs.
pub fn captured(dir: &str) -> Tree {
    let t = Tree {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kernel-files")
        .join(dir);
    copy_tree(&src.join("cgroup"), &t.cgroupfs());
    copy_tree(&src.join("proc"), &t.procfs());
    t
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{}: {e}", from.display()))
        .flatten()
    {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            copy_tree(&p, &to.join(&name));
        } else if name == "cgroup.procs" || name == "cgroup.threads" {
            write(&to.join(&name), "");
        } else {
            fs::copy(&p, to.join(&name)).expect("copy kernel file");
        }
    }
}
