//! Discovery latency: time from `mkdir` of a cgroup to the registry's
//! `Added` event, and to a scrape's snapshot that holds it, plus the cost of
//! a snapshot when nothing changed; median, p99 and worst over 1000
//! cgroups, on the real kernel (root): `cargo bench --bench discovery`. `CGPE_BENCH_ITER` changes the
//! count; `CGPE_BENCH_CGROUPFS` the root (a plain folder works too).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgroup_psi_exporter::cgroupfs::{CgroupPath, Layout};
use cgroup_psi_exporter::registry::{watcher, Filter, Registry, RegistryEvent};

fn main() {
    let root = PathBuf::from(
        std::env::var("CGPE_BENCH_CGROUPFS").unwrap_or_else(|_| "/sys/fs/cgroup".into()),
    );
    let iters: usize = std::env::var("CGPE_BENCH_ITER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let layout = match Layout::detect(&root, std::path::Path::new("/proc")) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let Some(h) = layout.hierarchies.first().cloned() else {
        eprintln!("skipped: no hierarchy");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let registry = Registry::new(layout, Filter::default());
        let w = watcher::spawn(registry.clone()).expect("discovery thread");
        let mut started = w.started();
        let _ = started.wait_for(|s| *s).await;
        let (_, mut rx) = registry.subscribe();
        let base = h
            .root
            .join(format!("cgpe-bench-disc-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&base) {
            eprintln!("skipped: mkdir {}: {e}", base.display());
            return;
        }
        let base_cg = CgroupPath::new(&format!("cgpe-bench-disc-{}", std::process::id()));
        // Drain the base's own event.
        let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        let mut lat = Vec::with_capacity(iters);
        for i in 0..iters {
            let name = format!("c{i}");
            let want = base_cg.join(&name);
            let dir = base.join(&name);
            let t0 = Instant::now();
            std::fs::create_dir(&dir).expect("mkdir");
            loop {
                match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                    Ok(Some(RegistryEvent::Added { path, hierarchy }))
                        if path == want && hierarchy == h.id =>
                    {
                        lat.push(t0.elapsed());
                        break;
                    }
                    Ok(Some(_)) => continue,
                    _ => panic!("no event for {want}"),
                }
            }
            std::fs::remove_dir(&dir).expect("rmdir");
        }
        // A scrape's view: `mkdir`, then at once the snapshot a scrape
        // takes (which applies the queued event itself), and the cost of
        // that snapshot when nothing changed.
        let mut seen = Vec::with_capacity(iters);
        let mut idle = Vec::with_capacity(iters);
        for i in 0..iters {
            let want = base_cg.join(&format!("s{i}"));
            let dir = base.join(format!("s{i}"));
            let t0 = Instant::now();
            std::fs::create_dir(&dir).expect("mkdir");
            let snap = registry.snapshot();
            seen.push(t0.elapsed());
            assert!(
                snap.iter().any(|e| e.path == want),
                "{want} not in the snapshot"
            );
            let t1 = Instant::now();
            let _ = registry.snapshot();
            idle.push(t1.elapsed());
            std::fs::remove_dir(&dir).expect("rmdir");
        }
        let _ = std::fs::remove_dir(&base);
        w.stop();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        for (what, lat) in [
            ("discovery latency (mkdir → registry event)", &mut lat),
            ("mkdir → snapshot holding it", &mut seen),
            ("snapshot, nothing queued", &mut idle),
        ] {
            lat.sort();
            println!(
                "{what} over {iters} cgroups in {}: median {:.1} µs, p99 {:.1} µs, worst {:.1} µs",
                h.root.display(),
                us(lat[lat.len() / 2]),
                us(lat[lat.len() * 99 / 100]),
                us(lat[lat.len() - 1])
            );
        }
    });
}
