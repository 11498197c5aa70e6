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

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

pub use parse::{NetDevLine, NsType};
pub use scan::{CgroupNamespaces, HostSource, NamespaceSnapshot, ReadErrors, ScanError};

use crate::cgroupfs::{CgroupPath, Layout};
use crate::labels::CgroupLabels;
use scan::Scanner;

/// Scans a procfs root at scrape time. The mutex serialises concurrent
/// scrapes so the per-process cache is read and refreshed by one at a time.
#[derive(Debug)]
pub struct NamespaceCollector {
    scanner: Mutex<Scanner>,
}

impl NamespaceCollector {
    /// `procfs` is `--path.procfs`: `/proc`, `/host/proc` in the DaemonSet,
    /// or a fixture tree.
    pub fn new(procfs: PathBuf) -> Self {
        Self {
            scanner: Mutex::new(Scanner::new(procfs)),
        }
    }

    /// Maps process cgroup paths to host paths when the exporter runs in a
    /// private cgroup namespace (an unprivileged pod on a cgroup v2 node),
    /// looking for its own cgroup in `layout`'s hierarchies at the first
    /// scan. See `cgroupns.rs`.
    pub fn with_cgroup_layout(self, layout: Arc<Layout>) -> Self {
        let mut scanner = self.scanner.into_inner().unwrap_or_else(|e| e.into_inner());
        scanner.set_layout(layout);
        Self {
            scanner: Mutex::new(scanner),
        }
    }

    /// One incremental scan: only processes not seen before (by pid and
    /// start time) are read from disk.
    pub fn scan(&self) -> NamespaceSnapshot {
        // A panic in an earlier scan leaves the cache consistent enough
        // (entries are inserted whole), so keep using it.
        let mut scanner = self.scanner.lock().unwrap_or_else(|e| e.into_inner());
        scanner.scan()
    }
}

impl Collector for NamespaceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let snap = self.scan();
        encode_snapshot(&snap, &mut encoder)
    }
}

/// Emits one descriptor, then one series per item, or nothing when there
/// are no items (an absent family, not an empty one).
fn family<I, L, M>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    series: I,
) -> fmt::Result
where
    I: IntoIterator<Item = (L, M)>,
    L: EncodeLabelSet,
    M: EncodeMetric,
{
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut fam = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, metric) in series {
        let enc: MetricEncoder<'_> = fam.encode_family(&labels)?;
        metric.encode(enc)?;
    }
    Ok(())
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

type Getter = fn(&NetDevLine) -> u64;

/// The eight per-interface families: (name without `_total`, unit, help, field).
const NET_FAMILIES: [(&str, Option<Unit>, &str, Getter); 8] = [
    (
        "namespace_network_receive",
        Some(Unit::Bytes),
        "Bytes received by the interface, per network namespace.",
        |l| l.rx_bytes,
    ),
    (
        "namespace_network_receive_packets",
        None,
        "Packets received by the interface, per network namespace.",
        |l| l.rx_packets,
    ),
    (
        "namespace_network_receive_errors",
        None,
        "Receive errors of the interface, per network namespace.",
        |l| l.rx_errs,
    ),
    (
        "namespace_network_receive_drops",
        None,
        "Received packets dropped by the interface, per network namespace.",
        |l| l.rx_drop,
    ),
    (
        "namespace_network_transmit",
        Some(Unit::Bytes),
        "Bytes transmitted by the interface, per network namespace.",
        |l| l.tx_bytes,
    ),
    (
        "namespace_network_transmit_packets",
        None,
        "Packets transmitted by the interface, per network namespace.",
        |l| l.tx_packets,
    ),
    (
        "namespace_network_transmit_errors",
        None,
        "Transmit errors of the interface, per network namespace.",
        |l| l.tx_errs,
    ),
    (
        "namespace_network_transmit_drops",
        None,
        "Transmitted packets dropped by the interface, per network namespace.",
        |l| l.tx_drop,
    ),
];

fn cg<'a>(
    (path, c): (&'a CgroupPath, &'a CgroupNamespaces),
) -> (CgroupLabels<'a>, &'a CgroupNamespaces) {
    (CgroupLabels::new(path, &c.labels), c)
}

