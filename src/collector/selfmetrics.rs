//! The exporter's own health: scrape cost, what discovery tracks, read
//! errors, build info, and the `process_*` family Go exporters give.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::ScrapeStats;
use crate::cgroupfs::fdcache::FdCache;
use crate::metrics::{self as m, declared_family, family, single, Selection};
use crate::registry::Registry;

pub struct SelfCollector {
    registry: Arc<Registry>,
    scrape: Arc<ScrapeStats>,
    fds: Arc<FdCache>,
    selection: Selection,
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
        selection: Selection,
    ) -> SelfCollector {
        SelfCollector {
            registry,
            scrape,
            fds,
            selection,
        }
    }
}

fn load(v: &AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

/// A gauge and a counter of one value each, as the Go client writes them.
fn gauge(v: f64) -> ConstGauge<f64> {
    ConstGauge::new(v)
}

fn counter(v: u64) -> ConstCounter<f64> {
    ConstCounter::new(v as f64)
}

/// One series per `(label value, count)`.
fn by<'a>(
    label: &'static str,
    series: &'a [(&'a str, u64)],
) -> impl Iterator<Item = ([(&'static str, &'a str); 1], ConstCounter<u64>)> + 'a {
    series
        .iter()
        .map(move |(value, n)| ([(label, *value)], ConstCounter::new(*n)))
}

impl Collector for SelfCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let (e, on) = (&mut enc, &self.selection);
        let s = &self.scrape;
        let secs = load(&s.last_duration_ns) as f64 / 1e9;
        single(e, on, &m::SCRAPE_DURATION, gauge(secs))?;
        let deadline = counter(load(&s.deadline_exceeded));
        single(e, on, &m::SCRAPE_DEADLINE_EXCEEDED, deadline)?;
        single(e, on, &m::CGROUPS_VANISHED, counter(load(&s.vanished)))?;
        single(e, on, &m::FD_CACHE_FDS, gauge(self.fds.len() as f64))?;
        single(
            e,
            on,
            &m::FD_CACHE_CAPACITY,
            gauge(self.fds.capacity() as f64),
        )?;
        single(
            e,
            on,
            &m::FD_CACHE_BACKOFFS,
            counter(load(&self.fds.backoffs)),
        )?;
        let read_errors: Vec<(&str, u64)> = s
            .read_errors
            .lock()
            .iter()
            .map(|(file, n)| (*file, *n))
            .collect();
        declared_family(e, on, &m::READ_ERRORS, by("file", &read_errors))?;
        let layout = self.registry.layout();
        let counts = self.registry.counts().into_iter().map(|(id, n)| {
            let name = layout.get(id).map(|h| h.name()).unwrap_or_default();
            ([("hierarchy", name)], ConstGauge::new(n as i64))
        });
        declared_family(e, on, &m::CGROUPS, counts)?;
        let r = &self.registry.stats;
        single(e, on, &m::INOTIFY_WATCHES, gauge(load(&r.watches) as f64))?;
        let fallback = r.watch_limit_reached.load(Ordering::Relaxed);
        let fallback = gauge(if fallback { 1.0 } else { 0.0 });
        single(e, on, &m::DISCOVERY_FALLBACK, fallback)?;
        let rescans = [
            ("initial", load(&r.rescans_initial)),
            ("overflow", load(&r.rescans_overflow)),
            ("fallback", load(&r.rescans_fallback)),
            ("manual", load(&r.rescans_manual)),
        ];
        family(e, on, &m::RESCANS, by("reason", &rescans))?;
        let skipped = [("max_cgroups", load(&r.skipped_max_cgroups))];
        family(e, on, &m::CGROUPS_SKIPPED, by("reason", &skipped))?;
        let events = [("added", load(&r.added)), ("removed", load(&r.removed))];
        family(e, on, &m::REGISTRY_EVENTS, by("event", &events))?;
        let mode = layout.mode.to_string();
        let build = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("layout", mode.as_str()),
        ];
        family(e, on, &m::BUILD_INFO, [(build, ConstGauge::new(1))])?;
        encode_process(e, on)
    }
}

/// `process_*` as the Go client gives them, from the exporter's own
/// `/proc/self` (always the real procfs: these describe this process).
fn encode_process(e: &mut DescriptorEncoder<'_>, on: &Selection) -> fmt::Result {
    let Ok(me) = procfs::process::Process::myself() else {
        return Ok(());
    };
    let tps = procfs::ticks_per_second() as f64;
    let page = procfs::page_size() as f64;
    if let Ok(stat) = me.stat() {
        let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / tps);
        single(e, on, &m::PROCESS_CPU, cpu)?;
        let rss = gauge(stat.rss as f64 * page);
        single(e, on, &m::PROCESS_RESIDENT_MEMORY, rss)?;
        let vsize = gauge(stat.vsize as f64);
        single(e, on, &m::PROCESS_VIRTUAL_MEMORY, vsize)?;
        if let Ok(boot) = procfs::boot_time_secs() {
            let start = gauge(boot as f64 + stat.starttime as f64 / tps);
            single(e, on, &m::PROCESS_START_TIME, start)?;
        }
    }
    if let Ok(n) = me.fd_count() {
        single(e, on, &m::PROCESS_OPEN_FDS, gauge(n as f64))?;
    }
    if let Ok(limits) = me.limits() {
        if let procfs::process::LimitValue::Value(v) = limits.max_open_files.soft_limit {
            single(e, on, &m::PROCESS_MAX_FDS, gauge(v as f64))?;
        }
    }
    Ok(())
}
