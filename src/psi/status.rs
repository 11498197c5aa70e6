//! What the agent shows its handle: armed triggers, firing alerts and OOM
//! watches (mainly for tests and debugging).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// One armed trigger, as seen from outside (for tests and debugging).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArmedInfo {
    pub rule: String,
    pub cgroup: String,
    /// Changes whenever the trigger is re-armed (a new fd).
    pub id: u64,
}

/// What the agent shows its handle.
#[derive(Debug, Default)]
pub(crate) struct Status {
    pub armed: BTreeMap<(String, String), u64>,
    pub oom_watched: BTreeSet<String>,
    pub firing: BTreeSet<(String, String)>,
}

pub(crate) type SharedStatus = Arc<Mutex<Status>>;

pub(crate) fn status_lock(s: &SharedStatus) -> std::sync::MutexGuard<'_, Status> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}
