//! The exporter's own health: scrape cost, what discovery tracks, read
//! errors, build info, and the `process_*` family Go exporters give.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::ScrapeStats;
use crate::cgroupfs::fdcache::FdCache;
use crate::registry::Registry;

pub struct SelfCollector {
    registry: Arc<Registry>,
    scrape: Arc<ScrapeStats>,
    fds: Arc<FdCache>,
}

impl fmt::Debug for SelfCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SelfCollector")
    }
}

impl SelfCollector {
    pub fn new(
        registry: Arc<Registry>,
        scrape: Arc<ScrapeStats>,
        fds: Arc<FdCache>,
    ) -> SelfCollector {
        SelfCollector {
            registry,
            scrape,
            fds,
        }
    }
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    v: f64,
) -> fmt::Result {
    let me = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
    ConstGauge::new(v).encode(me)
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    v: f64,
) -> fmt::Result {
    let me = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
    ConstCounter::new(v).encode(me)
}

/// One counter family with a single label, one series per `(value, count)`.
fn counters_by(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    series: &[(&str, u64)],
) -> fmt::Result {
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in series {
        ConstCounter::new(*n).encode(me.encode_family(&[(label, *value)])?)?;
    }
    Ok(())
}

impl Collector for SelfCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.scrape;
        gauge(
            &mut enc,
            "cgroup_psi_exporter_scrape_duration",
            "Time the last collection of cgroup stats took.",
            Some(Unit::Seconds),
            s.last_duration_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )?;
        counter(
            &mut enc,
            "cgroup_psi_exporter_scrape_deadline_exceeded",
            "Collections cut short by the scrape deadline.",
            None,
            s.deadline_exceeded.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            &mut enc,
            "cgroup_psi_exporter_cgroups_vanished",
            "Cgroups removed between discovery and reading, dropped from that scrape.",
            None,
            s.vanished.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut enc,
            "cgroup_psi_exporter_fd_cache_fds",
            "Stat files held open between scrapes and re-read with pread.",
            None,
            self.fds.len() as f64,
        )?;
        gauge(
            &mut enc,
            "cgroup_psi_exporter_fd_cache_capacity",
            "Bound of the fd cache (metrics.fd_cache; shrinks on EMFILE).",
            None,
            self.fds.capacity() as f64,
        )?;
        counter(
            &mut enc,
            "cgroup_psi_exporter_fd_cache_backoffs",
            "Times the fd cache was shrunk because the process ran out of descriptors.",
            None,
            self.fds.backoffs.load(Ordering::Relaxed) as f64,
        )?;
        let read_errors: Vec<(&str, u64)> = s
            .read_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(file, n)| (*file, *n))
            .collect();
        counters_by(
            &mut enc,
            "cgroup_psi_exporter_read_errors",
            "Files that could not be read or parsed, by file name; the series is skipped.",
            "file",
            &read_errors,
        )?;
        {
            let layout = self.registry.layout();
            let mut me = enc.encode_descriptor(
                "cgroup_psi_exporter_cgroups",
                "Cgroups tracked, by hierarchy.",
                None,
                MetricType::Gauge,
            )?;
            for (id, n) in self.registry.counts() {
                let name = layout.get(id).map(|h| h.name()).unwrap_or_default();
                ConstGauge::new(n as i64)
                    .encode(me.encode_family(&[("hierarchy", name.as_str())])?)?;
            }
        }
        let r = &self.registry.stats;
        gauge(
            &mut enc,
            "cgroup_psi_exporter_inotify_watches",
            "inotify watches held on cgroup directories.",
            None,
            r.watches.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut enc,
            "cgroup_psi_exporter_discovery_fallback",
            "1 when the inotify watch limit was reached and discovery fell back to periodic rescans.",
            None,
            if r.watch_limit_reached.load(Ordering::Relaxed) { 1.0 } else { 0.0 },
        )?;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        counters_by(
            &mut enc,
            "cgroup_psi_exporter_rescans",
            "Full walks of the cgroup hierarchies, by reason.",
            "reason",
            &[
                ("initial", load(&r.rescans_initial)),
                ("overflow", load(&r.rescans_overflow)),
                ("fallback", load(&r.rescans_fallback)),
                ("manual", load(&r.rescans_manual)),
            ],
        )?;
        counters_by(
            &mut enc,
            "cgroup_psi_exporter_cgroups_skipped",
            "Cgroups not tracked, by reason.",
            "reason",
            &[("max_cgroups", load(&r.skipped_max_cgroups))],
        )?;
        counters_by(
            &mut enc,
            "cgroup_psi_exporter_registry_events",
            "Cgroups added to and removed from the registry (per hierarchy).",
            "event",
            &[("added", load(&r.added)), ("removed", load(&r.removed))],
        )?;
        {
            let mut me = enc.encode_descriptor(
                "cgroup_psi_exporter_build_info",
                "Build information; the value is always 1.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(1).encode(me.encode_family(&[
                ("version", env!("CARGO_PKG_VERSION")),
                ("layout", &self.registry.layout().mode.to_string()),
            ])?)?;
        }
        encode_process(&mut enc)
    }
}

/// `process_*` as the Go client gives them, from the exporter's own
/// `/proc/self` (always the real procfs: these describe this process).
fn encode_process(enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let Ok(me) = procfs::process::Process::myself() else {
        return Ok(());
    };
    let tps = procfs::ticks_per_second() as f64;
    let page = procfs::page_size() as f64;
    if let Ok(stat) = me.stat() {
        counter(
            enc,
            "process_cpu",
            "Total user and system CPU time spent.",
            Some(Unit::Seconds),
            (stat.utime + stat.stime) as f64 / tps,
        )?;
        gauge(
            enc,
            "process_resident_memory",
            "Resident memory size.",
            Some(Unit::Bytes),
            stat.rss as f64 * page,
        )?;
        gauge(
            enc,
            "process_virtual_memory",
            "Virtual memory size.",
            Some(Unit::Bytes),
            stat.vsize as f64,
        )?;
        if let Ok(boot) = procfs::boot_time_secs() {
            gauge(
                enc,
                "process_start_time",
                "Start time of the process since the Unix epoch.",
                Some(Unit::Seconds),
                boot as f64 + stat.starttime as f64 / tps,
            )?;
        }
    }
    if let Ok(n) = me.fd_count() {
        gauge(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            None,
            n as f64,
        )?;
    }
    if let Ok(limits) = me.limits() {
        if let procfs::process::LimitValue::Value(v) = limits.max_open_files.soft_limit {
            gauge(
                enc,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                v as f64,
            )?;
        }
    }
    Ok(())
}
