//! Pure cgroup v2 on a real kernel: the tests `scripts/vm/run` runs inside
//! the VM it boots (Debian's stock kernel, `cgroup_no_v1=all`, root with
//! `CAP_SYS_RESOURCE`, a virtio scratch disk at /dev/vda). On any other
//! host they print `skipped:` and pass, unless `CGPE_REQUIRE_V2=1` (set by
//! the VM stage) makes that a failure.
//!
//! Every expected value here is computed from the kernel's own files with
//! the v2 column of docs/metrics.md, written out independently of the
//! exporter's parsers.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgroup_psi_exporter::config::{Config, PsiKind};
use cgroup_psi_exporter::psi::trigger::{Trigger, TriggerError, TriggerEvent, TriggerSpec};
use cgroup_psi_exporter::psi::{self, PsiMetrics};
use common::capture::Capture;
use common::{ExporterProcess, Exposition, KernelCgroup};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

macro_rules! require_v2 {
    () => {
        if let Some(r) = common::v2_unavailable() {
            return common::skip_v2(&r);
        }
    };
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn write(p: &Path, v: &str) {
    std::fs::write(p, v).unwrap_or_else(|e| panic!("write {v:?} to {}: {e}", p.display()));
}

/// `key value` lines (cpu.stat, memory.stat, memory.events, ...).
fn flat_keyed(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A single number, or `None` for `max`.
fn single(text: &str) -> Option<f64> {
    match text.trim() {
        "max" => None,
        v => Some(v.parse().unwrap_or_else(|_| panic!("not a number: {v:?}"))),
    }
}

/// `some ... total=N` / `full ... total=N` in seconds.
fn psi_total(text: &str, kind: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(kind))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse::<f64>()
        .ok()
        .map(|us| us / 1e6)
}

/// How many CPUs a cpuset list (`0-1,3`) names.
fn cpu_count(list: &str) -> f64 {
    list.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => b.parse::<u32>().expect("cpu") - a.parse::<u32>().expect("cpu") + 1,
            None => 1,
        })
        .sum::<u32>() as f64
}

/// `major:minor` -> device name, from /proc/partitions.
fn partitions() -> BTreeMap<String, String> {
    read(Path::new("/proc/partitions"))
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                format!("{}:{}", f.first()?, f.get(1)?),
                f.get(3)?.to_string(),
            ))
        })
        .collect()
}

type Key = (String, BTreeMap<String, String>);

