//! When a receiver sends its next request: the batching schedule. Pure:
//! time is passed in, so the tests below drive it with made-up arrivals.
//!
//! - A first alert after a quiet spell goes at once.
//! - A full batch ([`BATCH`] alerts) goes at once.
//! - Otherwise the next request waits [`PACING`] after the last one, so
//!   alerts arriving together share a request.
//! - A storm ([`STORM_POSTS`] requests within [`STORM_SPAN`]: every pod's
//!   rule firing at once) lasts until [`STORM_END`] passes without a
//!   request. During it a partial batch waits until its oldest alert has
//!   been queued [`STORM_HOLD`], or until the batch is full. When the kernel
//!   spreads a thousand triggers over 20 s, that is ~16 full requests plus
//!   one per hold instead of one a second, and no alert waits longer than
//!   the hold: within the 5 s from trigger to Alertmanager that issue 15
//!   asks for, with room for the request itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most this many alerts per request (as Prometheus's notifier).
pub(crate) const BATCH: usize = 64;
/// Outside a storm, requests are at least this far apart unless a full
/// batch is ready.
pub(crate) const PACING: Duration = Duration::from_millis(100);
/// This many requests within [`STORM_SPAN`] start a storm.
pub(crate) const STORM_POSTS: usize = 4;
pub(crate) const STORM_SPAN: Duration = Duration::from_secs(2);
/// In a storm, how long a partial batch may wait for more alerts, counted
/// from its oldest alert's arrival in the queue.
pub(crate) const STORM_HOLD: Duration = Duration::from_secs(3);
/// A storm ends after this long without a request.
pub(crate) const STORM_END: Duration = Duration::from_secs(10);

/// The requests a receiver sent recently, and whether that is a storm.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// Send times within the last [`STORM_SPAN`].
    recent: VecDeque<Instant>,
    last: Option<Instant>,
    storm: bool,
}

impl Pacer {
    /// When the next request may go, with `ready` alerts queued, the
    /// oldest of them since `oldest`. At or before `now` means now.
    pub(crate) fn due(&self, now: Instant, ready: usize, oldest: Instant) -> Instant {
        let Some(last) = self.last else {
            return now;
        };
        if ready >= BATCH {
            return now;
        }
        if self.in_storm(now) {
            (oldest + STORM_HOLD).max(last + PACING)
        } else {
            last + PACING
        }
    }

    /// A request goes out at `now`.
    pub(crate) fn sent(&mut self, now: Instant) {
        if !self.in_storm(now) {
            self.storm = false;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > STORM_SPAN)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() >= STORM_POSTS {
            self.storm = true;
        }
        self.last = Some(now);
    }

    /// Whether a storm is on at `now`.
    pub(crate) fn in_storm(&self, now: Instant) -> bool {
        self.storm
            && self
                .last
                .is_some_and(|l| now.saturating_duration_since(l) < STORM_END)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request as the schedule sends it: when, how many alerts, and
    /// the longest an alert in it waited in the queue.
    #[derive(Debug)]
    struct Post {
        at: Duration,
        alerts: usize,
        max_wait: Duration,
    }

    /// Runs the schedule over alerts arriving at `arrivals` (offsets from a
    /// common start, sorted), each request taking `rtt`. Time advances to
    /// the next arrival or the next due time, as the receiver task does.
    fn simulate(arrivals: &[Duration], rtt: Duration) -> Vec<Post> {
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        let mut queue: VecDeque<Duration> = VecDeque::new();
        let mut next = 0;
        let mut now = Duration::ZERO;
        let mut posts = Vec::new();
        while next < arrivals.len() || !queue.is_empty() {
            while next < arrivals.len() && arrivals[next] <= now {
                queue.push_back(arrivals[next]);
                next += 1;
            }
            let Some(oldest) = queue.front().copied() else {
                now = arrivals[next];
                continue;
            };
            let due = pacer
                .due(t0 + now, queue.len(), t0 + oldest)
                .saturating_duration_since(t0);
            if due > now {
                // Sleep until due, or until the next push wakes the task.
                now = arrivals.get(next).map_or(due, |a| due.min(*a));
                continue;
            }
            pacer.sent(t0 + now);
            let n = queue.len().min(BATCH);
            let max_wait = queue
                .iter()
                .take(n)
                .map(|a| now - *a)
                .max()
                .unwrap_or_default();
            queue.drain(..n);
            posts.push(Post {
                at: now,
                alerts: n,
                max_wait,
            });
            now += rtt;
        }
        posts
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// 1,000 triggers as the storm bench saw them when the kernel spread
    /// them: most at once, the rest trickling in over 20 s.
    fn spread_storm() -> Vec<Duration> {
        let mut a: Vec<Duration> = (0..700).map(|i| ms(2000 + i / 10)).collect();
        // 300 more, one every 66 ms, from 2.1 s to 22 s.
        a.extend((0..300).map(|i| ms(2100 + i * 66)));
        a.sort();
        a
    }

    #[test]
    fn a_storm_spread_over_20s_takes_at_most_20_requests_none_held_past_the_hold() {
        let posts = simulate(&spread_storm(), ms(20));
        let total: usize = posts.iter().map(|p| p.alerts).sum();
        assert_eq!(total, 1000);
        let worst = posts.iter().map(|p| p.max_wait).max().unwrap_or_default();
        assert!(
            posts.len() <= 20,
            "{} requests for 1,000 alerts: {posts:?}",
            posts.len()
        );
        assert!(worst <= STORM_HOLD, "an alert waited {worst:?}");
    }

    #[test]
    fn a_burst_of_1000_goes_in_full_batches_at_once() {
        let arrivals: Vec<Duration> = (0..1000).map(|i| ms(i / 10)).collect();
        let posts = simulate(&arrivals, ms(20));
        assert!(posts.len() <= 20, "{} requests: {posts:?}", posts.len());
        let worst = posts.iter().map(|p| p.max_wait).max().unwrap_or_default();
        assert!(worst <= STORM_HOLD, "an alert waited {worst:?}");
        assert!(posts.iter().filter(|p| p.alerts == BATCH).count() >= 14);
    }

    #[test]
    fn a_first_alert_goes_at_once_and_the_next_ones_100ms_later_together() {
        let posts = simulate(&[ms(0), ms(10), ms(20), ms(30)], ms(5));
        assert_eq!(posts.len(), 2, "{posts:?}");
        assert_eq!((posts[0].at, posts[0].alerts), (ms(0), 1));
        assert_eq!((posts[1].at, posts[1].alerts), (PACING, 3));
    }

    #[test]
    fn outside_a_storm_an_alert_never_waits_more_than_the_pacing() {
        // One alert a second: never a storm, each at once.
        let arrivals: Vec<Duration> = (0..30).map(|i| ms(i * 1000)).collect();
        let posts = simulate(&arrivals, ms(5));
        assert_eq!(posts.len(), 30);
        assert!(
            posts.iter().all(|p| p.max_wait == Duration::ZERO),
            "{posts:?}"
        );
    }

    #[test]
    fn a_storm_ends_after_a_quiet_spell() {
        let mut arrivals: Vec<Duration> = (0..300).map(|i| ms(i / 10)).collect();
        arrivals.push(ms(40 + 30_000));
        let posts = simulate(&arrivals, ms(5));
        let last = posts.last().expect("posts");
        assert_eq!(last.alerts, 1);
        assert_eq!(last.max_wait, Duration::ZERO, "sent at once: {posts:?}");
    }
}
