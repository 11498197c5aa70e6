//! Which child cgroups caused a parent's stall: when a rule fires on a
//! parent (the host, a slice, a pod), rank the leaf cgroups below it by the
//! stall time of the rule's resource over the last interval.
//!
//! Stall time comes from the `total` (µs) of each leaf's `<resource>.pressure`:
//! the delta since the previous sample, taken at arm time and at each event
//! of the parent, divided by the interval (so leaves sampled at different
//! times compare). With no recent previous sample, `avg10` (a percentage,
//! the same unit) is the weight.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::alerting::Contributor;
use crate::cgroupfs::parse::{parse_psi, PsiLine};
use crate::cgroupfs::CgroupPath;
use crate::config::{PsiKind, Resource};

/// Ranked at most this many.
pub const TOP: usize = 5;
/// Read at most this many leaves per event: a bound on the agent's work.
pub const MAX_LEAVES: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: Instant,
    total: u64,
}

/// The previous totals of the leaves below one armed parent.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    prev: BTreeMap<CgroupPath, Sample>,
}

/// One leaf's reading now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub avg10: f64,
    pub total: u64,
}

impl Samples {
    /// Takes new readings (`None` = unreadable: left out), returns the
    /// weights (stall %) and keeps the readings for next time. A previous
    /// sample older than `recent` is not used.
    pub fn update(
        &mut self,
        now: Instant,
        recent: Duration,
        readings: Vec<(CgroupPath, Option<Reading>)>,
    ) -> Vec<(CgroupPath, f64)> {
        let mut next = BTreeMap::new();
        let mut weights = Vec::new();
        for (path, r) in readings {
            let Some(r) = r else { continue };
            let w = match self.prev.get(&path) {
                Some(p)
                    if now.saturating_duration_since(p.at) <= recent
                        && now > p.at
                        && r.total >= p.total =>
                {
                    let interval_us = now.duration_since(p.at).as_micros() as f64;
                    (r.total - p.total) as f64 / interval_us * 100.0
                }
                _ => r.avg10,
            };
            weights.push((path.clone(), w));
            next.insert(
                path,
                Sample {
                    at: now,
                    total: r.total,
                },
            );
        }
        self.prev = next;
        weights
    }
}