/// What the exporter must say about the cgroup at `dir`, from the kernel's
/// files: `Some(v)` for a series that must equal `v`, `None` for a series
/// that must be absent (the kernel says `max`).
fn expected(dir: &Path, cgroup: &str) -> BTreeMap<Key, Option<f64>> {
    let mut out: BTreeMap<Key, Option<f64>> = BTreeMap::new();
    let mut put = |name: &str, extra: &[(&str, &str)], v: Option<f64>| {
        let mut labels = BTreeMap::new();
        labels.insert("cgroup".to_string(), cgroup.to_string());
        for (k, val) in extra {
            labels.insert(k.to_string(), val.to_string());
        }
        out.insert((name.to_string(), labels), v);
    };
    let f = |n: &str| dir.join(n);
    let has = |n: &str| dir.join(n).exists();

    if has("cpu.stat") {
        let s = flat_keyed(&read(&f("cpu.stat")));
        put(
            "cgroup_cpu_usage_seconds_total",
            &[],
            Some(s["usage_usec"] / 1e6),
        );
        put(
            "cgroup_cpu_user_seconds_total",
            &[],
            Some(s["user_usec"] / 1e6),
        );
        put(
            "cgroup_cpu_system_seconds_total",
            &[],
            Some(s["system_usec"] / 1e6),
        );
        if let Some(v) = s.get("nr_periods") {
            put("cgroup_cpu_periods_total", &[], Some(*v));
            put(
                "cgroup_cpu_throttled_periods_total",
                &[],
                Some(s["nr_throttled"]),
            );
            put(
                "cgroup_cpu_throttled_seconds_total",
                &[],
                Some(s["throttled_usec"] / 1e6),
            );
        }
    }
    if has("cpu.max") {
        let t = read(&f("cpu.max"));
        let (q, p) = t.trim().split_once(' ').expect("cpu.max");
        let limit = (q != "max")
            .then(|| q.parse::<f64>().expect("quota") / p.parse::<f64>().expect("period"));
        put("cgroup_cpu_limit_cores", &[], limit);
    }
    if has("cpu.weight") {
        put("cgroup_cpu_weight", &[], single(&read(&f("cpu.weight"))));
    }
    if has("cpuset.cpus.effective") {
        put(
            "cgroup_cpuset_cpus",
            &[],
            Some(cpu_count(&read(&f("cpuset.cpus.effective")))),
        );
    }
    if has("memory.current") {
        let cur = single(&read(&f("memory.current"))).expect("memory.current");
        let stat = flat_keyed(&read(&f("memory.stat")));
        put("cgroup_memory_usage_bytes", &[], Some(cur));
        put(
            "cgroup_memory_working_set_bytes",
            &[],
            Some((cur - stat["inactive_file"]).max(0.0)),
        );
        put(
            "cgroup_memory_peak_bytes",
            &[],
            single(&read(&f("memory.peak"))),
        );
        put(
            "cgroup_memory_limit_bytes",
            &[],
            single(&read(&f("memory.max"))),
        );
        put(
            "cgroup_memory_high_bytes",
            &[],
            single(&read(&f("memory.high"))),
        );
        put(
            "cgroup_memory_low_bytes",
            &[],
            single(&read(&f("memory.low"))),
        );
        put(
            "cgroup_memory_min_bytes",
            &[],
            single(&read(&f("memory.min"))),
        );
        if has("memory.swap.current") {
            put(
                "cgroup_memory_swap_usage_bytes",
                &[],
                single(&read(&f("memory.swap.current"))),
            );
            put(
                "cgroup_memory_swap_limit_bytes",
                &[],
                single(&read(&f("memory.swap.max"))),
            );
        }
        // Byte-valued memory.stat keys every v2 kernel has; the exporter
        // may export more (checked against the file below, not here).
        for k in [
            "anon",
            "file",
            "kernel_stack",
            "pagetables",
            "sock",
            "shmem",
            "file_mapped",
            "file_dirty",
            "file_writeback",
            "inactive_anon",
            "active_anon",
            "inactive_file",
            "active_file",
            "unevictable",
            "slab_reclaimable",
            "slab_unreclaimable",
            "slab",
        ] {
            put("cgroup_memory_stat_bytes", &[("stat", k)], Some(stat[k]));
        }
        for (k, v) in flat_keyed(&read(&f("memory.events"))) {
            put("cgroup_memory_events_total", &[("event", &k)], Some(v));
        }
    }
    let parts = partitions();
    if has("io.stat") {
        for line in read(&f("io.stat")).lines() {
            let mut it = line.split_whitespace();
            let dev = it.next().expect("device");
            let name = parts.get(dev).cloned().unwrap_or_else(|| dev.to_string());
            let kv: BTreeMap<&str, f64> = it
                .filter_map(|x| {
                    let (k, v) = x.split_once('=')?;
                    Some((k, v.parse().ok()?))
                })
                .collect();
            for (key, fam) in [
                ("rbytes", "cgroup_io_read_bytes_total"),
                ("wbytes", "cgroup_io_write_bytes_total"),
                ("rios", "cgroup_io_reads_total"),
                ("wios", "cgroup_io_writes_total"),
            ] {
                put(fam, &[("device", &name)], kv.get(key).copied());
            }
        }
    }
    if has("io.max") {
        for line in read(&f("io.max")).lines() {
            let mut it = line.split_whitespace();
            let dev = it.next().expect("device");
            let name = parts.get(dev).cloned().unwrap_or_else(|| dev.to_string());
            for x in it {
                let (k, v) = x.split_once('=').expect("io.max key=value");
                let fam = match k {
                    "rbps" => "cgroup_io_limit_read_bytes_per_second",
                    "wbps" => "cgroup_io_limit_write_bytes_per_second",
                    "riops" => "cgroup_io_limit_read_ops_per_second",
                    "wiops" => "cgroup_io_limit_write_ops_per_second",
                    _ => continue,
                };
                put(fam, &[("device", &name)], single(v));
            }
        }
    }
    if has("io.weight") {
        let w = read(&f("io.weight"));
        let d = w
            .lines()
            .find_map(|l| l.strip_prefix("default "))
            .expect("io.weight default");
        put("cgroup_io_weight", &[], single(d));
    }
    if has("pids.current") {
        put(
            "cgroup_pids_current",
            &[],
            single(&read(&f("pids.current"))),
        );
        put("cgroup_pids_limit", &[], single(&read(&f("pids.max"))));
    }
    for r in ["cpu", "memory", "io"] {
        let p = f(&format!("{r}.pressure"));
        if p.exists() {
            let t = read(&p);
            put(
                &format!("cgroup_pressure_{r}_waiting_seconds_total"),
                &[],
                psi_total(&t, "some"),
            );
            if let Some(full) = psi_total(&t, "full") {
                put(
                    &format!("cgroup_pressure_{r}_stalled_seconds_total"),
                    &[],
                    Some(full),
                );
            }
        }
    }
    let ev = flat_keyed(&read(&f("cgroup.events")));
    put("cgroup_populated", &[], Some(ev["populated"]));
    put("cgroup_frozen", &[], Some(ev["frozen"]));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            // hugetlb.<size>.current; not the reservation files
            // (hugetlb.<size>.rsvd.current), which are not exported.
            if let Some(size) = n
                .strip_prefix("hugetlb.")
                .and_then(|s| s.strip_suffix(".current"))
                .filter(|s| !s.contains('.'))
            {
                put(
                    "cgroup_hugetlb_usage_bytes",
                    &[("pagesize", size)],
                    single(&read(&e.path())),
                );
                put(
                    "cgroup_hugetlb_limit_bytes",
                    &[("pagesize", size)],
                    single(&read(&f(&format!("hugetlb.{size}.max")))),
                );
            }
        }
    }
    out
}

