//! The alert book: every alert the agent holds open, one state machine per
//! key ([`AlertState`]), the resend schedule, and alert building (through
//! [`Builder`]: labels, templates, the generator URL). Pure: no I/O, no
//! clock of its own (the caller passes `now`), no channel; the owners
//! (triggers, pressure-level watches, the OOM watcher) feed it through the
//! agent loop, which sends the [`Change`]s it returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::alerting::{Alert, Contributor};
use crate::cgroupfs::CgroupPath;
use crate::config::{AlertingConfig, MemoryEventsConfig, PressureLevelRule};

use super::attribution;
use super::build::Builder;
use super::limits;
use super::oom::LimitCounter;
use super::rules::RuleRt;
use super::state::{AlertState, Transition};

/// What the owners tell the book (through the agent loop), in the order
/// they saw it.
#[derive(Debug)]
pub(crate) enum News {
    /// A PSI trigger fired. `value`: the cgroup's own avg10 for the rule's
    /// resource and kind; `contributors`: the leaves below it by stall.
    RuleFired {
        rule: Arc<RuleRt>,
        path: CgroupPath,
        value: Option<f64>,
        contributors: Vec<Contributor>,
    },
    /// The trigger is gone (cgroup removed, files hidden, rule changed):
    /// its alert resolves now.
    RuleEnded {
        rule: Arc<str>,
        path: CgroupPath,
        why: &'static str,
    },
    /// These rules are gone by name: their series go (after the
    /// `RuleEnded` of their triggers, which came before).
    RulesGone(Vec<String>),
    /// The kernel signalled a pressure level rule's level.
    LevelFired {
        rule: Arc<PressureLevelRule>,
        path: CgroupPath,
    },
    /// A level watch is gone: its alert resolves now.
    LevelEnded { rule: Arc<str>, path: CgroupPath },
    /// An OOM kill (see `oom::OomEvent::Kill`).
    OomKill {
        path: CgroupPath,
        count: u64,
        delta: u64,
        removed: bool,
    },
    /// A `memory.events` limit counter grew (v2).
    LimitGrew {
        path: CgroupPath,
        counter: LimitCounter,
        count: u64,
    },
    /// The cgroup's `memory.events` watch ended: its limit alerts resolve.
    LimitsGone(CgroupPath),
}

/// What the loop must announce, in order.
#[derive(Debug)]
pub(crate) enum Change {
    /// The alert starts firing.
    Firing(AlertKey, Alert),
    /// The alert ended (`ends_at` set); `why` is for the log.
    Resolved(AlertKey, Alert, &'static str),
    /// A firing alert, sent again on the resend schedule.
    Resend(Alert),
    /// A one-shot alert that ends by itself (an OOM kill).
    OneShot(Alert),
    /// A rule gone by name: its `psi_alerts_firing` series goes.
    RuleGone(String),
}

/// Which alert: a PSI rule's, a pressure-level rule's (by rule name) or a
/// `memory.events` limit alert, on one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum AlertKey {
    Rule(Arc<str>, CgroupPath),
    Level(Arc<str>, CgroupPath),
    Limit(LimitCounter, CgroupPath),
}

impl AlertKey {
    pub(crate) fn path(&self) -> &CgroupPath {
        match self {
            AlertKey::Rule(_, p) | AlertKey::Level(_, p) | AlertKey::Limit(_, p) => p,
        }
    }
}

#[derive(Debug)]
struct Entry {
    state: AlertState,
    /// The firing alert, as last sent.
    alert: Alert,
}

/// What [`Book::poll`] found due.
#[derive(Debug, Default)]
struct Due {
    /// Alerts quiet for their `resolve_after`, with `ends_at` set.
    pub resolved: Vec<(AlertKey, Alert)>,
    /// Firing alerts to send again (the resend interval passed).
    pub resend: Vec<Alert>,
}

