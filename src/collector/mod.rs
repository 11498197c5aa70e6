//! The scrape: take the registry's snapshot, read every cgroup's files in
//! parallel under a deadline, then encode family by family. Nothing runs
//! between scrapes.
//!
//! Concurrent scrapes collapse onto one collection: a request that arrives
//! while a collection runs waits for it and, if that collection started
//! before the request arrived (and so could miss a cgroup made just before
//! the request), takes the next one instead.

pub mod host;
pub mod names;
pub mod sample;
pub mod selfmetrics;

use parking_lot::{Condvar, Mutex};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use tracing::{debug, warn};

use crate::cgroupfs::files::{File, FileSet, Plan};
use crate::cgroupfs::parse::{self, DevNum};
use crate::cgroupfs::reader::{ReadError, Reader, Shared, SoftError};
use crate::cgroupfs::{CgroupPath, HierarchySet, Mode};
use crate::kubernetes::{Kubelet, PodNames};
use crate::labels::CgroupLabels;
use crate::registry::{CgroupEntry, Registry};

use crate::metrics::{self, Desc, Selection, Value};
use host::HostFiles;
use names::SCALARS;
use sample::CgroupStats;

/// Default time budget of one collection when the scraper states none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` (an encode of the registry) with a collection deadline, e.g.
/// from Prometheus's `X-Prometheus-Scrape-Timeout-Seconds`.
pub fn with_deadline<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    DEADLINE.with(|d| d.set(Some(deadline)));
    let r = f();
    DEADLINE.with(|d| d.set(None));
    r
}

/// A cgroup and what one collection read of it.
pub type Row = (Arc<CgroupEntry>, CgroupStats);

/// One collection's result.
#[derive(Debug, Default)]
pub struct Collected {
    pub rows: Vec<Row>,
    pub duration: Duration,
    pub deadline_hit: bool,
}

/// Self-observation shared with the self-metrics collector.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub last_duration_ns: AtomicU64,
    pub collections: AtomicU64,
    pub deadline_exceeded: AtomicU64,
    pub vanished: AtomicU64,
    pub read_errors: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Debug, Default)]
struct Flight {
    running: bool,
    last: Option<(Instant, Weak<Collected>)>,
}

/// Which families are on (`metrics.disable` / `metrics.enable`), resolved
/// once from the config: a scrape only looks names up, and reads the files
/// the families that are on declare they need ([`Desc::needs`]).
#[derive(Debug, Clone)]
pub struct Families {
    selection: Selection,
    files: FileSet,
}

impl Default for Families {
    fn default() -> Families {
        Families::new(Selection::all_on())
    }
}

impl Families {
    pub fn from_config(m: &crate::config::MetricsConfig) -> Families {
        Families::new(Selection::new(&m.disable, &m.enable))
    }

    pub fn new(selection: Selection) -> Families {
        let files = metrics::ALL
            .iter()
            .filter(|d| selection.on(d))
            .fold(FileSet::EMPTY, |s, d| s.union(FileSet::of(d.needs)));
        Families { selection, files }
    }

    pub fn all_on() -> Families {
        Families::default()
    }

    /// Whether the family is exported.
    pub fn on(&self, d: &Desc) -> bool {
        self.selection.on(d)
    }

    /// The selection the other collectors share.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// What to read in each cgroup.
    pub fn plan(&self) -> Plan {
        sample::plan(self.files)
    }
}

/// The per-cgroup collector registered in the exporter's registry.
pub struct CgroupCollector {
    registry: Arc<Registry>,
    procfs: PathBuf,
    families: Families,
    shared: Arc<Shared>,
    threads: usize,
    flight: Mutex<Flight>,
    done: Condvar,
    /// Device names for the `device` label, shared with every scrape and
    /// rebuilt only when a device not in it shows up.
    devices: Mutex<Arc<HashMap<DevNum, Arc<str>>>>,
    pub stats: Arc<ScrapeStats>,
    kubelet: Option<Arc<Kubelet>>,
}