/// Encodes a snapshot family by family. Public so tests and `--once` can
/// encode a snapshot they already hold.
pub fn encode_snapshot(
    snap: &NamespaceSnapshot,
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    family(
        encoder,
        "namespaces",
        "Distinct namespaces of each type among all processes.",
        None,
        MetricType::Gauge,
        snap.count_by_type()
            .into_iter()
            .map(|(t, n)| ([("type", t.as_str())], gauge(n))),
    )?;
    family(
        encoder,
        "namespace_info",
        "One series per namespace, value 1.",
        None,
        MetricType::Gauge,
        snap.namespaces
            .keys()
            .map(|(t, inode)| (([("type", t.as_str())], [("inode", *inode)]), gauge(1))),
    )?;
    family(
        encoder,
        "namespace_processes",
        "Processes in the namespace.",
        None,
        MetricType::Gauge,
        snap.namespaces
            .iter()
            .map(|((t, inode), n)| (([("type", t.as_str())], [("inode", *inode)]), gauge(*n))),
    )?;
    family(
        encoder,
        "namespace_user_root_mapped_to_host",
        "1 when uid 0 in the user namespace is uid 0 outside it (container root is real root).",
        None,
        MetricType::Gauge,
        snap.user_root_mapped_to_host
            .iter()
            .map(|(inode, m)| ([("inode", *inode)], gauge(u64::from(*m)))),
    )?;
    for (name, unit, help, get) in &NET_FAMILIES {
        family(
            encoder,
            name,
            help,
            unit.as_ref(),
            MetricType::Counter,
            snap.network.iter().flat_map(|(inode, lines)| {
                lines.iter().map(move |l| {
                    (
                        (
                            [("inode", inode.to_string())],
                            [("interface", l.interface.as_str())],
                        ),
                        ConstCounter::new(get(l)),
                    )
                })
            }),
        )?;
    }

    family(
        encoder,
        "cgroup_processes",
        "Processes in the cgroup (the most specific of the v2 and v1 resource paths).",
        None,
        MetricType::Gauge,
        snap.cgroups
            .iter()
            .map(cg)
            .map(|(l, c)| (l, gauge(c.processes))),
    )?;
    family(
        encoder,
        "cgroup_host_root_processes",
        "Processes in the cgroup whose real uid is 0 in the exporter's user namespace.",
        None,
        MetricType::Gauge,
        snap.cgroups
            .iter()
            .map(cg)
            .map(|(l, c)| (l, gauge(c.host_root_processes))),
    )?;
    family(
        encoder,
        "cgroup_namespace_info",
        "One series per namespace seen among the cgroup's processes, value 1.",
        None,
        MetricType::Gauge,
        snap.cgroups.iter().map(cg).flat_map(|(l, c)| {
            c.namespaces.iter().map(move |(t, inode)| {
                ((l, ([("type", t.as_str())], [("inode", *inode)])), gauge(1))
            })
        }),
    )?;
    family(
        encoder,
        "cgroup_host_namespace",
        "1 when every process of the cgroup shares the host's namespace of this type.",
        None,
        MetricType::Gauge,
        snap.cgroups.iter().map(cg).flat_map(|(l, c)| {
            c.host_namespace
                .iter()
                .map(move |(t, shared)| ((l, [("type", t.as_str())]), gauge(u64::from(*shared))))
        }),
    )?;

    // Self metrics: always present.
    {
        let fam = encoder.encode_descriptor(
            "cgroup_psi_exporter_namespace_scan_duration",
            "Duration of the last procfs namespace scan.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(snap.duration.as_secs_f64()).encode(fam)?;
    }
    family(
        encoder,
        "cgroup_psi_exporter_namespace_read_errors",
        "procfs reads that failed during namespace scans, by reason (vanished processes are not errors).",
        None,
        MetricType::Counter,
        snap.read_errors
            .by_reason()
            .into_iter()
            .map(|(reason, n)| ([("reason", reason)], ConstCounter::new(n))),
    )?;
    {
        let fam = encoder.encode_descriptor(
            "cgroup_psi_exporter_namespace_processes_cached",
            "Processes held in the namespace scan cache.",
            None,
            MetricType::Gauge,
        )?;
        gauge(snap.processes_cached as u64).encode(fam)?;
    }
    Ok(())
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
