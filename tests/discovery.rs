//! Discovery on plain folders (inotify works on tmpfs/ext4 too): after every
//! step the registry must equal a fresh walk of the tree.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgroup_psi_exporter::cgroupfs::{CgroupPath, Layout};
use cgroup_psi_exporter::registry::watcher::{self, WatcherHandle};
use cgroup_psi_exporter::registry::{walk, Filter, Registry, RegistryEvent};

fn v2_tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("cgroup.controllers"), "cpu memory\n").expect("write");
    d
}

fn truth(root: &Path, filter: &Filter) -> BTreeSet<String> {
    walk::walk(root, filter.max_depth, |_| Ok(()))
        .into_iter()
        .filter(|p| filter.tracks(p))
        .map(|p| p.to_string())
        .collect()
}

fn tracked(r: &Registry) -> BTreeSet<String> {
    r.snapshot().iter().map(|e| e.path.to_string()).collect()
}

/// Waits (bounded) until the registry equals a fresh walk.
async fn converge(r: &Registry, root: &Path) {
    let t0 = Instant::now();
    loop {
        let want = truth(root, r.filter());
        let got = tracked(r);
        if want == got {
            return;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            panic!("registry never matched the tree:\n want {want:?}\n got  {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn start(root: &Path, filter: Filter) -> (Arc<Registry>, WatcherHandle) {
    let layout = Arc::new(Layout::from_files(root).expect("layout"));
    let r = Registry::new(layout, filter);
    let h = watcher::spawn(r.clone()).expect("discovery thread");
    let mut started = h.started();
    started.wait_for(|s| *s).await.expect("watcher started");
    (r, h)
}

#[tokio::test]
async fn create_nest_fast_remove_and_rename_are_all_seen() {
    let d = v2_tree();
    let root = d.path();
    std::fs::create_dir_all(root.join("pre/existing")).expect("mkdir");
    let (r, stop) = start(root, Filter::default()).await;
    converge(&r, root).await;
    assert!(tracked(&r).contains("/pre/existing"));

    // Nested faster than events can be read: watch-then-list sees it whole.
    std::fs::create_dir_all(root.join("a/b/c/d/e")).expect("mkdir -p");
    converge(&r, root).await;
    assert!(tracked(&r).contains("/a/b/c/d/e"));

    std::fs::rename(root.join("a/b"), root.join("moved")).expect("rename");
    converge(&r, root).await;
    assert!(tracked(&r).contains("/moved/c/d/e") && !tracked(&r).contains("/a/b"));

    for p in ["moved/c/d/e", "moved/c/d", "moved/c", "moved"] {
        std::fs::remove_dir(root.join(p)).expect("rmdir");
    }
    converge(&r, root).await;
    assert!(!tracked(&r).iter().any(|p| p.starts_with("/moved")));

    // Watches of removed directories are gone too.
    let watches = r.stats.watches.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        watches as usize,
        truth(root, r.filter()).len(),
        "one watch per live directory"
    );
    stop.stop();
}

#[tokio::test]
async fn subscribers_hear_adds_and_removes_in_order() {
    let d = v2_tree();
    let root = d.path();
    let (r, stop) = start(root, Filter::default()).await;
    let (initial, mut rx) = r.subscribe();
    assert_eq!(initial.len(), 1, "the root");
    std::fs::create_dir(root.join("x")).expect("mkdir");
    converge(&r, root).await;
    std::fs::remove_dir(root.join("x")).expect("rmdir");
    converge(&r, root).await;
    let mut seen = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        seen.push(ev);
    }
    let x = CgroupPath::new("/x");
    assert!(
        matches!(&seen[..], [RegistryEvent::Added { path: a, .. }, RegistryEvent::Removed { path: b, .. }] if *a == x && *b == x),
        "{seen:?}"
    );
    stop.stop();
}

#[tokio::test]
async fn include_exclude_and_depth_bound_what_is_tracked() {
    let d = v2_tree();
    let root = d.path();
    let filter = Filter {
        include: vec![cgroup_psi_exporter::glob::Glob::new("/keep/**").expect("glob")],
        exclude: vec![cgroup_psi_exporter::glob::Glob::new("/keep/skip").expect("glob")],
        max_depth: 3,
        max_cgroups: 100,
    };
    let (r, stop) = start(root, filter).await;
    std::fs::create_dir_all(root.join("keep/x/y/z")).expect("mkdir");
    std::fs::create_dir_all(root.join("keep/skip")).expect("mkdir");
    std::fs::create_dir_all(root.join("other")).expect("mkdir");
    converge(&r, root).await;
    let t = tracked(&r);
    assert!(t.contains("/keep") && t.contains("/keep/x/y"), "{t:?}");
    assert!(!t.contains("/keep/x/y/z"), "deeper than max_depth");
    assert!(
        !t.contains("/keep/skip") && !t.contains("/other") && !t.contains("/"),
        "{t:?}"
    );
    stop.stop();
}

#[tokio::test]
async fn max_cgroups_skips_new_ones_and_keeps_the_tracked() {
    let d = v2_tree();
    let root = d.path();
    let filter = Filter {
        max_cgroups: 3,
        ..Filter::default()
    };
    let (r, stop) = start(root, filter).await;
    for i in 0..5 {
        std::fs::create_dir(root.join(format!("c{i}"))).expect("mkdir");
    }
    let t0 = Instant::now();
    while r
        .stats
        .skipped_max_cgroups
        .load(std::sync::atomic::Ordering::Relaxed)
        < 3
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "skips not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(r.len(), 3, "root + 2 tracked, the rest skipped");
    stop.stop();
}

#[test]
fn a_forced_queue_overflow_is_healed_by_a_rescan() {
    if let Some(reason) = common::kernel_unavailable() {
        return common::skip(&reason);
    }
    let _g = common::SysctlGuard::set("/proc/sys/fs/inotify/max_queued_events", "16");
    let d = v2_tree();
    let root = d.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let (r, stop) = start(&root, Filter::default()).await;
        // Paused: the watcher cannot read while we flood it.
        stop.paused(|| {
            for i in 0..200 {
                std::fs::create_dir(root.join(format!("flood{i}"))).expect("mkdir");
            }
        });
        converge(&r, &root).await;
        assert!(
            r.stats
                .rescans_overflow
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1,
            "the overflow was noticed"
        );
        stop.stop();
    });
}

/// A scrape waits for a walk in progress only until its deadline, then
/// takes the set as it is; with nothing in progress it waits for nothing.
#[tokio::test]
async fn a_snapshot_waits_for_discovery_no_longer_than_asked() {
    let d = v2_tree();
    let root = d.path();
    let (r, w) = start(root, Filter::default()).await;
    let wait = Duration::from_millis(100);
    let waited = w.paused(|| {
        std::fs::create_dir(root.join("during")).expect("mkdir");
        let t0 = Instant::now();
        let snap = r.snapshot_until(t0 + wait);
        (
            t0.elapsed(),
            snap.iter().any(|e| e.path.as_str() == "/during"),
        )
    });
    assert!(
        waited.0 >= wait && waited.0 < Duration::from_secs(5),
        "waited {:?} for a held turn, asked for {wait:?}",
        waited.0
    );
    assert!(!waited.1, "nothing was applied while discovery was held");
    // Released: the next snapshot has it (applied by the thread or by the
    // snapshot itself, whichever took the turn first).
    assert!(tracked(&r).contains("/during"));
    w.stop();
}