/// Compares a scrape with the kernel's files for `cgroup` (frozen, so the
/// files hold still): every expected series equal, every `max` absent, and
/// every exported `memory.stat` key equal to the file's. Returns how many
/// series were compared.
fn assert_kernel_truth(m: &Exposition, dir: &Path, cgroup: &str) -> usize {
    let before = expected(dir, cgroup);
    let stat_file = dir
        .join("memory.stat")
        .exists()
        .then(|| flat_keyed(&read(&dir.join("memory.stat"))));
    let after = expected(dir, cgroup);
    let mut problems = Vec::new();
    let mut compared = 0;
    for ((name, labels), want) in &before {
        let got = m
            .samples
            .iter()
            .find(|s| &s.name == name && &s.labels == labels)
            .map(|s| s.value);
        let moved = after.get(&(name.clone(), labels.clone())) != Some(want);
        match (want, got) {
            (None, None) => compared += 1,
            (Some(w), Some(g)) if (w - g).abs() <= 1e-9 * w.abs().max(1.0) => compared += 1,
            (Some(w), Some(g)) if moved => {
                // A value the frozen cgroup still moved (kernel-side
                // accounting, not its tasks): bracketed instead.
                let a = after[&(name.clone(), labels.clone())].unwrap_or(f64::NAN);
                if (w.min(a)..=w.max(a)).contains(&g) {
                    compared += 1;
                } else {
                    problems.push(format!("{name}{labels:?}: exported {g}, kernel {w} .. {a}"));
                }
            }
            (w, g) => problems.push(format!(
                "{name}{labels:?}: exported {g:?}, kernel says {w:?}"
            )),
        }
    }
    // Every memory.stat key the exporter exports is the file's, in bytes.
    for s in m.all("cgroup_memory_stat_bytes") {
        if s.labels.get("cgroup").map(String::as_str) != Some(cgroup) {
            continue;
        }
        let k = &s.labels["stat"];
        match stat_file.as_ref().and_then(|f| f.get(k)) {
            Some(v) if *v == s.value => compared += 1,
            other => problems.push(format!(
                "memory.stat {k}: exported {}, file {other:?}",
                s.value
            )),
        }
    }
    // Nothing exported for the cgroup that the kernel has no file for.
    let known: std::collections::BTreeSet<&str> = before.keys().map(|(n, _)| n.as_str()).collect();
    for s in &m.samples {
        if s.labels.get("cgroup").map(String::as_str) == Some(cgroup)
            && s.name.starts_with("cgroup_")
            && !known.contains(s.name.as_str())
            && ![
                "cgroup_memory_stat_bytes",
                "cgroup_processes",
                "cgroup_namespace_info",
                "cgroup_host_namespace",
                "cgroup_host_root_processes",
            ]
            .contains(&s.name.as_str())
        {
            println!(
                "not compared (no rule in this test): {} {:?}",
                s.name, s.labels
            );
        }
    }
    assert!(
        problems.is_empty(),
        "exported != kernel for {cgroup}:\n{}",
        problems.join("\n")
    );
    compared
}