#[derive(Debug)]
pub(crate) struct Book {
    entries: HashMap<AlertKey, Entry>,
    resend_interval: Duration,
    next_resend: Option<Instant>,
    builder: Builder,
    memory_events: MemoryEventsConfig,
}

impl Book {
    pub(crate) fn new(builder: Builder, alerting: &AlertingConfig) -> Book {
        Book {
            entries: HashMap::new(),
            resend_interval: alerting.resend_interval,
            next_resend: None,
            builder,
            memory_events: alerting.memory_events.clone(),
        }
    }

    pub(crate) fn builder(&self) -> &Builder {
        &self.builder
    }

    /// Takes an owner's news at `at` (monotonic, wall).
    pub(crate) fn record(&mut self, news: News, at: (Instant, SystemTime)) -> Vec<Change> {
        let wall = at.1;
        match news {
            News::RuleFired {
                rule,
                path,
                value,
                contributors,
            } => self.rule_fired(&rule, &path, value, contributors, at),
            News::RuleEnded { rule, path, why } => {
                let key = AlertKey::Rule(rule, path);
                self.end(wall, why, |k| *k == key)
            }
            News::RulesGone(names) => names.into_iter().map(Change::RuleGone).collect(),
            News::LevelFired { rule, path } => self.level_fired(&rule, &path, at),
            News::LevelEnded { rule, path } => {
                let key = AlertKey::Level(rule, path);
                self.end(wall, "watch ended", |k| *k == key)
            }
            News::OomKill {
                path,
                count,
                delta,
                removed,
            } => self.oom_kill(&path, count, delta, removed, wall),
            News::LimitGrew {
                path,
                counter,
                count,
            } => self.limit_grew(counter, &path, count, at),
            News::LimitsGone(path) => self.end(
                wall,
                "cgroup removed",
                |k| matches!(k, AlertKey::Limit(_, p) if *p == path),
            ),
        }
    }

    /// A PSI trigger fired on `path`: the alert starts, or goes on with the
    /// newest attribution (kept for re-sends).
    fn rule_fired(
        &mut self,
        rule: &RuleRt,
        path: &CgroupPath,
        value: Option<f64>,
        contributors: Vec<Contributor>,
        (now, wall): (Instant, SystemTime),
    ) -> Vec<Change> {
        let key = AlertKey::Rule(rule.rule.name.as_str().into(), path.clone());
        let c = contributors.clone();
        let fired = self.fire(key.clone(), rule.rule.resolve_after, now, wall, |b, s| {
            b.rule_alert(rule, path, s, value, c)
        });
        if fired.is_none() && !contributors.is_empty() {
            self.update(&key, |a| {
                a.annotations.insert(
                    "top_contributors".into(),
                    attribution::annotation(&contributors),
                );
                a.contributors = contributors;
            });
        }
        fired.map(|a| Change::Firing(key, a)).into_iter().collect()
    }

    /// The kernel signalled a pressure level rule's level on `path`.
    fn level_fired(
        &mut self,
        rule: &PressureLevelRule,
        path: &CgroupPath,
        (now, wall): (Instant, SystemTime),
    ) -> Vec<Change> {
        let key = AlertKey::Level(rule.name.as_str().into(), path.clone());
        let fired = self.fire(key.clone(), rule.resolve_after, now, wall, |b, s| {
            b.level_alert(rule, path, s)
        });
        fired.map(|a| Change::Firing(key, a)).into_iter().collect()
    }

    /// A `memory.events` limit counter grew to `count`: one alert per
    /// episode, resolved after `hold_off` without growth.
    fn limit_grew(
        &mut self,
        counter: LimitCounter,
        path: &CgroupPath,
        count: u64,
        (now, wall): (Instant, SystemTime),
    ) -> Vec<Change> {
        if !limits::wanted(&self.memory_events, counter) {
            return Vec::new();
        }
        let key = AlertKey::Limit(counter, path.clone());
        let hold_off = self.memory_events.hold_off;
        let fired = self.fire(key.clone(), hold_off, now, wall, |b, s| {
            b.limit_alert(counter, path, count, s)
        });
        fired.map(|a| Change::Firing(key, a)).into_iter().collect()
    }

