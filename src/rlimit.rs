//! The descriptor budget.
//!
//! The soft `RLIMIT_NOFILE` is often 1024 (systemd's default for services,
//! kept for the sake of `select(2)` users), while the hard limit is far
//! higher (524288 under systemd, 1048576 in most container runtimes). The
//! exporter never calls `select`, and the fd cache, inotify, PSI trigger
//! and OOM watcher descriptors all come out of the soft limit, so it is
//! raised to the hard one at start, as Go's runtime does for every Go
//! program (node_exporter included) since Go 1.19. The fd cache is then
//! sized from what that leaves (`FdCache::auto_capacity`).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns the soft
/// limit before and after, or `None` when it was already at the hard limit
/// or could not be changed (logged: the exporter runs on with less).
pub fn raise_nofile_soft_limit() -> Option<(u64, u64)> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let (Some(soft), hard) = (current, maximum) else {
        return None;
    };
    if hard.is_some_and(|h| h <= soft) {
        return None;
    }
    let new = Rlimit {
        current: hard,
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, new) {
        Ok(()) => {
            let after = hard.unwrap_or(u64::MAX);
            tracing::debug!(
                before = soft,
                after,
                "raised the soft RLIMIT_NOFILE to the hard limit"
            );
            Some((soft, after))
        }
        Err(e) => {
            tracing::warn!(soft, error = %e, "could not raise the soft RLIMIT_NOFILE to the hard limit");
            None
        }
    }
}
