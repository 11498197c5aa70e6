//! Opt-in alerts on cgroup v2 `memory.events` `high` and `max`
//! (`alerting.memory_events`): the last signals before an OOM kill. `high`
//! counts the times the cgroup was throttled at `memory.high`, `max` the
//! times it hit `memory.max`. A cgroup that sits at its limit bumps them on
//! every reclaim pass, so an alert fires on the first increase and resolves
//! only after `hold_off` without one: one alert per episode (the alert
//! book's state machine, with `hold_off` as its quiet time). Pure: the v2
//! inotify watch (`oom.rs`, `oom_watch.rs`) reports the increases.

use crate::config::MemoryEventsConfig;

use super::oom::LimitCounter;

/// Whether `cfg` alerts on `counter`.
pub(crate) fn wanted(cfg: &MemoryEventsConfig, counter: LimitCounter) -> bool {
    match counter {
        LimitCounter::High => cfg.high,
        LimitCounter::Max => cfg.max,
    }
}

/// Whether a firing alert on `counter` ends when the settings go from `old`
/// to `new`: its counter was turned off, or the hold-off changed (a new
/// hold-off applies to episodes that start from now on).
pub(crate) fn ended_by_reload(
    old: &MemoryEventsConfig,
    new: &MemoryEventsConfig,
    counter: LimitCounter,
) -> bool {
    old.hold_off != new.hold_off || !wanted(new, counter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(high: bool, max: bool, hold_off: u64) -> MemoryEventsConfig {
        MemoryEventsConfig {
            high,
            max,
            hold_off: Duration::from_secs(hold_off),
        }
    }

    #[test]
    fn counters_turned_off_or_a_new_hold_off_end_alerts() {
        let on = cfg(true, true, 60);
        assert!(wanted(&on, LimitCounter::High));
        assert!(!wanted(&cfg(true, false, 60), LimitCounter::Max));
        assert!(!ended_by_reload(&on, &on, LimitCounter::High));
        assert!(ended_by_reload(
            &on,
            &cfg(true, false, 60),
            LimitCounter::Max
        ));
        assert!(!ended_by_reload(
            &on,
            &cfg(true, false, 60),
            LimitCounter::High
        ));
        assert!(ended_by_reload(
            &on,
            &cfg(true, true, 30),
            LimitCounter::High
        ));
    }
}
