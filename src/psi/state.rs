//! The alert state of one (rule, cgroup): a pure state machine. Time is
//! passed in, so tests drive it with a fake clock.
//!
//! ```text
//! Inactive --fired--> Firing --(no event for resolve_after)--> Inactive (resolved)
//!                       ^  |
//!                       +--+ fired: extends the alert
//! ```
//! A trigger fires at most once per window while pressure lasts, so "no
//! event for `resolve_after`" means pressure stayed under the threshold for
//! that long (`resolve_after` should be a few windows).

use std::time::{Duration, Instant, SystemTime};

/// A change the caller must announce to the receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The alert starts firing at `starts_at`.
    Fired { starts_at: SystemTime },
    /// The alert that started at `starts_at` ended at `ends_at`.
    Resolved {
        starts_at: SystemTime,
        ends_at: SystemTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Inactive,
    Firing {
        starts_at: SystemTime,
        last_event: Instant,
        last_event_wall: SystemTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertState {
    phase: Phase,
    resolve_after: Duration,
}

impl AlertState {
    pub fn new(resolve_after: Duration) -> AlertState {
        AlertState {
            phase: Phase::Inactive,
            resolve_after,
        }
    }

    pub fn is_firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. })
    }

    /// When the alert started, if firing.
    pub fn starts_at(&self) -> Option<SystemTime> {
        match self.phase {
            Phase::Firing { starts_at, .. } => Some(starts_at),
            Phase::Inactive => None,
        }
    }

    /// A trigger event at `now` (monotonic) / `wall` (for the payload).
    pub fn fired(&mut self, now: Instant, wall: SystemTime) -> Option<Transition> {
        match &mut self.phase {
            Phase::Inactive => {
                self.phase = Phase::Firing {
                    starts_at: wall,
                    last_event: now,
                    last_event_wall: wall,
                };
                Some(Transition::Fired { starts_at: wall })
            }
            Phase::Firing {
                last_event,
                last_event_wall,
                ..
            } => {
                *last_event = now;
                *last_event_wall = wall;
                None
            }
        }
    }

    /// Resolves the alert when `resolve_after` has passed since the last
    /// event. The end time is the last event plus `resolve_after`, not the
    /// moment this ran, so a late tick does not stretch the alert.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Firing {
                starts_at,
                last_event,
                last_event_wall,
            } if now.saturating_duration_since(last_event) >= self.resolve_after => {
                self.phase = Phase::Inactive;
                Some(Transition::Resolved {
                    starts_at,
                    ends_at: last_event_wall + self.resolve_after,
                })
            }
            _ => None,
        }
    }

    /// Ends a firing alert now: the cgroup went away or the rule was removed.
    pub fn force_resolve(&mut self, wall: SystemTime) -> Option<Transition> {
        match self.phase {
            Phase::Firing { starts_at, .. } => {
                self.phase = Phase::Inactive;
                Some(Transition::Resolved {
                    starts_at,
                    ends_at: wall,
                })
            }
            Phase::Inactive => None,
        }
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Firing { last_event, .. } => Some(last_event + self.resolve_after),
            Phase::Inactive => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOLVE: Duration = Duration::from_secs(30);

    #[test]
    fn first_event_fires_and_later_events_extend() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut s = AlertState::new(RESOLVE);
        assert!(!s.is_firing());
        assert_eq!(s.fired(t0, w0), Some(Transition::Fired { starts_at: w0 }));
        assert!(s.is_firing());
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(s.fired(t1, w0 + Duration::from_secs(2)), None);
        assert_eq!(s.deadline(), Some(t1 + RESOLVE));
        assert_eq!(s.starts_at(), Some(w0));
    }

    #[test]
    fn quiet_for_resolve_after_resolves_at_last_event_plus_resolve_after() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut s = AlertState::new(RESOLVE);
        s.fired(t0, w0);
        s.fired(t0 + Duration::from_secs(4), w0 + Duration::from_secs(4));
        assert_eq!(s.poll(t0 + Duration::from_secs(33)), None, "33s < 4s + 30s");
        assert_eq!(
            s.poll(t0 + Duration::from_secs(40)),
            Some(Transition::Resolved {
                starts_at: w0,
                ends_at: w0 + Duration::from_secs(34)
            })
        );
        assert!(!s.is_firing());
        assert_eq!(s.deadline(), None);
        assert_eq!(s.poll(t0 + Duration::from_secs(100)), None);
    }

    #[test]
    fn refire_after_resolve_starts_a_new_alert() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        let mut s = AlertState::new(RESOLVE);
        s.fired(t0, w0);
        assert!(s.poll(t0 + RESOLVE).is_some());
        let w1 = w0 + Duration::from_secs(60);
        assert_eq!(
            s.fired(t0 + Duration::from_secs(60), w1),
            Some(Transition::Fired { starts_at: w1 })
        );
    }

    #[test]
    fn force_resolve_only_ends_firing_alerts() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        let mut s = AlertState::new(RESOLVE);
        assert_eq!(s.force_resolve(w0), None);
        s.fired(t0, w0);
        let w1 = w0 + Duration::from_secs(3);
        assert_eq!(
            s.force_resolve(w1),
            Some(Transition::Resolved {
                starts_at: w0,
                ends_at: w1
            })
        );
    }
}
