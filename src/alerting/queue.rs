//! The bounded queue in front of one receiver. Pure: no I/O, no clock.
//!
//! It holds the newest state of each alert (keyed by its label set): a
//! re-sent firing alert, or a firing alert that resolves while still queued,
//! replaces the queued one instead of taking a second slot. So while a
//! receiver is away, nothing is lost as long as the number of distinct
//! alerts stays within the capacity; beyond it the oldest entry is dropped
//! and counted. Each entry keeps when it was first queued (time passed in),
//! so a storm's batching can bound how long an alert waits.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::Alert;

#[derive(Debug)]
pub struct AlertQueue {
    capacity: usize,
    next_seq: u64,
    /// Oldest first, with when the alert (any state of it) was queued.
    by_seq: BTreeMap<u64, (Alert, Instant)>,
    seq_of: HashMap<String, u64>,
}

/// What a push did, for the caller's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// The alert replaced a queued state of the same alert.
    pub replaced: bool,
    /// Entries dropped because the queue was full.
    pub dropped: u64,
}

impl AlertQueue {
    pub fn new(capacity: usize) -> AlertQueue {
        AlertQueue {
            capacity: capacity.max(1),
            next_seq: 0,
            by_seq: BTreeMap::new(),
            seq_of: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Queues the newest state of an alert at `now`. A state that replaces
    /// a queued one keeps the older time: the alert has waited since then.
    pub fn push(&mut self, alert: Alert, now: Instant) -> PushOutcome {
        let mut out = PushOutcome::default();
        let key = alert.key();
        let mut queued = now;
        if let Some(old) = self.seq_of.remove(&key) {
            if let Some((_, at)) = self.by_seq.remove(&old) {
                queued = queued.min(at);
            }
            out.replaced = true;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_seq.insert(seq, (alert, queued));
        self.seq_of.insert(key, seq);
        while self.by_seq.len() > self.capacity {
            if let Some((_, (dropped, _))) = self.by_seq.pop_first() {
                self.seq_of.remove(&dropped.key());
                out.dropped += 1;
            }
        }
        out
    }

    /// Up to `max` of the oldest entries, left in the queue until
    /// [`ack`](Self::ack)ed: a failed send loses nothing.
    pub fn peek_batch(&self, max: usize) -> Vec<(u64, Alert)> {
        self.by_seq
            .iter()
            .take(max)
            .map(|(s, (a, _))| (*s, a.clone()))
            .collect()
    }

    /// When the longest-waiting entry was queued.
    pub fn oldest(&self) -> Option<Instant> {
        self.by_seq.values().map(|(_, at)| *at).min()
    }

    /// Removes entries that were delivered (or given up on). An entry that
    /// was replaced by a newer state meanwhile has a new sequence number and
    /// stays queued, so the newer state is still sent.
    pub fn ack(&mut self, seqs: &[u64]) -> usize {
        let mut n = 0;
        for s in seqs {
            if let Some((a, _)) = self.by_seq.remove(s) {
                let key = a.key();
                if self.seq_of.get(&key) == Some(s) {
                    self.seq_of.remove(&key);
                }
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::{Alert, AlertStatus};
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant, SystemTime};

    fn alert(name: &str, status: AlertStatus) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), name.to_string());
        Alert {
            labels,
            annotations: BTreeMap::new(),
            starts_at: SystemTime::UNIX_EPOCH,
            ends_at: match status {
                AlertStatus::Firing => None,
                AlertStatus::Resolved => Some(SystemTime::UNIX_EPOCH + Duration::from_secs(9)),
            },
            generator_url: String::new(),
            contributors: Vec::new(),
        }
    }

    #[test]
    fn resolved_replaces_queued_firing_of_the_same_alert() {
        let mut q = AlertQueue::new(10);
        q.push(alert("a", AlertStatus::Firing), Instant::now());
        q.push(alert("b", AlertStatus::Firing), Instant::now());
        let out = q.push(alert("a", AlertStatus::Resolved), Instant::now());
        assert!(out.replaced);
        assert_eq!(q.len(), 2);
        let batch = q.peek_batch(10);
        assert_eq!(batch[0].1.labels["alertname"], "b");
        assert_eq!(batch[1].1.status(), AlertStatus::Resolved);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts() {
        let mut q = AlertQueue::new(2);
        assert_eq!(
            q.push(alert("a", AlertStatus::Firing), Instant::now())
                .dropped,
            0
        );
        assert_eq!(
            q.push(alert("b", AlertStatus::Firing), Instant::now())
                .dropped,
            0
        );
        assert_eq!(
            q.push(alert("c", AlertStatus::Firing), Instant::now())
                .dropped,
            1
        );
        let names: Vec<String> = q
            .peek_batch(10)
            .into_iter()
            .map(|(_, a)| a.labels["alertname"].clone())
            .collect();
        assert_eq!(names, ["b", "c"]);
        // The dropped key is forgotten: pushing it again is a fresh entry.
        assert!(
            !q.push(alert("a", AlertStatus::Firing), Instant::now())
                .replaced
        );
    }

    #[test]
    fn ack_keeps_a_state_queued_while_the_batch_was_in_flight() {
        let mut q = AlertQueue::new(10);
        q.push(alert("a", AlertStatus::Firing), Instant::now());
        let batch = q.peek_batch(10);
        // While the batch is being sent, the alert resolves.
        q.push(alert("a", AlertStatus::Resolved), Instant::now());
        let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        assert_eq!(q.ack(&seqs), 0, "the sent state was already replaced");
        assert_eq!(q.len(), 1);
        assert_eq!(q.peek_batch(1)[0].1.status(), AlertStatus::Resolved);
        let seqs: Vec<u64> = q.peek_batch(10).iter().map(|(s, _)| *s).collect();
        assert_eq!(q.ack(&seqs), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn a_replaced_state_keeps_the_time_its_alert_was_first_queued() {
        let mut q = AlertQueue::new(10);
        let t0 = Instant::now();
        q.push(alert("a", AlertStatus::Firing), t0);
        q.push(alert("b", AlertStatus::Firing), t0 + Duration::from_secs(1));
        q.push(
            alert("a", AlertStatus::Resolved),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(q.oldest(), Some(t0));
        let first: Vec<u64> = q.peek_batch(1).iter().map(|(s, _)| *s).collect();
        q.ack(&first);
        assert_eq!(q.oldest(), Some(t0), "a's resolve, queued since a fired");
        let rest: Vec<u64> = q.peek_batch(10).iter().map(|(s, _)| *s).collect();
        q.ack(&rest);
        assert_eq!(q.oldest(), None);
    }

    #[test]
    fn failed_send_leaves_the_batch_queued() {
        let mut q = AlertQueue::new(10);
        q.push(alert("a", AlertStatus::Firing), Instant::now());
        let _ = q.peek_batch(10); // send failed: no ack
        assert_eq!(q.peek_batch(10).len(), 1);
    }
}