impl CgroupCollector {
    /// Adds `pod`, `namespace` and `container` from the kubelet's pod list.
    pub fn with_kubelet(mut self, kubelet: Option<Arc<Kubelet>>) -> Self {
        self.kubelet = kubelet;
        self
    }

    /// The fd cache, for the self metrics.
    pub fn fd_cache(&self) -> Arc<crate::cgroupfs::fdcache::FdCache> {
        self.shared.fds.clone()
    }
}

impl fmt::Debug for CgroupCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CgroupCollector")
            .field("threads", &self.threads)
            .finish()
    }
}

impl CgroupCollector {
    /// `fd_cache`: descriptors kept open between scrapes (see
    /// [`crate::cgroupfs::fdcache`]); `None` sizes it from `RLIMIT_NOFILE`.
    pub fn new(
        registry: Arc<Registry>,
        procfs: PathBuf,
        families: Families,
        fd_cache: Option<usize>,
    ) -> CgroupCollector {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        // At start, before the discovery, the PSI agent and the OOM watchers
        // open theirs: raise the soft descriptor limit, and size the fd
        // cache from what is left.
        let soft = crate::kernel::raise_nofile_limit();
        let in_use = crate::kernel::open_fds();
        let cap = fd_cache
            .unwrap_or_else(|| crate::cgroupfs::fdcache::FdCache::auto_capacity(soft, in_use));
        let dirs = Shared::auto_dirs(soft, in_use, cap);
        debug!(fd_cache = cap, dirs, "descriptors kept between scrapes");
        let shared = Arc::new(Shared::new(
            registry.layout().clone(),
            cap,
            dirs,
            Some(registry.modified.clone()),
        ));
        CgroupCollector {
            registry,
            procfs,
            families,
            shared,
            threads,
            flight: Mutex::new(Flight::default()),
            done: Condvar::new(),
            devices: Mutex::new(Arc::new(HashMap::new())),
            stats: Arc::new(ScrapeStats::default()),
            kubelet: None,
        }
    }

    /// A collection that started no earlier than now, shared with
    /// concurrent callers.
    pub fn collect_shared(&self, deadline: Instant) -> Arc<Collected> {
        let arrived = Instant::now();
        let mut g = self.flight.lock();
        loop {
            if let Some((started, weak)) = &g.last {
                if *started >= arrived {
                    if let Some(c) = weak.upgrade() {
                        return c;
                    }
                }
            }
            if !g.running {
                g.running = true;
                break;
            }
            self.done.wait(&mut g);
        }
        drop(g);
        let started = Instant::now();
        let c = Arc::new(self.collect(deadline));
        let mut g = self.flight.lock();
        g.running = false;
        g.last = Some((started, Arc::downgrade(&c)));
        drop(g);
        self.done.notify_all();
        c
    }