/// `major:minor` of the scratch disk, from sysfs.
fn scratch_disk() -> String {
    read(Path::new("/sys/block/vda/dev")).trim().to_string()
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn freeze(dir: &Path, on: bool) {
    write(&dir.join("cgroup.freeze"), if on { "1" } else { "0" });
    let want = if on { "frozen 1" } else { "frozen 0" };
    wait_until("cgroup.events frozen", Duration::from_secs(30), || {
        read(&dir.join("cgroup.events")).contains(want)
    });
}

const HOG: &str = "python3 -c 'import time\nb = bytearray(48 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nwhile True:\n    x = sum(range(20000))\n'";

#[test]
fn every_series_equals_the_kernel_file_and_max_is_absent() {
    require_v2!();
    let disk = scratch_disk();
    let cg = KernelCgroup::new("truth");
    let dir = cg.dirs[0].clone();
    write(&dir.join("cpu.max"), "50000 100000");
    write(&dir.join("memory.max"), "268435456");
    write(&dir.join("memory.high"), "209715200");
    write(&dir.join("memory.low"), "16777216");
    write(&dir.join("pids.max"), "64");
    write(
        &dir.join("io.max"),
        &format!("{disk} wbps=8388608 riops=2000"),
    );
    // A child with every limit left at `max`.
    let open = dir.join("unlimited");
    std::fs::create_dir(&open).expect("mkdir child");
    write(
        &dir.join("cgroup.subtree_control"),
        "+cpu +memory +io +pids",
    );
    // Processes live in the leaf: v2 has no internal processes below the
    // root once subtree_control is set.
    let leaf = dir.join("work");
    let mut w = KernelCgroup::at(&format!("{}/work", cg.name));
    w.spawn(HOG);
    w.spawn(
        "while :; do dd if=/dev/vda of=/dev/null bs=64k count=64 iflag=direct status=none; dd if=/dev/zero of=/dev/vda bs=64k count=32 oflag=direct seek=2000 status=none; done");
    w.spawn("sleep 600");
    wait_until("48 MiB charged", Duration::from_secs(90), || {
        single(&read(&dir.join("memory.current"))).unwrap_or(0.0) >= (48 << 20) as f64
    });
    // Throttling and IO under the rules, then hold everything still.
    let major_minor = disk.clone();
    wait_until(
        "io.stat has the scratch disk",
        Duration::from_secs(30),
        || read(&dir.join("io.stat")).contains(&major_minor),
    );
    std::thread::sleep(Duration::from_secs(2));
    freeze(&dir, true);

    let ex = ExporterProcess::start(&[]);
    let m = ex.scrape();
    let path = cg.path();
    let n = assert_kernel_truth(&m, &dir, &path);
    let n2 = assert_kernel_truth(&m, &leaf, &format!("{path}/work"));
    let n3 = assert_kernel_truth(&m, &open, &format!("{path}/unlimited"));
    println!("compared {n} + {n2} + {n3} series with the kernel's files");

    let l = [("cgroup", path.as_str())];
    // The workload was real, and the limits are what was written.
    assert_eq!(m.get("cgroup_cpu_limit_cores", &l), Some(0.5));
    assert!(
        m.get("cgroup_cpu_throttled_periods_total", &l)
            .unwrap_or(0.0)
            > 0.0,
        "cpu.max throttled the hog"
    );
    assert_eq!(m.get("cgroup_memory_limit_bytes", &l), Some(268435456.0));
    assert_eq!(m.get("cgroup_memory_high_bytes", &l), Some(209715200.0));
    assert_eq!(m.get("cgroup_memory_low_bytes", &l), Some(16777216.0));
    assert_eq!(m.get("cgroup_pids_limit", &l), Some(64.0));
    assert_eq!(m.get("cgroup_frozen", &l), Some(1.0));
    let vda = [("cgroup", path.as_str()), ("device", "vda")];
    assert_eq!(
        m.get("cgroup_io_limit_write_bytes_per_second", &vda),
        Some(8388608.0)
    );
    assert_eq!(
        m.get("cgroup_io_limit_read_ops_per_second", &vda),
        Some(2000.0)
    );
    assert_eq!(
        m.get("cgroup_io_limit_read_bytes_per_second", &vda),
        None,
        "rbps=max is absent"
    );
    assert!(
        m.get("cgroup_io_read_bytes_total", &vda).unwrap_or(0.0) > 0.0,
        "direct reads counted"
    );
    assert!(
        m.get("cgroup_io_write_bytes_total", &vda).unwrap_or(0.0) > 0.0,
        "direct writes counted"
    );
    let u = format!("{path}/unlimited");
    let ul = [("cgroup", u.as_str())];
    for fam in [
        "cgroup_cpu_limit_cores",
        "cgroup_memory_limit_bytes",
        "cgroup_memory_high_bytes",
        "cgroup_pids_limit",
    ] {
        assert_eq!(
            m.get(fam, &ul),
            None,
            "{fam} is absent where the kernel says max"
        );
    }
    assert!(
        m.get("cgroup_memory_usage_bytes", &ul).is_some(),
        "the unlimited child is exported"
    );
    freeze(&dir, false);
    drop(w);
}

#[test]
fn nested_threaded_and_killed_cgroups_are_discovered_as_the_kernel_has_them() {
    require_v2!();
    let ex = ExporterProcess::start(&[]);
    let has = |path: &str| ex.scrape().cgroups().contains(path);
    // Within 2 s, not in the very next scrape: that stricter check is
    // made_or_removed_right_before_a_scrape_is_in_it_or_gone_every_time
    // (scripts/vm/known-bugs until issue 11's fix is in).
    let soon = |what: &str, ok: &dyn Fn(&Exposition) -> bool| {
        let t0 = Instant::now();
        while !ok(&ex.scrape()) {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "{what}: not within 2 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A nested tree made at once is discovered whole; a removed leaf goes
    // while its parents stay.
    let top = KernelCgroup::new("nest");
    let base = top.dirs[0].clone();
    let deep = base.join("a/b/c");
    std::fs::create_dir_all(&deep).expect("mkdir a/b/c");
    let all: Vec<String> = ["", "/a", "/a/b", "/a/b/c"]
        .iter()
        .map(|rel| format!("{}{rel}", top.path()))
        .collect();
    soon("the nested tree", &|m| {
        all.iter().all(|p| m.cgroups().contains(p))
    });
    std::fs::remove_dir(&deep).expect("rmdir c");
    soon("the removed leaf gone", &|m| !m.cgroups().contains(&all[3]));
    assert!(has(&all[2]), "its parent stays");

    // A threaded subtree: the parent turns "domain threaded", the threaded
    // child has only threaded controllers (cpu, pids, cpuset), and one
    // thread of a process moved there by TID is charged to it.
    let tp = KernelCgroup::new("threads");
    let tdir = tp.dirs[0].clone();
    write(&tdir.join("cgroup.subtree_control"), "+cpu +pids");
    let tchild = tdir.join("worker");
    std::fs::create_dir(&tchild).expect("mkdir worker");
    write(&tchild.join("cgroup.type"), "threaded");
    assert_eq!(read(&tdir.join("cgroup.type")).trim(), "domain threaded");
    let tid_file = std::env::temp_dir().join(format!("cgpe-v2-tid-{}", std::process::id()));
    let mut tp = tp;
    tp.spawn(&format!(
        "exec python3 -c 'import threading, time\ndef burn():\n    open(\"{}\", \"w\").write(str(threading.get_native_id()))\n    while True: sum(range(20000))\nthreading.Thread(target=burn, daemon=True).start()\ntime.sleep(600)\n'",
        tid_file.display()
    ));
    wait_until(
        "the burner thread wrote its TID",
        Duration::from_secs(60),
        || std::fs::read_to_string(&tid_file).is_ok_and(|t| !t.is_empty()),
    );
    let tid = read(&tid_file);
    let _ = std::fs::remove_file(&tid_file);
    write(&tchild.join("cgroup.threads"), tid.trim());
    std::thread::sleep(Duration::from_secs(2));
    let tpath = format!("{}/worker", tp.path());
    let before = flat_keyed(&read(&tchild.join("cpu.stat")))["usage_usec"] / 1e6;
    let m = ex.scrape();
    let after = flat_keyed(&read(&tchild.join("cpu.stat")))["usage_usec"] / 1e6;
    let tl = [("cgroup", tpath.as_str())];
    let got = m
        .get("cgroup_cpu_usage_seconds_total", &tl)
        .unwrap_or_else(|| panic!("threaded {tpath} exported"));
    assert!(
        before <= got && got <= after && got > 0.1,
        "threaded cpu {got} in [{before}, {after}]"
    );
    assert_eq!(
        m.get("cgroup_pids_current", &tl),
        Some(single(&read(&tchild.join("pids.current"))).expect("pids"))
    );
    assert_eq!(
        m.get("cgroup_memory_usage_bytes", &tl),
        None,
        "no memory controller in a threaded cgroup"
    );

    // cgroup.kill: everything inside dies, the cgroup stays (unpopulated)
    // until it is removed, and the scrape follows each step.
    let mut k = KernelCgroup::new("kill");
    let kdir = k.dirs[0].clone();
    for _ in 0..3 {
        k.spawn("sleep 600");
    }
    let kpath = k.path();
    let kl = [("cgroup", kpath.as_str())];
    // The shells fork their sleeps after joining: wait until the count
    // holds still before comparing.
    let pids = || single(&read(&kdir.join("pids.current"))).expect("pids.current");
    let mut last = -1.0;
    wait_until("pids.current settles", Duration::from_secs(30), || {
        let now = pids();
        std::thread::sleep(Duration::from_millis(500));
        std::mem::replace(&mut last, now) == now && pids() == now
    });
    let m = ex.scrape();
    let tasks = pids();
    assert!(tasks >= 3.0, "three sleepers (and their shells): {tasks}");
    assert_eq!(m.get("cgroup_pids_current", &kl), Some(tasks));
    assert_eq!(m.get("cgroup_populated", &kl), Some(1.0));
    write(&kdir.join("cgroup.kill"), "1");
    wait_until("cgroup.kill emptied it", Duration::from_secs(10), || {
        read(&kdir.join("cgroup.events")).contains("populated 0")
    });
    // pids.current drops when a dead task is reaped, which can come after
    // `populated 0`: the scrape must agree with the file either way.
    let before = pids();
    let m = ex.scrape();
    let after = pids();
    assert_eq!(m.get("cgroup_populated", &kl), Some(0.0));
    let got = m
        .get("cgroup_pids_current", &kl)
        .expect("pids_current after the kill");
    assert!(
        after <= got && got <= before,
        "pids_current {got} within the kernel's [{after}, {before}]"
    );
    std::fs::remove_dir(&kdir).expect("rmdir killed cgroup");
    soon("removed after the kill: gone", &|m| {
        !m.cgroups().contains(&kpath)
    });
    drop(k);
}

fn config(yaml: &str) -> Arc<Config> {
    Arc::new(serde_yaml::from_str::<Config>(yaml).expect("config"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500ms_window_is_accepted_with_cap_sys_resource_and_fires_under_real_pressure() {
    require_v2!();
    {
        common::sweep();
        let cg = common::TestCgroup::new(&common::unique("w500"), true);
        let file = cg.v2.join("memory.pressure");
        let spec = |window_us| TriggerSpec {
            kind: PsiKind::Some,
            threshold_us: 50_000,
            window_us,
        };
        // The kernel's floor: 500 ms; below it EINVAL even for root.
        match Trigger::arm(&file, &spec(400_000)) {
            Err(TriggerError::Invalid { .. }) => {}
            other => panic!("a 400 ms window must be refused: {other:?}"),
        }

        // The agent with a 500 ms rule delivers to a receiver.
        let hook = Capture::start().await;
        let registry = common::registry();
        let uid = common::unified_id(&registry);
        let cfg = config(&format!(
            "psi:\n  rules:\n    - name: V2Pressure500ms\n      cgroups: ['{}']\n      resource: memory\n      threshold: 50ms\n      window: 500ms\nalerting:\n  webhooks: ['{}']\n  oom_kills: false\n  timeout: 2s\n",
            cg.path(),
            hook.url
        ));
        let (_tx, rx) = watch::channel(cfg);
        let token = CancellationToken::new();
        let agent = psi::spawn(
            registry.clone(),
            PathBuf::from("/proc"),
            rx,
            PsiMetrics::new(),
            token.clone(),
        );
        registry.add(uid, &cg.path());
        let want = cg.path().to_string();
        common::wait_for(Duration::from_secs(5), || {
            agent.armed().iter().any(|a| a.cgroup == want).then_some(())
        })
        .await
        .expect("the 500 ms rule armed (CAP_SYS_RESOURCE)");

        let t = Trigger::arm(&file, &spec(500_000))
            .expect("a 500 ms window is accepted as root in the VM");
        let t0 = Instant::now();
        let pressure = common::Pressure::start(&cg, 90);
        let ev = tokio::time::timeout(Duration::from_secs(90), t.next())
            .await
            .expect("the 500 ms trigger fired under real memory pressure")
            .expect("poll");
        assert_eq!(ev, TriggerEvent::Fired);
        println!(
            "500 ms trigger fired {:?} after pressure started",
            t0.elapsed()
        );
        let alert = common::wait_for(Duration::from_secs(60), || {
            hook.alerts().into_iter().find(|a| {
                a["labels"]["alertname"] == "V2Pressure500ms"
                    && a["labels"]["cgroup"] == want.as_str()
            })
        })
        .await
        .expect("the rule's alert reached the receiver");
        println!(
            "alert at the receiver {:?} after pressure started: {alert}",
            t0.elapsed()
        );
        drop(pressure);
        agent.shutdown(Duration::from_secs(2)).await;
        token.cancel();
    }
}

/// Starts an agent watching OOM kills of the cgroups the test adds, with a
/// receiver.
struct OomAgent {
    hook: Capture,
    registry: Arc<cgroup_psi_exporter::registry::Registry>,
    agent: psi::AgentHandle,
    _tx: watch::Sender<Arc<Config>>,
}

impl OomAgent {
    async fn start() -> OomAgent {
        Self::start_with("  oom_kills: true\n").await
    }

    /// With `alerting` lines added to the receiver's.
    async fn start_with(alerting: &str) -> OomAgent {
        let hook = Capture::start().await;
        let registry = common::registry();
        let cfg = config(&format!(
            "alerting:\n  webhooks: ['{}']\n  timeout: 2s\n{alerting}",
            hook.url
        ));
        let (tx, rx) = watch::channel(cfg);
        let agent = psi::spawn(
            registry.clone(),
            PathBuf::from("/proc"),
            rx,
            PsiMetrics::new(),
            CancellationToken::new(),
        );
        OomAgent {
            hook,
            registry,
            agent,
            _tx: tx,
        }
    }

    async fn watch(&self, cg: &common::TestCgroup) {
        self.registry
            .add(common::unified_id(&self.registry), &cg.path());
        let want = cg.path().to_string();
        common::wait_for(Duration::from_secs(5), || {
            self.agent.oom_watched().contains(&want).then_some(())
        })
        .await
        .expect("OOM watch armed");
    }

    async fn alert_for(&self, cgroup: &str) -> serde_json::Value {
        common::wait_for(Duration::from_secs(20), || {
            self.hook.alerts().into_iter().find(|a| {
                a["labels"]["alertname"] == "CgroupOOMKill" && a["labels"]["cgroup"] == cgroup
            })
        })
        .await
        .unwrap_or_else(|| panic!("CgroupOOMKill for {cgroup} reached the receiver"))
    }
}

fn oom_kill_count(alert: &serde_json::Value) -> u64 {
    alert["annotations"]["oom_kill"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("oom_kill annotation in {alert}"))
}

const ALLOC: &str = "exec python3 -c 'b = b\"x\" * (200 << 20)'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kills_reach_the_receiver_with_oom_group_and_after_rmdir() {
    require_v2!();
    {
        common::sweep();
        let a = OomAgent::start().await;

        // memory.oom.group: the whole group dies with the allocating task.
        let g = common::TestCgroup::new(&common::unique("oomgroup"), true);
        g.limit_memory(32 << 20);
        write(&g.v2.join("memory.oom.group"), "1");
        write(&g.v2.join("memory.swap.max"), "0");
        a.watch(&g).await;
        let _sleeper = common::Proc::sh(&format!("{} && exec sleep 600", g.enter_script()));
        let mut p = common::Proc::sh(&format!("{} && {ALLOC}", g.enter_script()));
        assert!(
            p.wait_timeout(Duration::from_secs(60)),
            "the allocating process was killed"
        );
        let alert = a.alert_for(g.path().as_ref()).await;
        let events = flat_keyed(&read(&g.v2.join("memory.events")));
        println!("oom.group memory.events: {events:?}; alert: {alert}");
        assert!(events["oom_group_kill"] >= 1.0, "the kernel group-killed");
        wait_until("the group is empty", Duration::from_secs(10), || {
            read(&g.v2.join("cgroup.events")).contains("populated 0")
        });
        // Kernel fact (6.1): the victim of a group kill is counted twice in
        // oom_kill (once as the victim, once as a group member), so two
        // processes read 3. The exporter reports the kernel's count as is.
        assert!(
            events["oom_kill"] >= 2.0,
            "both members counted: {events:?}"
        );
        assert!(oom_kill_count(&alert) >= 1);

        // Removed right after the kill, as a container runtime does: the
        // alert still goes out, with the removed cgroup's path.
        let r = common::TestCgroup::new(&common::unique("oomgone"), true);
        r.limit_memory(32 << 20);
        write(&r.v2.join("memory.swap.max"), "0");
        a.watch(&r).await;
        let mut p = common::Proc::sh(&format!("{} && {ALLOC}", r.enter_script()));
        assert!(
            p.wait_timeout(Duration::from_secs(60)),
            "the allocating process was killed"
        );
        drop(p);
        r.rmdir_v2();
        assert!(!r.v2.exists(), "removed right after the kill");
        let alert = a.alert_for(r.path().as_ref()).await;
        assert!(oom_kill_count(&alert) >= 1, "{alert}");
        a.agent.shutdown(Duration::from_secs(2)).await;
    }
}

/// The firing states of `alertname` for `cgroup` at the receiver: their
/// distinct `startsAt` (one per episode: re-sends repeat it), and how many
/// resolves arrived.
fn episodes(hook: &Capture, alertname: &str, cgroup: &str) -> (Vec<String>, usize) {
    let mine: Vec<serde_json::Value> = hook
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == alertname && a["labels"]["cgroup"] == cgroup)
        .collect();
    let mut starts: Vec<String> = mine
        .iter()
        .filter(|a| a["status"] == "firing")
        .filter_map(|a| a["startsAt"].as_str().map(str::to_string))
        .collect();
    starts.sort();
    starts.dedup();
    let resolved = mine.iter().filter(|a| a["status"] == "resolved").count();
    (starts, resolved)
}

/// The last `status` state of `alertname` for `cgroup` at the receiver.
fn last_state(hook: &Capture, alertname: &str, cgroup: &str, status: &str) -> serde_json::Value {
    hook.alerts()
        .into_iter()
        .rfind(|x| {
            x["labels"]["alertname"] == alertname
                && x["labels"]["cgroup"] == cgroup
                && x["status"] == status
        })
        .unwrap_or_else(|| panic!("a {status} {alertname} for {cgroup}"))
}

/// One episode at a memory limit: page cache read through `cg` for `secs`
/// (a 64 MiB file, its cache dropped first, re-read by two readers), so
/// the kernel reclaims at the limit over and over.
fn limit_episode(cg: &common::TestCgroup, file: &common::pressure::BigFile, secs: u64) {
    file.drop_cache();
    let f = file.path.display();
    let mut p = common::Proc::sh(&format!(
        "{} || exit 1; end=$(( $(date +%s) + {secs} )); \
         for i in 1 2; do ( while [ $(date +%s) -lt $end ]; do dd if={f} of=/dev/null bs=1M status=none; done ) & done; wait",
        cg.enter_script()
    ));
    assert!(
        p.wait_timeout(Duration::from_secs(secs + 30)),
        "the readers ended"
    );
}

/// Issue 15: `alerting.memory_events` alerts on the kernel's own
/// `memory.events` `high` and `max`, once per episode: the first increase
/// fires, the many that follow while the cgroup sits at its limit do not,
/// and the alert resolves `hold_off` after the last one. A second episode
/// is a second alert. With the feature off no alert comes (checked by hand:
/// the waits below then fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_high_and_max_alert_once_per_episode_as_memory_events_count() {
    require_v2!();
    {
        common::sweep();
        let hold_off = Duration::from_secs(3);
        let a = OomAgent::start_with(
            "  oom_kills: false\n  resend_interval: 10m\n  memory_events: { high: true, max: true, hold_off: 3s }\n",
        )
        .await;
        let file = common::pressure::BigFile::new(64 << 20);
        let counters = |cg: &common::TestCgroup| flat_keyed(&read(&cg.v2.join("memory.events")));

        for (limit, alertname, counter) in [
            ("memory.high", "CgroupMemoryHigh", "high"),
            ("memory.max", "CgroupMemoryMax", "max"),
        ] {
            let cg = common::TestCgroup::new(&common::unique(counter), true);
            write(&cg.v2.join("memory.swap.max"), "0");
            write(&cg.v2.join(limit), &(16u64 << 20).to_string());
            a.watch(&cg).await;
            let want = cg.path().to_string();
            let mut count = counters(&cg)[counter];
            for episode in 1..=2usize {
                let t0 = Instant::now();
                limit_episode(&cg, &file, 4);
                let after = counters(&cg)[counter];
                println!(
                    "{alertname} episode {episode}: memory.events {counter} {count} -> {after} in {:?}",
                    t0.elapsed()
                );
                assert!(
                    after >= count + 2.0,
                    "{limit} was exceeded again and again: {counter} {count} -> {after}"
                );
                // Fired once, for the first increase, then resolved after
                // the hold-off.
                let (starts, resolved) = common::wait_for(Duration::from_secs(20), || {
                    let e = episodes(&a.hook, alertname, &want);
                    (e.1 >= episode).then_some(e)
                })
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "{alertname} episode {episode} fired and resolved at the receiver: {:?}",
                        episodes(&a.hook, alertname, &want)
                    )
                });
                assert_eq!(
                    (starts.len(), resolved),
                    (episode, episode),
                    "one alert per episode, though {counter} grew {} times: {starts:?}",
                    after - count
                );
                // The resolve ends the alert `hold_off` after the last
                // increase, which came after the first.
                let ended = last_state(&a.hook, alertname, &want, "resolved");
                let time = |k: &str| {
                    ended[k]
                        .as_str()
                        .and_then(|v| humantime::parse_rfc3339_weak(v).ok())
                        .unwrap_or_else(|| panic!("{k} in {ended}"))
                };
                let lasted = time("endsAt")
                    .duration_since(time("startsAt"))
                    .unwrap_or_default();
                assert!(
                    lasted >= hold_off,
                    "resolved {lasted:?} after it started, the hold-off is {hold_off:?}"
                );
                let alert = last_state(&a.hook, alertname, &want, "firing");
                let at_start: f64 = alert["annotations"][counter]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{counter} annotation in {alert}"));
                assert!(
                    at_start > count && at_start <= after,
                    "the alert names the kernel's count as it started: {at_start} in ({count}, {after}]"
                );
                count = counters(&cg)[counter];
            }
        }
        a.agent.shutdown(Duration::from_secs(2)).await;
    }
}