/// The top contributors with their shares of the total weight.
pub fn rank(weights: &[(CgroupPath, f64)]) -> Vec<Contributor> {
    let sum: f64 = weights
        .iter()
        .map(|(_, w)| *w)
        .filter(|w| w.is_finite() && *w > 0.0)
        .sum();
    if sum <= 0.0 {
        return Vec::new();
    }
    let mut v: Vec<&(CgroupPath, f64)> = weights
        .iter()
        .filter(|(_, w)| w.is_finite() && *w > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter()
        .take(TOP)
        .map(|(p, w)| Contributor {
            cgroup: p.to_string(),
            share: w / sum,
        })
        .collect()
}

/// `/a/b 71%, /a/c 20%`, for the `top_contributors` annotation.
pub fn annotation(top: &[Contributor]) -> String {
    top.iter()
        .map(|c| format!("{} {:.0}%", c.cgroup, c.share * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The leaves (cgroups with no tracked child) strictly below `parent`, from
/// a sorted list of paths; at most [`MAX_LEAVES`].
pub fn leaves_below<'a>(
    parent: &CgroupPath,
    paths: impl Iterator<Item = &'a CgroupPath>,
) -> Vec<CgroupPath> {
    let below: Vec<&CgroupPath> = paths
        .filter(|p| *p != parent && p.is_within(parent))
        .collect();
    let parents: std::collections::HashSet<CgroupPath> =
        below.iter().filter_map(|p| p.parent()).collect();
    below
        .into_iter()
        .filter(|p| !parents.contains(*p))
        .take(MAX_LEAVES)
        .cloned()
        .collect()
}

/// Reads the line of `file` that matches `kind` (`full` falls back to
/// `some` when absent). `None` when unreadable or unparsable. Blocking:
/// the agent reads on the blocking pool, one batch per burst of fires.
#[allow(
    clippy::disallowed_methods,
    reason = "called only on the blocking pool (psi::triggers)"
)]
pub fn read_pressure(file: &Path, kind: PsiKind) -> Option<Reading> {
    let text = std::fs::read_to_string(file).ok()?;
    let psi = parse_psi(&text).ok()?;
    let line: PsiLine = match kind {
        PsiKind::Full => psi.full.or(psi.some)?,
        PsiKind::Some => psi.some.or(psi.full)?,
    };
    Some(Reading {
        avg10: line.avg10,
        total: line.total,
    })
}

/// The pressure file of a resource inside a cgroup directory.
pub fn pressure_file(resource: Resource) -> String {
    format!("{}.pressure", resource.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CgroupPath {
        CgroupPath::new(s)
    }

    #[test]
    fn ranking_orders_by_weight_and_gives_shares() {
        let w = vec![
            (p("/a/c"), 20.0),
            (p("/a/b"), 71.0),
            (p("/a/d"), 9.0),
            (p("/a/e"), 0.0),
        ];
        let top = rank(&w);
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].cgroup, "/a/b");
        assert!((top[0].share - 0.71).abs() < 1e-9);
        assert_eq!(annotation(&top), "/a/b 71%, /a/c 20%, /a/d 9%");
    }

    #[test]
    fn ranking_keeps_five_and_shares_of_the_whole() {
        let w: Vec<(CgroupPath, f64)> =
            (1..=8).map(|i| (p(&format!("/x/{i}")), i as f64)).collect();
        let top = rank(&w);
        assert_eq!(top.len(), TOP);
        assert_eq!(top[0].cgroup, "/x/8");
        assert!((top[0].share - 8.0 / 36.0).abs() < 1e-9);
        assert!(rank(&[(p("/x"), 0.0)]).is_empty());
    }

    #[test]
    fn deltas_over_the_interval_beat_avg10_when_recent() {
        let t0 = Instant::now();
        let recent = Duration::from_secs(6);
        let mut s = Samples::default();
        let r = |avg10, total| Some(Reading { avg10, total });
        // First sample: no previous, weights are avg10.
        let w = s.update(
            t0,
            recent,
            vec![(p("/a/b"), r(5.0, 1_000)), (p("/a/c"), r(50.0, 1_000))],
        );
        assert_eq!(w, vec![(p("/a/b"), 5.0), (p("/a/c"), 50.0)]);
        // 2 s later: /a/b stalled 1 s (50%), /a/c nothing, whatever avg10 says.
        let t1 = t0 + Duration::from_secs(2);
        let w = s.update(
            t1,
            recent,
            vec![(p("/a/b"), r(5.0, 1_001_000)), (p("/a/c"), r(50.0, 1_000))],
        );
        assert_eq!(rank(&w)[0].cgroup, "/a/b");
        assert!((w[0].1 - 50.0).abs() < 1e-6);
        // Much later: the previous sample is stale, avg10 again.
        let t2 = t1 + Duration::from_secs(60);
        let w = s.update(t2, recent, vec![(p("/a/b"), r(1.0, 9_000_000))]);
        assert_eq!(w, vec![(p("/a/b"), 1.0)]);
    }

    #[test]
    fn leaves_are_the_childless_descendants() {
        let all = [
            p("/"),
            p("/a"),
            p("/a-b"),
            p("/a/b"),
            p("/a/b/c"),
            p("/a/d"),
            p("/z"),
        ];
        let l = leaves_below(&p("/a"), all.iter());
        assert_eq!(l, vec![p("/a/b/c"), p("/a/d")]);
        let l = leaves_below(&CgroupPath::root(), all.iter());
        assert_eq!(l, vec![p("/a-b"), p("/a/b/c"), p("/a/d"), p("/z")]);
        assert!(leaves_below(&p("/z"), all.iter()).is_empty());
    }

    #[test]
    fn pressure_files_parse_with_or_without_full() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("memory.pressure");
        std::fs::write(
            &f,
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=123\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=45\n",
        )
        .expect("write");
        assert_eq!(
            read_pressure(&f, PsiKind::Some),
            Some(Reading {
                avg10: 1.5,
                total: 123
            })
        );
        assert_eq!(
            read_pressure(&f, PsiKind::Full),
            Some(Reading {
                avg10: 0.5,
                total: 45
            })
        );
        std::fs::write(&f, "some avg10=2.00 avg60=0.00 avg300=0.00 total=7\n").expect("write");
        assert_eq!(
            read_pressure(&f, PsiKind::Full),
            Some(Reading {
                avg10: 2.0,
                total: 7
            })
        );
        assert_eq!(read_pressure(&d.path().join("nope"), PsiKind::Some), None);
    }
}
