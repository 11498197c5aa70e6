//! Opt-in alerts on cgroup v2 `memory.events` `high` and `max`
//! (`alerting.memory_events`): the last signals before an OOM kill. `high`
//! counts the times the cgroup was throttled at `memory.high`, `max` the
//! times it hit `memory.max`. A cgroup that sits at its limit bumps them on
//! every reclaim pass, so an alert fires on the first increase and resolves
//! only after `hold_off` without one: one alert per episode. Pure: the v2
//! inotify watch (`oom.rs`) reports the increases.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

use tracing::info;

use crate::alerting::Alert;
use crate::cgroupfs::CgroupPath;
use crate::config::MemoryEventsConfig;

use super::oom::LimitCounter;
use super::state::{AlertState, Transition};

pub const HIGH_ALERTNAME: &str = "CgroupMemoryHigh";
pub const MAX_ALERTNAME: &str = "CgroupMemoryMax";

fn alertname(c: LimitCounter) -> &'static str {
    match c {
        LimitCounter::High => HIGH_ALERTNAME,
        LimitCounter::Max => MAX_ALERTNAME,
    }
}

#[derive(Debug)]
pub(crate) struct LimitAlerts {
    cfg: MemoryEventsConfig,
    states: HashMap<(LimitCounter, CgroupPath), (AlertState, Option<Alert>)>,
}

impl LimitAlerts {
    pub(crate) fn new(cfg: &MemoryEventsConfig) -> LimitAlerts {
        LimitAlerts {
            cfg: cfg.clone(),
            states: HashMap::new(),
        }
    }

    /// Whether any counter is alerted on (the v2 watch must run).
    pub(crate) fn enabled(&self) -> bool {
        self.cfg.high || self.cfg.max
    }

    fn wanted(&self, c: LimitCounter) -> bool {
        match c {
            LimitCounter::High => self.cfg.high,
            LimitCounter::Max => self.cfg.max,
        }
    }

    /// A counter grew. `labels`: the cgroup's identity labels (`cgroup`,
    /// `node`, path labels, `generator`). Returns the alert when it starts
    /// firing now.
    pub(crate) fn on_increase(
        &mut self,
        counter: LimitCounter,
        path: &CgroupPath,
        count: u64,
        mut labels: BTreeMap<String, String>,
        generator_url: String,
        now: Instant,
    ) -> Option<Alert> {
        if !self.wanted(counter) {
            return None;
        }
        let (state, alert) = self
            .states
            .entry((counter, path.clone()))
            .or_insert_with(|| (AlertState::new(self.cfg.hold_off), None));
        let starts_at = match state.fired(now, SystemTime::now()) {
            Some(Transition::Fired { starts_at }) => starts_at,
            _ => return None,
        };
        let name = alertname(counter);
        labels.insert("alertname".into(), name.into());
        labels.insert("resource".into(), "memory".into());
        let file = match counter {
            LimitCounter::High => "memory.high",
            LimitCounter::Max => "memory.max",
        };
        let mut annotations = BTreeMap::new();
        annotations.insert(counter.name().to_string(), count.to_string());
        annotations.insert(
            "summary".to_string(),
            format!(
                "cgroup {path} reached its {file} (memory.events {} = {count})",
                counter.name()
            ),
        );
        let a = Alert {
            labels,
            annotations,
            starts_at,
            ends_at: None,
            generator_url,
            contributors: Vec::new(),
        };
        info!(alertname = name, cgroup = %path, count, "alert firing");
        *alert = Some(a.clone());
        Some(a)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.states.values().filter_map(|(s, _)| s.deadline()).min()
    }

    /// Resolves alerts quiet for `hold_off`, forgetting their state.
    pub(crate) fn poll(&mut self, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        self.states.retain(|_, (state, alert)| {
            if let Some(Transition::Resolved { ends_at, .. }) = state.poll(now) {
                if let Some(mut a) = alert.take() {
                    a.ends_at = Some(ends_at);
                    out.push(a);
                }
                return false;
            }
            true
        });
        out
    }

    pub(crate) fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.states.values().filter_map(|(_, a)| a.as_ref())
    }

    /// The cgroup went: its alerts resolve now.
    pub(crate) fn remove(&mut self, path: &CgroupPath) -> Vec<Alert> {
        self.resolve_where(|(_, p)| p == path)
    }

    /// New settings: alerts of counters turned off resolve; a new hold-off
    /// applies to episodes that start from now on.
    pub(crate) fn reload(&mut self, cfg: &MemoryEventsConfig) -> Vec<Alert> {
        let changed = cfg.hold_off != self.cfg.hold_off;
        self.cfg = cfg.clone();
        let keep = self.cfg.clone();
        self.resolve_where(|(c, _)| {
            changed
                || !match c {
                    LimitCounter::High => keep.high,
                    LimitCounter::Max => keep.max,
                }
        })
    }

    fn resolve_where(&mut self, f: impl Fn(&(LimitCounter, CgroupPath)) -> bool) -> Vec<Alert> {
        let keys: Vec<_> = self.states.keys().filter(|k| f(k)).cloned().collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some((mut state, alert)) = self.states.remove(&k) {
                if let (Some(Transition::Resolved { ends_at, .. }), Some(mut a)) =
                    (state.force_resolve(SystemTime::now()), alert)
                {
                    a.ends_at = Some(ends_at);
                    out.push(a);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(high: bool, max: bool) -> MemoryEventsConfig {
        MemoryEventsConfig {
            high,
            max,
            hold_off: Duration::from_secs(60),
        }
    }

    #[test]
    fn one_alert_per_episode_resolved_after_the_hold_off() {
        let mut l = LimitAlerts::new(&cfg(true, false));
        let p = CgroupPath::new("/a");
        let t0 = Instant::now();
        let fire =
            |l: &mut LimitAlerts, c, t| l.on_increase(c, &p, 1, BTreeMap::new(), "u".into(), t);
        let a = fire(&mut l, LimitCounter::High, t0).expect("fires");
        assert_eq!(a.labels["alertname"], HIGH_ALERTNAME);
        assert!(fire(&mut l, LimitCounter::Max, t0).is_none(), "max is off");
        // Every reclaim pass at the limit bumps the counter: no new alert.
        for s in 1..100 {
            assert!(fire(&mut l, LimitCounter::High, t0 + Duration::from_secs(s / 2)).is_none());
        }
        assert!(
            l.poll(t0 + Duration::from_secs(60)).is_empty(),
            "still within hold_off"
        );
        let done = l.poll(t0 + Duration::from_secs(50 + 61));
        assert_eq!(done.len(), 1);
        assert!(done[0].ends_at.is_some());
        assert!(l.deadline().is_none());
        assert!(
            fire(&mut l, LimitCounter::High, t0 + Duration::from_secs(200)).is_some(),
            "a new episode"
        );
    }

    #[test]
    fn removal_and_reload_resolve() {
        let mut l = LimitAlerts::new(&cfg(true, true));
        let p = CgroupPath::new("/a");
        let now = Instant::now();
        l.on_increase(LimitCounter::Max, &p, 3, BTreeMap::new(), "u".into(), now);
        l.on_increase(LimitCounter::High, &p, 3, BTreeMap::new(), "u".into(), now);
        assert_eq!(l.firing().count(), 2);
        assert_eq!(l.reload(&cfg(true, false)).len(), 1, "max turned off");
        assert_eq!(l.remove(&p).len(), 1);
        assert_eq!(l.firing().count(), 0);
    }
}