    /// An OOM kill: a one-shot alert, not kept.
    fn oom_kill(
        &self,
        path: &CgroupPath,
        count: u64,
        delta: u64,
        removed: bool,
        wall: SystemTime,
    ) -> Vec<Change> {
        let alert = self.builder.oom_alert(path, count, delta, removed, wall);
        vec![Change::OneShot(alert)]
    }

    /// Ends the alerts whose key matches now; `why` is for the log.
    pub(crate) fn end(
        &mut self,
        wall: SystemTime,
        why: &'static str,
        f: impl Fn(&AlertKey) -> bool,
    ) -> Vec<Change> {
        self.end_where(wall, f)
            .into_iter()
            .map(|(k, a)| Change::Resolved(k, a, why))
            .collect()
    }

    /// New settings: a new builder (generator URL), resend interval and
    /// `memory_events` (limit alerts of counters turned off, or of a
    /// changed hold-off, end now).
    pub(crate) fn reload(
        &mut self,
        builder: Builder,
        alerting: &AlertingConfig,
        wall: SystemTime,
    ) -> Vec<Change> {
        let (old, new) = (self.memory_events.clone(), alerting.memory_events.clone());
        let ended = self.end(
            wall,
            "memory_events changed",
            |k| matches!(k, AlertKey::Limit(c, _) if limits::ended_by_reload(&old, &new, *c)),
        );
        self.builder = builder;
        self.resend_interval = alerting.resend_interval;
        self.memory_events = new;
        ended
    }

