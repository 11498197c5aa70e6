//! Namespaces: maps every process of a procfs root to its eight namespaces
//! (`/proc/<pid>/ns/*`) and its cgroup (`/proc/<pid>/cgroup`), and reads
//! per-network-namespace interface counters (`net/dev`) and per-user-
//! namespace root mapping (`uid_map`) from one member each.
//!
//! The answer to "which containers share the host's network?" and "is this
//! container's root the host's root?" without `lsns`, `nsenter` or
//! `ip netns exec` on every node.
//!
//! Kernel reference: <https://man7.org/linux/man-pages/man7/namespaces.7.html>.
//!
//! Split: [`parse`] holds pure parsers, [`scan`] the procfs I/O and the
//! per-process cache, this file the Prometheus encoding.

mod cgroupns;
pub mod parse;
pub mod scan;

use parking_lot::Mutex;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

pub use parse::{NetDevLine, NsType};
pub use scan::{CgroupNamespaces, HostSource, NamespaceSnapshot, ReadErrors, ScanError};

use crate::cgroupfs::{CgroupPath, Layout};
use crate::labels::CgroupLabels;
use crate::metrics::{self as m, family, single, Desc, Selection};
use scan::Scanner;

/// Scans a procfs root at scrape time. The mutex serialises concurrent
/// scrapes so the per-process cache is read and refreshed by one at a time.
#[derive(Debug)]
pub struct NamespaceCollector {
    scanner: Mutex<Scanner>,
    selection: Selection,
}

impl NamespaceCollector {
    /// `procfs` is `--path.procfs`: `/proc`, `/host/proc` in the DaemonSet,
    /// or a fixture tree.
    pub fn new(procfs: PathBuf) -> Self {
        Self {
            scanner: Mutex::new(Scanner::new(procfs)),
            selection: Selection::default(),
        }
    }

    /// Leaves out the families `metrics.disable` names.
    pub fn with_selection(self, selection: Selection) -> Self {
        Self { selection, ..self }
    }

    /// Maps process cgroup paths to host paths when the exporter runs in a
    /// private cgroup namespace (an unprivileged pod on a cgroup v2 node),
    /// looking for its own cgroup in `layout`'s hierarchies at the first
    /// scan. See `cgroupns.rs`.
    pub fn with_cgroup_layout(self, layout: Arc<Layout>) -> Self {
        let mut scanner = self.scanner.into_inner();
        scanner.set_layout(layout);
        Self {
            scanner: Mutex::new(scanner),
            selection: self.selection,
        }
    }

    /// One incremental scan: only processes not seen before (by pid and
    /// start time) are read from disk.
    pub fn scan(&self) -> NamespaceSnapshot {
        // A panic in an earlier scan leaves the cache consistent enough
        // (entries are inserted whole), so keep using it.
        let mut scanner = self.scanner.lock();
        scanner.scan()
    }
}

impl Collector for NamespaceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.scan();
        encode_snapshot(&snap, &self.selection, &mut encoder)
    }
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

type Getter = fn(&NetDevLine) -> u64;

/// The eight per-interface families and the field each reports.
const NET_FAMILIES: [(&Desc, Getter); 8] = [
    (&m::NET_RECEIVE, |l| l.rx_bytes),
    (&m::NET_RECEIVE_PACKETS, |l| l.rx_packets),
    (&m::NET_RECEIVE_ERRORS, |l| l.rx_errs),
    (&m::NET_RECEIVE_DROPS, |l| l.rx_drop),
    (&m::NET_TRANSMIT, |l| l.tx_bytes),
    (&m::NET_TRANSMIT_PACKETS, |l| l.tx_packets),
    (&m::NET_TRANSMIT_ERRORS, |l| l.tx_errs),
    (&m::NET_TRANSMIT_DROPS, |l| l.tx_drop),
];

fn cg<'a>(
    (path, c): (&'a CgroupPath, &'a CgroupNamespaces),
) -> (CgroupLabels<'a>, &'a CgroupNamespaces) {
    (CgroupLabels::new(path, &c.labels), c)
}

/// Encodes a snapshot family by family, leaving out those `on` turns off.
/// Public so tests and `--once` can encode a snapshot they already hold.
pub fn encode_snapshot(
    snap: &NamespaceSnapshot,
    on: &Selection,
    e: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let by_type = snap.count_by_type().into_iter();
    let by_type = by_type.map(|(t, n)| ([("type", t.as_str())], gauge(n)));
    family(e, on, &m::NAMESPACES, by_type)?;
    let ns = |(t, inode): &(NsType, u64)| ([("type", t.as_str())], [("inode", *inode)]);
    let info = snap.namespaces.keys().map(|k| (ns(k), gauge(1)));
    family(e, on, &m::NAMESPACE_INFO, info)?;
    let procs = snap.namespaces.iter().map(|(k, n)| (ns(k), gauge(*n)));
    family(e, on, &m::NAMESPACE_PROCESSES, procs)?;
    let root = snap.user_root_mapped_to_host.iter();
    let root = root.map(|(inode, m)| ([("inode", *inode)], gauge(u64::from(*m))));
    family(e, on, &m::NAMESPACE_USER_ROOT_MAPPED, root)?;
    for (d, get) in &NET_FAMILIES {
        let series = snap.network.iter().flat_map(|(inode, lines)| {
            lines.iter().map(move |l| {
                let labels = (
                    [("inode", inode.to_string())],
                    [("interface", l.interface.as_str())],
                );
                (labels, ConstCounter::new(get(l)))
            })
        });
        family(e, on, d, series)?;
    }

    let cgroups = || snap.cgroups.iter().map(cg);
    let procs = cgroups().map(|(l, c)| (l, gauge(c.processes)));
    family(e, on, &m::CGROUP_PROCESSES, procs)?;
    let root = cgroups().map(|(l, c)| (l, gauge(c.host_root_processes)));
    family(e, on, &m::CGROUP_HOST_ROOT_PROCESSES, root)?;
    let info =
        cgroups().flat_map(|(l, c)| c.namespaces.iter().map(move |k| ((l, ns(k)), gauge(1))));
    family(e, on, &m::CGROUP_NAMESPACE_INFO, info)?;
    let host = cgroups().flat_map(|(l, c)| {
        c.host_namespace
            .iter()
            .map(move |(t, shared)| ((l, [("type", t.as_str())]), gauge(u64::from(*shared))))
    });
    family(e, on, &m::CGROUP_HOST_NAMESPACE, host)?;

    // Self metrics: present unless disabled.
    let duration = ConstGauge::new(snap.duration.as_secs_f64());
    single(e, on, &m::NAMESPACE_SCAN_DURATION, duration)?;
    let errors = snap.read_errors.by_reason().into_iter();
    let errors = errors.map(|(reason, n)| ([("reason", reason)], ConstCounter::new(n)));
    family(e, on, &m::NAMESPACE_READ_ERRORS, errors)?;
    let cached = gauge(snap.processes_cached as u64);
    single(e, on, &m::NAMESPACE_PROCESSES_CACHED, cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registrable<T: Collector + fmt::Debug + Send + Sync + 'static>() {}

    #[test]
    fn collector_can_be_registered_and_shared_across_threads() {
        registrable::<NamespaceCollector>();
        let c = NamespaceCollector::new(PathBuf::from("/nonexistent-cgpe-procfs"));
        let mut out = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(c));
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        // An unreadable root still yields the self metrics, nothing else.
        assert!(out.contains("cgroup_psi_exporter_namespace_processes_cached 0\n"));
        assert!(!out.contains("\nnamespaces{"));
    }
}