    /// Reads every tracked cgroup once, in parallel, until `deadline`.
    pub fn collect(&self, deadline: Instant) -> Collected {
        let start = Instant::now();
        let snapshot = self.registry.snapshot_until(deadline);
        let next = AtomicUsize::new(0);
        let deadline_hit = std::sync::atomic::AtomicBool::new(false);
        const CHUNK: usize = 32;
        let threads = self.threads.min(snapshot.len().div_ceil(CHUNK)).max(1);
        let mut plan = self.families.plan();
        if plan.files.contains(File::BfqServiced) && !self.root_bfq_lists_a_device() {
            plan.files = plan.files.minus(sample::BFQ_STATS);
        }
        self.shared.start_scrape();
        // Each cgroup's stats go straight into its slot of one vector sized
        // for the snapshot, a chunk at a time, and that vector becomes the
        // result in place: per-thread vectors merged into a sorted one had
        // two copies of every row alive at the peak (~1.3 MiB at 2,000
        // cgroups).
        let slots: Mutex<Vec<Option<Row>>> =
            Mutex::new((0..snapshot.len()).map(|_| None).collect());
        let work = |_: usize| {
            let mut reader = Reader::new(self.shared.clone());
            let mut chunk: Vec<(usize, CgroupStats)> = Vec::with_capacity(CHUNK);
            let mut soft = Vec::new();
            let mut vanished = 0u64;
            loop {
                let i0 = next.fetch_add(CHUNK, Ordering::Relaxed);
                if i0 >= snapshot.len() {
                    break;
                }
                if Instant::now() >= deadline {
                    deadline_hit.store(true, Ordering::Relaxed);
                    break;
                }
                for i in i0..(i0 + CHUNK).min(snapshot.len()) {
                    let e = &snapshot[i];
                    match self.read_one(&mut reader, &plan, &e.path, e.hierarchies, &mut soft) {
                        Ok(s) => chunk.push((i, s)),
                        Err(ReadError::Vanished { .. }) => {
                            vanished += 1;
                            debug!(cgroup = %e.path, "cgroup vanished during scrape");
                        }
                        Err(err) => debug!(cgroup = %e.path, error = %err, "cgroup skipped"),
                    }
                }
                let mut slots = slots.lock();
                for (i, s) in chunk.drain(..) {
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some((snapshot[i].clone(), s));
                    }
                }
            }
            (soft, vanished)
        };
        let results: Vec<_> = if threads <= 1 {
            vec![work(0)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            })
        };
        // `filter_map` over the vector's own iterator collects in place
        // (same element size: `Arc` gives `Option` its niche).
        #[allow(clippy::filter_map_identity)]
        let rows: Vec<Row> = slots.into_inner().into_iter().filter_map(|r| r).collect();
        let mut errors: Vec<(&'static str, ReadError)> = Vec::new();
        for (soft, vanished) in results {
            errors.extend(soft.into_iter().map(|s| (s.file, s.error)));
            self.stats.vanished.fetch_add(vanished, Ordering::Relaxed);
        }
        if !errors.is_empty() {
            let mut counts = self.stats.read_errors.lock();
            for (file, err) in &errors {
                *counts.entry(file).or_insert(0) += 1;
                // One line per file per scrape at most would still be noisy
                // on a broken node: debug per error, warn once per scrape.
                debug!(file, error = %err, "read error");
            }
            if let Some((file, err)) = errors.first() {
                warn!(file, error = %err, count = errors.len(), "read errors in this scrape (counted in cgroup_psi_exporter_read_errors_total)");
            }
        }
        let hit = deadline_hit.load(Ordering::Relaxed);
        if !hit {
            self.shared.end_complete_scrape();
        }
        if hit {
            self.stats.deadline_exceeded.fetch_add(1, Ordering::Relaxed);
            warn!(
                read = rows.len(),
                tracked = snapshot.len(),
                "scrape deadline reached: partial collection"
            );
        }
        let duration = start.elapsed();
        self.stats
            .last_duration_ns
            .store(duration.as_nanos() as u64, Ordering::Relaxed);
        self.stats.collections.fetch_add(1, Ordering::Relaxed);
        Collected {
            rows,
            duration,
            deadline_hit: hit,
        }
    }

    /// Whether the v1 blkio root's BFQ file lists a device. When it does
    /// not, no cgroup's does, and each cgroup's BFQ probe (a read that
    /// would only say "use the throttle files") is left out of this
    /// scrape: a cgroup's blkg on a disk implies one for each of its
    /// ancestors, and BFQ's data is attached to every blkg of a disk whose
    /// scheduler is BFQ, so the root lists every disk any cgroup would.
    /// One read a scrape instead of one per cgroup; an unreadable root
    /// file keeps the per-cgroup probes.
    fn root_bfq_lists_a_device(&self) -> bool {
        let Some(h) =
            self.shared.layout.hierarchies.iter().find(|h| {
                !h.unified && h.controllers.contains(&crate::cgroupfs::Controller::Blkio)
            })
        else {
            return false;
        };
        let name = File::BfqServiced.info().name;
        match std::fs::read_to_string(h.root.join(name)) {
            Ok(text) => parse::parse_blkio_throttle(&text).map_or(true, |v| !v.is_empty()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(_) => true,
        }
    }

    /// One cgroup's files, and for the root the host's, as reported values.
    fn read_one(
        &self,
        reader: &mut Reader,
        plan: &Plan,
        cg: &CgroupPath,
        hierarchies: HierarchySet,
        soft: &mut Vec<SoftError>,
    ) -> Result<CgroupStats, ReadError> {
        if !cg.is_root() {
            let files = reader.read_cgroup(cg, hierarchies, plan, soft)?;
            return Ok(sample::sample(
                &files,
                &HostFiles::default(),
                crate::kernel::page_size(),
            ));
        }
        let mut host = HostFiles::default();
        let mut plan = *plan;
        // First, so the v1 root's blkio files, which the disks replace, are
        // not read at all.
        if self.shared.layout.mode != Mode::V2 && plan.files.contains(File::IoStat) {
            host.disks = host::read_disks(reader, &self.procfs);
            if host.disks.as_ref().is_some_and(|d| !d.is_empty()) {
                plan.files = plan.files.minus(sample::ROOT_V1_IO);
            }
        }
        let files = reader.read_cgroup(cg, hierarchies, &plan, soft)?;
        host::read_after_root(reader, &self.procfs, plan.files, &files, &mut host, soft);
        Ok(sample::sample(&files, &host, crate::kernel::page_size()))
    }

    /// The `device` label: the kernel's name from `/proc/partitions`, else
    /// from `/proc/diskstats`, else `major:minor`. Re-read only when an
    /// unknown device shows. Kernel quirk: `/proc/partitions` leaves out
    /// disks of size 0, such as a detached loop device, whose counters
    /// (and so the root's rows) stay; `/proc/diskstats` lists them.
    fn device_names(&self, c: &Collected) -> Arc<HashMap<DevNum, Arc<str>>> {
        let mut shared = self.devices.lock();
        let unknown = c
            .rows
            .iter()
            .flat_map(|(_, s)| {
                s.io.iter()
                    .map(|d| d.dev)
                    .chain(s.io_limits.iter().map(|l| l.dev))
            })
            .any(|d| !shared.contains_key(&d));
        if unknown {
            let mut map = (**shared).clone();
            if let Ok(text) = std::fs::read_to_string(self.procfs.join("partitions")) {
                for p in parse::parse_partitions(&text) {
                    map.insert(p.dev, Arc::from(p.name.as_str()));
                }
            }
            if let Ok(text) = std::fs::read_to_string(self.procfs.join("diskstats")) {
                for d in parse::parse_diskstats(&text) {
                    map.entry(d.dev)
                        .or_insert_with(|| Arc::from(d.name.as_str()));
                }
            }
            for (_, s) in &c.rows {
                for d in
                    s.io.iter()
                        .map(|d| d.dev)
                        .chain(s.io_limits.iter().map(|l| l.dev))
                {
                    map.entry(d)
                        .or_insert_with(|| Arc::from(d.to_string().as_str()));
                }
            }
            *shared = Arc::new(map);
        }
        shared.clone()
    }

    fn encode_collected(
        &self,
        c: &Collected,
        mut encoder: DescriptorEncoder<'_>,
    ) -> Result<(), fmt::Error> {
        // Kubelet names, looked up once per cgroup per scrape.
        let pods: Vec<Option<PodNames>> = match &self.kubelet {
            Some(k) => c
                .rows
                .iter()
                .map(|(e, _)| k.lookup_labels(&e.labels))
                .collect(),
            None => vec![None; c.rows.len()],
        };
        let cgroups: Vec<(CgroupLabels<'_>, &CgroupStats)> = c
            .rows
            .iter()
            .zip(pods.iter())
            .map(|((e, s), pod)| {
                let labels = CgroupLabels {
                    path: &e.path,
                    labels: &e.labels,
                    pod: pod.as_ref(),
                };
                (labels, s)
            })
            .collect();
        let rows = &cgroups[..];
        let enc = &mut encoder;
        let sel = self.families.selection();
        for fam in SCALARS {
            let d = fam.desc;
            let series = rows
                .iter()
                .filter_map(|&(l, s)| (fam.get)(s).map(|v| (l, Value(d.ty, v))));
            metrics::family(enc, sel, d, series)?;
        }
        let devices = self.device_names(c);
        let dev = |d: &DevNum| {
            devices
                .get(d)
                .cloned()
                .unwrap_or_else(|| Arc::from(d.to_string().as_str()))
        };

        type Keyed = fn(&CgroupStats) -> &[(&'static str, u64)];
        let keyed: [(&Desc, &str, Keyed); 2] = [
            (&metrics::MEMORY_STAT, "stat", |s| &s.memory_stat),
            (&metrics::MEMORY_EVENTS, "event", |s| &s.memory_events),
        ];
        for (d, key, items) in keyed {
            let series = per_item(rows, d, items, move |(k, _)| (key, *k), |m| Some(m.1));
            metrics::family(enc, sel, d, series)?;
        }
        let d = &metrics::MEMORY_NUMA;
        let series = rows.iter().flat_map(|&(l, s)| {
            s.memory_numa.iter().map(move |(node, stat, v)| {
                let extra = ([("node", *node)], [("stat", stat.as_str())]);
                ((l, extra), Value(d.ty, *v as f64))
            })
        });
        metrics::family(enc, sel, d, series)?;
        type IoGet = fn(&sample::IoDevice) -> Option<u64>;
        let io_fams: [(&Desc, IoGet); 4] = [
            (&metrics::IO_READ_BYTES, |d| d.read_bytes),
            (&metrics::IO_WRITE_BYTES, |d| d.write_bytes),
            (&metrics::IO_READS, |d| d.reads),
            (&metrics::IO_WRITES, |d| d.writes),
        ];
        for (d, get) in io_fams {
            let series = per_item(rows, d, |s| &s.io, |io| ("device", dev(&io.dev)), get);
            metrics::family(enc, sel, d, series)?;
        }
        type LimGet = fn(&sample::IoLimit) -> Option<u64>;
        let lim_fams: [(&Desc, LimGet); 4] = [
            (&metrics::IO_LIMIT_READ_BPS, |l| l.read_bps),
            (&metrics::IO_LIMIT_WRITE_BPS, |l| l.write_bps),
            (&metrics::IO_LIMIT_READ_IOPS, |l| l.read_iops),
            (&metrics::IO_LIMIT_WRITE_IOPS, |l| l.write_iops),
        ];
        for (d, get) in lim_fams {
            let series = per_item(rows, d, |s| &s.io_limits, |l| ("device", dev(&l.dev)), get);
            metrics::family(enc, sel, d, series)?;
        }
        type HugeGet = fn(&(Arc<str>, Option<u64>, Option<u64>)) -> Option<u64>;
        let huge_fams: [(&Desc, HugeGet); 2] = [
            (&metrics::HUGETLB_USAGE, |h| h.1),
            (&metrics::HUGETLB_LIMIT, |h| h.2),
        ];
        for (d, get) in huge_fams {
            let series = per_item(rows, d, |s| &s.hugetlb, |h| ("pagesize", h.0.clone()), get);
            metrics::family(enc, sel, d, series)?;
        }
        Ok(())
    }
}

/// A cgroup's labels and one more.
type ItemLabels<'a, V> = (CgroupLabels<'a>, [(&'static str, V); 1]);

/// The series of a family with one extra label per item of a list in each
/// cgroup's sample (memory.stat keys, devices, page sizes): `label` names
/// the item, `get` gives its value or skips it.
fn per_item<'a, T: 'a, V: 'a>(
    rows: &'a [(CgroupLabels<'a>, &'a CgroupStats)],
    d: &'a Desc,
    items: fn(&CgroupStats) -> &[T],
    label: impl Fn(&T) -> (&'static str, V) + Copy + 'a,
    get: fn(&T) -> Option<u64>,
) -> impl Iterator<Item = (ItemLabels<'a, V>, Value)> + 'a {
    rows.iter().flat_map(move |&(l, s)| {
        items(s)
            .iter()
            .filter_map(move |it| Some(((l, [label(it)]), Value(d.ty, get(it)? as f64))))
    })
}

impl Collector for CgroupCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let deadline = DEADLINE
            .with(|d| d.get())
            .unwrap_or_else(|| Instant::now() + DEFAULT_DEADLINE);
        let c = self.collect_shared(deadline);
        self.encode_collected(&c, encoder)
    }
}
