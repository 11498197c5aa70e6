//! The alert book: every alert the agent holds open, one state machine per
//! key ([`AlertState`]), and the resend schedule. Pure: no I/O, no clock of
//! its own (the caller passes `now`), no channel; the owners (triggers,
//! pressure-level watches, the `memory.events` watch) feed it, the agent
//! loop sends what it returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::alerting::Alert;
use crate::cgroupfs::CgroupPath;

use super::oom::LimitCounter;
use super::state::{AlertState, Transition};

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
pub(crate) struct Due {
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
}

impl Book {
    pub(crate) fn new(resend_interval: Duration) -> Book {
        Book {
            entries: HashMap::new(),
            resend_interval,
            next_resend: None,
        }
    }

    pub(crate) fn set_resend_interval(&mut self, every: Duration) {
        self.resend_interval = every;
    }

    /// An event for `key` at `now` / `wall`. When the alert starts firing,
    /// `build(starts_at)` makes it and it is returned, to send; an event
    /// for a firing alert only extends it.
    pub(crate) fn fire(
        &mut self,
        key: AlertKey,
        resolve_after: Duration,
        now: Instant,
        wall: SystemTime,
        build: impl FnOnce(SystemTime) -> Alert,
    ) -> Option<Alert> {
        if let Some(e) = self.entries.get_mut(&key) {
            e.state.fired(now, wall);
            return None;
        }
        let mut state = AlertState::new(resolve_after);
        let Some(Transition::Fired { starts_at }) = state.fired(now, wall) else {
            return None;
        };
        let alert = build(starts_at);
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
    pub(crate) fn update(&mut self, key: &AlertKey, f: impl FnOnce(&mut Alert)) {
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
    pub(crate) fn end_where(
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
    pub(crate) fn poll(&mut self, now: Instant) -> Due {
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

    fn key(rule: &str, path: &str) -> AlertKey {
        AlertKey::Rule(rule.into(), CgroupPath::new(path))
    }

    const RESEND: Duration = Duration::from_secs(30);
    const RESOLVE: Duration = Duration::from_secs(10);

    #[test]
    fn first_event_builds_the_alert_and_later_ones_extend_it() {
        let mut b = Book::new(RESEND);
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let a = b.fire(key("r", "/a"), RESOLVE, t0, w0, |s| alert("r", s));
        assert_eq!(a.map(|a| a.starts_at), Some(w0));
        let t1 = t0 + Duration::from_secs(5);
        let again = b.fire(key("r", "/a"), RESOLVE, t1, w0, |_| {
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
        let mut b = Book::new(RESEND);
        let t0 = Instant::now();
        let w = SystemTime::UNIX_EPOCH;
        assert_eq!(b.deadline(), None, "nothing to wake for");
        b.fire(key("r", "/a"), Duration::from_secs(600), t0, w, |s| {
            alert("r", s)
        });
        b.fire(key("r", "/b"), RESOLVE, t0, w, |s| alert("r", s));
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
        let mut b = Book::new(RESEND);
        let t0 = Instant::now();
        let w = SystemTime::UNIX_EPOCH;
        b.fire(key("r", "/a"), RESOLVE * 10, t0, w, |s| alert("r", s));
        b.update(&key("r", "/a"), |a| {
            a.annotations
                .insert("top_contributors".into(), "/a/b 100%".into());
        });
        let due = b.poll(t0 + RESEND);
        assert_eq!(due.resend[0].annotations["top_contributors"], "/a/b 100%");
    }

    #[test]
    fn keys_of_different_kinds_do_not_collide() {
        let mut b = Book::new(RESEND);
        let t0 = Instant::now();
        let w = SystemTime::UNIX_EPOCH;
        let p = CgroupPath::new("/a");
        b.fire(AlertKey::Rule("x".into(), p.clone()), RESOLVE, t0, w, |s| {
            alert("x", s)
        });
        let lvl = b.fire(
            AlertKey::Level("x".into(), p.clone()),
            RESOLVE,
            t0,
            w,
            |s| alert("x", s),
        );
        assert!(lvl.is_some());
        let lim = b.fire(AlertKey::Limit(LimitCounter::Max, p), RESOLVE, t0, w, |s| {
            alert("m", s)
        });
        assert!(lim.is_some());
        assert_eq!(b.firing().count(), 3);
        let ended = b.end_where(w, |k| matches!(k, AlertKey::Limit(..)));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1.ends_at, Some(w));
    }
}