/// Issue 11: everything the kernel queued on the inotify descriptors before
/// a request arrived is applied before that scrape's snapshot. Strict: no
/// retry, 20 tries, each a mkdir (then an rmdir) right before a scrape.
#[test]
fn made_or_removed_right_before_a_scrape_is_in_it_or_gone_every_time() {
    require_v2!();
    let ex = ExporterProcess::start(&[]);
    let (mut missing, mut stale) = (0, 0);
    for _ in 0..20 {
        let cg = KernelCgroup::new("justbefore");
        let path = cg.path();
        if !ex.scrape().cgroups().contains(&path) {
            missing += 1;
        }
        drop(cg);
        if ex.scrape().cgroups().contains(&path) {
            stale += 1;
        }
    }
    assert_eq!(
        (missing, stale),
        (0, 0),
        "of 20 tries: (made right before a scrape but missing from it, removed right before but still in it)"
    );
}

/// Kernel quirk: turning a controller off and on again in a parent's
/// `cgroup.subtree_control` removes the children's control files and makes
/// them anew at their defaults, with no write in the children's own
/// directories. The exporter keeps cgroup2 settings between scrapes until a
/// settings file is written, so a write to `cgroup.subtree_control` must
/// count as a write for every cgroup: the child's limit, gone back to
/// `max`, is absent from the next scrape instead of its old value.
#[test]
fn a_controller_turned_off_and_on_in_the_parent_resets_the_childs_limit_in_the_next_scrape() {
    require_v2!();
    let cg = KernelCgroup::new("subtree");
    let dir = cg.dirs[0].clone();
    let child = dir.join("c");
    std::fs::create_dir(&child).expect("mkdir child");
    write(&dir.join("cgroup.subtree_control"), "+memory");
    write(&child.join("memory.max"), "209715200");
    let ex = ExporterProcess::start(&[]);
    let path = format!("{}/c", cg.path());
    let limit = |m: &Exposition| m.get("cgroup_memory_limit_bytes", &[("cgroup", &path)]);
    assert_eq!(
        limit(&ex.scrape()),
        Some(209715200.0),
        "the limit as written"
    );
    write(&dir.join("cgroup.subtree_control"), "-memory");
    write(&dir.join("cgroup.subtree_control"), "+memory");
    assert_eq!(
        read(&child.join("memory.max")).trim(),
        "max",
        "the kernel made the child's memory.max anew"
    );
    assert_eq!(
        limit(&ex.scrape()),
        None,
        "memory.max is back at max: no cgroup_memory_limit_bytes for {path}"
    );
}