    /// Resolutions and re-sends due at `now`.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Change> {
        let due = self.poll(now);
        let resolved = due
            .resolved
            .into_iter()
            .map(|(k, a)| Change::Resolved(k, a, "quiet for resolve_after"));
        resolved
            .chain(due.resend.into_iter().map(Change::Resend))
            .collect()
    }

    /// An event for `key` at `now` / `wall`. When the alert starts firing,
    /// `build(starts_at)` makes it and it is returned, to send; an event
    /// for a firing alert only extends it.
    fn fire(
        &mut self,
        key: AlertKey,
        resolve_after: Duration,
        now: Instant,
        wall: SystemTime,
        build: impl FnOnce(&Builder, SystemTime) -> Alert,
    ) -> Option<Alert> {
        if let Some(e) = self.entries.get_mut(&key) {
            e.state.fired(now, wall);
            return None;
        }
        let mut state = AlertState::new(resolve_after);
        let Some(Transition::Fired { starts_at }) = state.fired(now, wall) else {
            return None;
        };
        let alert = build(&self.builder, starts_at);
        self.entries.insert(
            key,
            Entry {
                state,
                alert: alert.clone(),
            },
        );
        if self.next_resend.is_none() {
            self.next_resend = Some(now + self.resend_interval);
        }
        Some(alert)
    }

    /// Changes a firing alert in place (newer attribution for re-sends).
    fn update(&mut self, key: &AlertKey, f: impl FnOnce(&mut Alert)) {
        if let Some(e) = self.entries.get_mut(key) {
            f(&mut e.alert);
        }
    }

    #[cfg(test)]
    fn is_firing(&self, key: &AlertKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Ends the alerts whose key matches now (their cgroup, rule or
    /// setting went); returns them resolved, to send.
    fn end_where(
        &mut self,
        wall: SystemTime,
        f: impl Fn(&AlertKey) -> bool,
    ) -> Vec<(AlertKey, Alert)> {
        let keys: Vec<AlertKey> = self.entries.keys().filter(|k| f(k)).cloned().collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some(mut e) = self.entries.remove(&k) {
                if let Some(Transition::Resolved { ends_at, .. }) = e.state.force_resolve(wall) {
                    e.alert.ends_at = Some(ends_at);
                    out.push((k, e.alert));
                }
            }
        }
        out
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| e.state.deadline())
            .chain(self.next_resend)
            .min()
    }

    /// Resolves the alerts quiet for their `resolve_after` (their end is
    /// the last event plus it, not `now`), and when the resend interval
    /// passed, returns every firing alert to send again.
    fn poll(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        self.entries.retain(|k, e| match e.state.poll(now) {
            Some(Transition::Resolved { ends_at, .. }) => {
                let mut a = e.alert.clone();
                a.ends_at = Some(ends_at);
                due.resolved.push((k.clone(), a));
                false
            }
            _ => true,
        });
        if self.next_resend.is_some_and(|t| t <= now) {
            due.resend = self.firing().cloned().collect();
            self.next_resend = (!due.resend.is_empty()).then_some(now + self.resend_interval);
        }
        due
    }

    /// The alerts firing now.
    pub(crate) fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.entries.values().map(|e| &e.alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, starts_at: SystemTime) -> Alert {
        Alert {
            labels: [("alertname".to_string(), name.to_string())].into(),
            annotations: Default::default(),
            starts_at,
            ends_at: None,
            generator_url: String::new(),
            contributors: Vec::new(),
        }
    }

    fn book() -> Book {
        let alerting = AlertingConfig {
            resend_interval: RESEND,
            ..AlertingConfig::default()
        };
        Book::new(Builder::new("n1".into(), &None, None), &alerting)
    }

    fn key(rule: &str, path: &str) -> AlertKey {
        AlertKey::Rule(rule.into(), CgroupPath::new(path))
    }

    const RESEND: Duration = Duration::from_secs(30);
    const RESOLVE: Duration = Duration::from_secs(10);

    #[test]
    fn first_event_builds_the_alert_and_later_ones_extend_it() {
        let mut b = book();
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let a = b.fire(key("r", "/a"), RESOLVE, t0, w0, |_, s| alert("r", s));
        assert_eq!(a.map(|a| a.starts_at), Some(w0));
        let t1 = t0 + Duration::from_secs(5);
        let again = b.fire(key("r", "/a"), RESOLVE, t1, w0, |_, _| {
            panic!("no new alert while firing")
        });
        assert!(again.is_none());
        assert!(b.is_firing(&key("r", "/a")));
        // Resolves at the last event + resolve_after, with that end time.
        assert!(b
            .poll(t1 + RESOLVE - Duration::from_millis(1))
            .resolved
            .is_empty());
        let due = b.poll(t1 + RESOLVE);
        assert_eq!(due.resolved.len(), 1);
        assert_eq!(due.resolved[0].1.ends_at, Some(w0 + RESOLVE));
        assert!(!b.is_firing(&key("r", "/a")));
    }

    #[test]
    fn firing_alerts_are_resent_on_schedule_and_the_schedule_stops_when_none_fire() {
        let mut b = book();
        let t0 = Instant::now();
        let w = SystemTime::UNIX_EPOCH;
        assert_eq!(b.deadline(), None, "nothing to wake for");
        b.fire(key("r", "/a"), Duration::from_secs(600), t0, w, |_, s| {
            alert("r", s)
        });
        b.fire(key("r", "/b"), RESOLVE, t0, w, |_, s| alert("r", s));
        assert_eq!(b.deadline(), Some(t0 + RESOLVE));
        let due = b.poll(t0 + RESOLVE);
        assert_eq!(due.resolved.len(), 1);
        assert!(due.resend.is_empty());
        assert_eq!(b.deadline(), Some(t0 + RESEND));
        let due = b.poll(t0 + RESEND);
        assert_eq!(due.resend.len(), 1);
        assert_eq!(b.deadline(), Some(t0 + RESEND * 2));
        assert_eq!(b.end_where(w, |k| k.path().as_str() == "/a").len(), 1);
        assert!(b.poll(t0 + RESEND * 2).resend.is_empty());
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn update_changes_the_alert_that_is_resent() {
        let mut b = book();
        let t0 = Instant::now();
        let w = SystemTime::UNIX_EPOCH;
        b.fire(key("r", "/a"), RESOLVE * 10, t0, w, |_, s| alert("r", s));
        b.update(&key("r", "/a"), |a| {
            a.annotations
                .insert("top_contributors".into(), "/a/b 100%".into());
        });
        let due = b.poll(t0 + RESEND);
        assert_eq!(due.resend[0].annotations["top_contributors"], "/a/b 100%");
    }

    #[test]
    fn keys_of_different_kinds_do_not_collide() {
        let mut b = book();
        let t0 = Instant::now();
        let w = SystemTime::UNIX_EPOCH;
        let p = CgroupPath::new("/a");
        b.fire(
            AlertKey::Rule("x".into(), p.clone()),
            RESOLVE,
            t0,
            w,
            |_, s| alert("x", s),
        );
        let lvl = b.fire(
            AlertKey::Level("x".into(), p.clone()),
            RESOLVE,
            t0,
            w,
            |_, s| alert("x", s),
        );
        assert!(lvl.is_some());
        let lim = b.fire(
            AlertKey::Limit(LimitCounter::Max, p),
            RESOLVE,
            t0,
            w,
            |_, s| alert("m", s),
        );
        assert!(lim.is_some());
        assert_eq!(b.firing().count(), 3);
        let ended = b.end_where(w, |k| matches!(k, AlertKey::Limit(..)));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1.ends_at, Some(w));
    }

    #[test]
    fn limit_alerts_fire_once_per_episode_and_only_for_wanted_counters() {
        let mut alerting = AlertingConfig::default();
        alerting.memory_events.high = true;
        alerting.memory_events.hold_off = Duration::from_secs(60);
        let mut b = Book::new(Builder::new("n1".into(), &None, None), &alerting);
        let p = CgroupPath::new("/a");
        let t0 = Instant::now();
        let w = SystemTime::UNIX_EPOCH;
        let first = b.limit_grew(LimitCounter::High, &p, 1, (t0, w));
        let Some(Change::Firing(_, a)) = first.first() else {
            panic!("{first:?}")
        };
        assert_eq!(a.labels["alertname"], "CgroupMemoryHigh");
        assert_eq!(a.labels["generator"], "cgroup-psi-exporter");
        assert!(
            b.limit_grew(LimitCounter::Max, &p, 1, (t0, w)).is_empty(),
            "max is off"
        );
        // Every reclaim pass at the limit bumps the counter: no new alert.
        for s in 1..100 {
            let t = t0 + Duration::from_secs(s / 2);
            assert!(b
                .limit_grew(LimitCounter::High, &p, 1 + s, (t, w))
                .is_empty());
        }
        let due = b.tick(t0 + Duration::from_secs(60));
        assert!(
            matches!(&due[..], [Change::Resend(_)]),
            "within hold_off, only re-sent: {due:?}"
        );
        let done = b.tick(t0 + Duration::from_secs(49 + 60));
        assert!(matches!(&done[..], [Change::Resolved(..)]), "{done:?}");
        // Turning the counter off ends a firing alert at once.
        b.limit_grew(
            LimitCounter::High,
            &p,
            200,
            (t0 + Duration::from_secs(200), w),
        );
        let ended = b.reload(
            Builder::new("n1".into(), &None, None),
            &AlertingConfig::default(),
            w,
        );
        assert!(matches!(&ended[..], [Change::Resolved(..)]), "{ended:?}");
    }

    #[test]
    fn oom_kills_are_one_shot_and_not_resent() {
        let mut b = book();
        let w = SystemTime::UNIX_EPOCH;
        let c = b.oom_kill(&CgroupPath::new("/a"), 3, 1, false, w);
        let [Change::OneShot(a)] = &c[..] else {
            panic!("{c:?}")
        };
        assert_eq!(a.ends_at, Some(w + super::super::build::OOM_ALERT_TTL));
        assert_eq!(b.deadline(), None);
        assert!(b.tick(Instant::now() + RESEND).is_empty());
    }
}