/// A cgroup2 directory's `cgroup.controllers` is kept between scrapes with
/// its settings, and a write to the parent's `cgroup.subtree_control` (the
/// only way it changes) moves every write stamp: a controller turned off
/// takes the child's series of it out of the next scrape, and turned on
/// again brings them back, read from the kernel's files.
#[test]
fn a_controller_turned_off_in_the_parent_takes_its_series_out_of_the_next_scrape() {
    require_v2!();
    let cg = KernelCgroup::new("controllers");
    let dir = cg.dirs[0].clone();
    let child = dir.join("c");
    std::fs::create_dir(&child).expect("mkdir child");
    write(&dir.join("cgroup.subtree_control"), "+memory +pids");
    let ex = ExporterProcess::start(&[]);
    let path = format!("{}/c", cg.path());
    let l = [("cgroup", path.as_str())];
    let usage = |m: &Exposition| m.get("cgroup_memory_usage_bytes", &l);
    let pids = |m: &Exposition| m.get("cgroup_pids_current", &l);
    // Twice: the second scrape reads through what the first kept.
    for which in ["first", "second"] {
        let m = ex.scrape();
        assert!(
            usage(&m).is_some(),
            "{which} scrape: memory series of {path}"
        );
        assert_eq!(pids(&m), Some(0.0), "{which} scrape: pids of {path}");
    }
    write(&dir.join("cgroup.subtree_control"), "-memory");
    assert!(
        !read(&child.join("cgroup.controllers")).contains("memory"),
        "the kernel took memory out of the child's controllers"
    );
    let m = ex.scrape();
    assert_eq!(
        usage(&m),
        None,
        "memory off in the parent: no memory series"
    );
    assert_eq!(pids(&m), Some(0.0), "pids still on");
    write(&dir.join("cgroup.subtree_control"), "+memory");
    let m = ex.scrape();
    let kernel = single(&read(&child.join("memory.current"))).expect("memory.current");
    assert_eq!(
        usage(&m),
        Some(kernel),
        "memory on again: read from the kernel"
    );
}
