//! OOM-kill notifications, the moment they happen.
//!
//! - cgroup v1 (and hybrid, where the memory controller is v1): an eventfd
//!   registered through `cgroup.event_control` as `"<eventfd> <fd of
//!   memory.oom_control>"` wakes us on each OOM of the cgroup; the new
//!   `oom_kill` count is then read from `memory.oom_control`.
//!   <https://docs.kernel.org/admin-guide/cgroup-v1/memory.html#oom-control>
//! - cgroup v2: inotify `IN_MODIFY` on `memory.events` (the kernel calls
//!   `cgroup_file_notify` when a counter changes); alert when `oom_kill`
//!   went up. <https://docs.kernel.org/admin-guide/cgroup-v2.html#memory-interface-files>

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotify::{Inotify, StreamExt, WatchDescriptor, WatchMask};
use rustix::event::epoll;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cgroupfs::parse::{parse_memory_events, parse_oom_control};
use crate::cgroupfs::CgroupPath;

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomEvent {
    /// `oom_kill` went from `count - delta` to `count`. `removed`: the
    /// cgroup went before the counter could be read; `delta` is then the
    /// number of OOM notifications, and `count` the last count read plus it.
    Kill {
        count: u64,
        delta: u64,
        removed: bool,
    },
    /// v2 `memory.events` `high` (throttled at `memory.high`) or `max`
    /// (hit `memory.max`) went up by `delta` to `count`.
    Limit {
        counter: LimitCounter,
        count: u64,
        delta: u64,
    },
    /// The cgroup was removed; the watcher has stopped.
    Gone,
    /// The watcher failed and has stopped.
    Failed(String),
}

/// Which `memory.events` limit counter grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitCounter {
    High,
    Max,
}

impl LimitCounter {
    pub fn name(self) -> &'static str {
        match self {
            LimitCounter::High => "high",
            LimitCounter::Max => "max",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("{path}: cgroup vanished")]
    Vanished { path: PathBuf },
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no oom_kill counter (kernel before 4.13?)")]
    NoCounter { path: PathBuf },
}

impl OomError {
    fn from_io(path: &Path, op: &'static str, e: io::Error) -> OomError {
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) => OomError::Vanished {
                path: path.to_path_buf(),
            },
            _ => OomError::Io {
                path: path.to_path_buf(),
                op,
                source: e,
            },
        }
    }
}

/// Reads the `oom_kill` count from v1 `memory.oom_control`.
#[allow(
    clippy::disallowed_methods,
    reason = "called only on the blocking pool (see `blocking`)"
)]
pub fn read_oom_kill_v1(file: &Path) -> Result<u64, OomError> {
    let text = std::fs::read_to_string(file).map_err(|e| OomError::from_io(file, "read", e))?;
    parse_oom_control(&text)
        .ok()
        .and_then(|o| o.oom_kill)
        .ok_or_else(|| OomError::NoCounter {
            path: file.to_path_buf(),
        })
}

/// Reads the `oom_kill` count from v2 `memory.events`.
#[allow(
    clippy::disallowed_methods,
    reason = "called only on the blocking pool (see `blocking`)"
)]
pub fn read_oom_kill_v2(file: &Path) -> Result<u64, OomError> {
    let text = std::fs::read_to_string(file).map_err(|e| OomError::from_io(file, "read", e))?;
    parse_memory_events(&text)
        .ok()
        .and_then(|o| o.oom_kill)
        .ok_or_else(|| OomError::NoCounter {
            path: file.to_path_buf(),
        })
}

// === v1: eventfd + cgroup.event_control ===

/// A v1 OOM watch on one cgroup directory of the memory hierarchy.
/// Dropping it closes the eventfd, which makes the kernel drop the event.
///
/// The eventfd is not registered with the runtime: an idle watch sits in
/// the watcher's [`EventfdSet`], and only a watch whose eventfd fired runs
/// (in a short task of its own, see [`OomV1::woken`]). A task and a
/// runtime registration per watch cost ~0.8 KiB, ~1.7 MiB on a hybrid
/// host with 2,000 memory cgroups; an idle watch is now this struct.
#[derive(Debug)]
pub struct OomV1 {
    efd: File,
    oom_control: PathBuf,
    last: u64,
    /// eventfd signals not yet explained by a counted kill.
    pending: u64,
    gone: bool,
}

/// How long to wait, once the cgroup has gone, for the signal the kernel
/// sends every registered eventfd as the cgroup goes offline.
const REMOVAL_SIGNAL_WAIT: Duration = Duration::from_secs(1);
/// How often to look for that signal meanwhile.
const REMOVAL_SIGNAL_POLL: Duration = Duration::from_millis(20);

impl OomV1 {
    /// Registers for OOM notifications of the cgroup at `dir`. Blocking
    /// (reads, opens and writes cgroup files): call it on the blocking
    /// pool.
    #[allow(
        clippy::disallowed_methods,
        reason = "called only on the blocking pool (psi::oom_watch)"
    )]
    pub fn arm(dir: &Path) -> Result<OomV1, OomError> {
        let oom_control = dir.join("memory.oom_control");
        let control = dir.join("cgroup.event_control");
        let last = read_oom_kill_v1(&oom_control)?;
        let ocfd =
            File::open(&oom_control).map_err(|e| OomError::from_io(&oom_control, "open", e))?;
        let efd = new_eventfd().map_err(|e| OomError::from_io(dir, "eventfd", e))?;
        let mut ctl = std::fs::OpenOptions::new()
            .write(true)
            .open(&control)
            .map_err(|e| OomError::from_io(&control, "open", e))?;
        let line = format!("{} {}", efd.as_raw_fd(), ocfd.as_raw_fd());
        ctl.write_all(line.as_bytes())
            .map_err(|e| OomError::from_io(&control, "write", e))?;
        // The kernel holds its own references now; ours to the control
        // files can go.
        drop(ocfd);
        drop(ctl);
        Ok(OomV1 {
            efd: File::from(efd),
            oom_control,
            last,
            pending: 0,
            gone: false,
        })
    }

    /// Reads the eventfd: the number of signals since the last read (0
    /// when there were none).
    fn take_signals(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        match (&self.efd).read(&mut buf) {
            Ok(8) => Ok(u64::from_ne_bytes(buf)),
            Ok(_) => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// After the eventfd fired: the kill it announced, the cgroup's
    /// removal, or `None` (an OOM without a kill, or nothing to read):
    /// the watch goes back to waiting. After a `Kill` with
    /// `removed: true` the watch is over ([`OomV1::is_over`]).
    pub async fn woken(&mut self) -> Option<OomEvent> {
        if self.gone {
            return Some(OomEvent::Gone);
        }
        match self.take_signals() {
            Ok(0) => None,
            Ok(n) => {
                self.pending += n;
                self.after_signal().await
            }
            Err(e) => Some(OomEvent::Failed(e.to_string())),
        }
    }

    /// The eventfd, for an [`EventfdSet`].
    pub fn eventfd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }

    /// The cgroup has gone and its last signals were counted.
    pub fn is_over(&self) -> bool {
        self.gone
    }

    /// After a signal: the kill it announced, the cgroup's removal, or
    /// `None` (an OOM without a kill: wait for the next signal).
    async fn after_signal(&mut self) -> Option<OomEvent> {
        // Kernel quirk: the event is signalled when the cgroup enters
        // OOM, before the victim is killed and counted; and rmdir also
        // signals it. Re-read the counter a few times to tell a kill
        // from an OOM without kill (oom_kill_disable) and from removal.
        for delay_ms in [0u64, 20, 100, 500] {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            let file = self.oom_control.clone();
            match blocking(move || read_oom_kill_v1(&file)).await {
                Ok(n) if n > self.last => {
                    let delta = n - self.last;
                    self.last = n;
                    self.pending = 0;
                    return Some(OomEvent::Kill {
                        count: n,
                        delta,
                        removed: false,
                    });
                }
                Ok(_) => {}
                Err(OomError::Vanished { .. }) => return Some(self.vanished().await),
                Err(e) => return Some(OomEvent::Failed(e.to_string())),
            }
        }
        None
    }

    /// The cgroup went (a container cleaned up right after its OOM kill).
    /// Its counter cannot be read any more, but the signals can be counted:
    /// the kernel signals once per OOM and once more as the cgroup goes
    /// offline, so every signal but that last one is an OOM that was not
    /// counted yet.
    async fn vanished(&mut self) -> OomEvent {
        self.gone = true;
        // The removal's own signal may still be on its way (offlining runs
        // from a work queue): look for it for a moment. Rare enough (a
        // cgroup removed after an OOM) to poll rather than register.
        let until = tokio::time::Instant::now() + REMOVAL_SIGNAL_WAIT;
        loop {
            match self.take_signals() {
                Ok(0) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(REMOVAL_SIGNAL_POLL).await;
                }
                Ok(n) => {
                    self.pending += n;
                    break;
                }
                Err(_) => break,
            }
        }
        self.pending += self.take_signals().unwrap_or(0);
        let ooms = self.pending.saturating_sub(1);
        self.pending = 0;
        if ooms == 0 {
            return OomEvent::Gone;
        }
        self.last += ooms;
        OomEvent::Kill {
            count: self.last,
            delta: ooms,
            removed: true,
        }
    }
}

/// The idle v1 OOM eventfds in one epoll set, the only one of them the
/// runtime polls. Each is armed one-shot: once it fires it stays quiet
/// until it is armed again, while its watch reads what happened.
pub struct EventfdSet {
    ep: AsyncFd<File>,
}

impl EventfdSet {
    /// Inside the runtime (the epoll fd is registered with it).
    pub fn new() -> io::Result<EventfdSet> {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let ep = super::trigger::register(File::from(ep), Interest::READABLE)?;
        Ok(EventfdSet { ep })
    }

    /// Adds an eventfd (`again`: arms it again after it fired), reported
    /// as `id` when it fires.
    pub fn arm(&self, efd: BorrowedFd<'_>, id: u64, again: bool) -> io::Result<()> {
        let ctl = if again { epoll::modify } else { epoll::add };
        ctl(
            self.ep.get_ref(),
            efd,
            epoll::EventData::new_u64(id),
            epoll::EventFlags::IN | epoll::EventFlags::ONESHOT,
        )?;
        Ok(())
    }

    /// Takes an eventfd out (closing it would too; this says so).
    pub fn remove(&self, efd: BorrowedFd<'_>) {
        let _ = epoll::delete(self.ep.get_ref(), efd);
    }

    /// Waits until eventfds fire; their ids.
    pub async fn fired(&self) -> io::Result<Vec<u64>> {
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            let mut guard = self.ep.readable().await?;
            // Not kept across the await: `epoll::Event` holds a union with
            // a pointer, which is not `Send`.
            let ids: Vec<u64> = {
                let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
                epoll::wait(
                    guard.get_inner(),
                    rustix::buffer::spare_capacity(&mut events),
                    Some(&zero),
                )?;
                events.iter().map(|e| e.data.u64()).collect()
            };
            if ids.is_empty() {
                guard.clear_ready();
                continue;
            }
            return Ok(ids);
        }
    }
}

/// Runs a counter read on the blocking pool: async code here waits only
/// on registered fds (the eventfd, the inotify fd).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OomError> + Send + 'static,
) -> Result<T, OomError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(OomError::Io {
            path: PathBuf::new(),
            op: "spawn_blocking",
            source: io::Error::other(e),
        })
    })
}

/// A new non-blocking, close-on-exec eventfd.
fn new_eventfd() -> io::Result<OwnedFd> {
    use rustix::event::{eventfd, EventfdFlags};
    Ok(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?)
}

// === v2: inotify on memory.events ===

#[derive(Debug)]
enum Cmd {
    Add(CgroupPath, PathBuf),
    Remove(CgroupPath),
    Retire(CgroupPath),
}

/// How long the watch of a removed cgroup's `memory.events` stays after the
/// registry saw the cgroup go: an OOM kill just before the removal (a
/// container cleaned up after it) is still reported, and then the watch is
/// removed by us.
///
/// Kernel quirk: Linux 6.1 sends no `IN_IGNORED` for a cgroup file when its
/// cgroup is removed (the watch pins the kernfs node; seen in the pure-v2
/// VM, no event within 15 s of the rmdir), so waiting for the kernel to end
/// the watch would keep one inotify watch per removed cgroup forever: on a
/// node with pod churn, a leak up to `max_user_watches`.
pub const RETIRE_GRACE: Duration = Duration::from_secs(10);

/// One inotify instance watching `memory.events` of every tracked cgroup.
#[derive(Debug)]
pub struct OomV2 {
    cmd: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

impl OomV2 {
    /// Starts the watcher; events go to `out`.
    pub fn spawn(out: mpsc::UnboundedSender<(CgroupPath, OomEvent)>) -> io::Result<OomV2> {
        Self::spawn_with_grace(out, RETIRE_GRACE)
    }

    /// As [`OomV2::spawn`], with the grace a retired watch keeps.
    pub fn spawn_with_grace(
        out: mpsc::UnboundedSender<(CgroupPath, OomEvent)>,
        grace: Duration,
    ) -> io::Result<OomV2> {
        let inotify = Inotify::init()?;
        let stream = inotify.into_event_stream(vec![0u8; 4096])?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_v2(stream, rx, out, grace));
        Ok(OomV2 { cmd: tx, task })
    }

    /// The cgroup is gone from the registry: its watch keeps reporting for
    /// the grace, then is removed and reports [`OomEvent::Gone`] (unless the
    /// kernel ended it first).
    pub fn retire(&self, path: CgroupPath) {
        let _ = self.cmd.send(Cmd::Retire(path));
    }

    /// Watches `memory_events` (the cgroup's `memory.events`).
    pub fn add(&self, path: CgroupPath, memory_events: PathBuf) {
        let _ = self.cmd.send(Cmd::Add(path, memory_events));
    }

    pub fn remove(&self, path: CgroupPath) {
        let _ = self.cmd.send(Cmd::Remove(path));
    }
}

impl Drop for OomV2 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Watched {
    path: CgroupPath,
    file: PathBuf,
    last: Counts,
}

/// The `memory.events` counters the v2 watch reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    oom_kill: u64,
    high: u64,
    max: u64,
}

#[allow(
    clippy::disallowed_methods,
    reason = "called only on the blocking pool (see `blocking`)"
)]
fn read_counts_v2(file: &Path) -> Result<Counts, OomError> {
    let text = std::fs::read_to_string(file).map_err(|e| OomError::from_io(file, "read", e))?;
    let ev = parse_memory_events(&text).map_err(|_| OomError::NoCounter {
        path: file.to_path_buf(),
    })?;
    Ok(Counts {
        oom_kill: ev.oom_kill.ok_or_else(|| OomError::NoCounter {
            path: file.to_path_buf(),
        })?,
        high: ev.high.unwrap_or(0),
        max: ev.max.unwrap_or(0),
    })
}

async fn run_v2(
    mut stream: inotify::EventStream<Vec<u8>>,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
    out: mpsc::UnboundedSender<(CgroupPath, OomEvent)>,
    grace: Duration,
) {
    let mut watches = stream.watches();
    let mut by_wd: HashMap<WatchDescriptor, Watched> = HashMap::new();
    let mut by_path: HashMap<CgroupPath, WatchDescriptor> = HashMap::new();
    // Retired watches in the order they were retired: same grace for all,
    // so the front is always the next to go.
    let mut retiring: VecDeque<(tokio::time::Instant, CgroupPath, WatchDescriptor)> =
        VecDeque::new();
    loop {
        let next_retire = retiring.front().map(|r| r.0);
        tokio::select! {
            _ = async {
                match next_retire {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = tokio::time::Instant::now();
                while retiring.front().is_some_and(|r| r.0 <= now) {
                    let Some((_, path, wd)) = retiring.pop_front() else { break };
                    // Only if the watch is still the cgroup's: one made
                    // again under the same path has a watch of its own.
                    if by_path.get(&path) == Some(&wd) && by_wd.remove(&wd).is_some() {
                        by_path.remove(&path);
                        let _ = watches.remove(wd);
                        let _ = out.send((path, OomEvent::Gone));
                    }
                }
            }
            c = cmd.recv() => match c {
                None => return,
                Some(Cmd::Add(path, file)) => {
                    // The first reading and the watch (a path lookup in
                    // cgroupfs) both run on the blocking pool.
                    let (f, mut w) = (file.clone(), watches.clone());
                    let armed = blocking(move || {
                        let last = read_counts_v2(&f)?;
                        Ok((last, w.add(&f, WatchMask::MODIFY)))
                    });
                    let (last, added) = match armed.await {
                        Ok(armed) => armed,
                        Err(e) => {
                            debug!(cgroup = %path, error = %e, "no OOM watch");
                            continue;
                        }
                    };
                    match added {
                        Ok(wd) => {
                            by_path.insert(path.clone(), wd.clone());
                            by_wd.insert(wd, Watched { path, file, last });
                        }
                        Err(e) => warn!(cgroup = %path, error = %e, "cannot watch memory.events"),
                    }
                }
                Some(Cmd::Remove(path)) => {
                    if let Some(wd) = by_path.remove(&path) {
                        by_wd.remove(&wd);
                        // Fails when the kernel already dropped the watch (rmdir).
                        let _ = watches.remove(wd);
                    }
                }
                Some(Cmd::Retire(path)) => {
                    if let Some(wd) = by_path.get(&path) {
                        retiring.push_back((tokio::time::Instant::now() + grace, path, wd.clone()));
                    }
                }
            },
            ev = stream.next() => match ev {
                None => return,
                Some(Err(e)) => {
                    warn!(error = %e, "inotify read failed: v2 OOM watch stops");
                    return;
                }
                Some(Ok(ev)) => {
                    if ev.mask.contains(inotify::EventMask::IGNORED) {
                        // A cgroup made again under the same path has a
                        // watch of its own: only the current one reports.
                        if let Some(w) = by_wd.remove(&ev.wd) {
                            if by_path.get(&w.path) == Some(&ev.wd) {
                                by_path.remove(&w.path);
                                let _ = out.send((w.path, OomEvent::Gone));
                            }
                        }
                        continue;
                    }
                    let Some(w) = by_wd.get(&ev.wd) else { continue };
                    let f = w.file.clone();
                    let read = blocking(move || read_counts_v2(&f)).await;
                    // The watch may have gone while the read ran.
                    let Some(w) = by_wd.get_mut(&ev.wd) else { continue };
                    match read {
                        Ok(n) => {
                            for ev in changes(w.last, n) {
                                let _ = out.send((w.path.clone(), ev));
                            }
                            w.last = n;
                        }
                        Err(e) => debug!(cgroup = %w.path, error = %e, "memory.events unreadable"),
                    }
                }
            },
        }
    }
}

/// The events between two readings of `memory.events`: the OOM kill
/// first (the most urgent), then `max`, then `high`.
fn changes(old: Counts, new: Counts) -> Vec<OomEvent> {
    let mut out = Vec::new();
    if new.oom_kill > old.oom_kill {
        out.push(OomEvent::Kill {
            count: new.oom_kill,
            delta: new.oom_kill - old.oom_kill,
            removed: false,
        });
    }
    for (counter, o, n) in [
        (LimitCounter::Max, old.max, new.max),
        (LimitCounter::High, old.high, new.high),
    ] {
        if n > o {
            out.push(OomEvent::Limit {
                counter,
                count: n,
                delta: n - o,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(efd: &OwnedFd) {
        rustix::io::write(efd, &1u64.to_ne_bytes()).expect("write the eventfd");
    }

    /// The set's contract with the OOM watcher: an eventfd fires once,
    /// stays quiet while its watch reads it, and fires again only once
    /// armed again; a removed one never fires.
    #[tokio::test]
    async fn an_eventfd_in_the_set_fires_once_until_armed_again() {
        let set = EventfdSet::new().expect("epoll set");
        let (a, b) = (
            new_eventfd().expect("eventfd"),
            new_eventfd().expect("eventfd"),
        );
        set.arm(a.as_fd(), 7, false).expect("add a");
        set.arm(b.as_fd(), 8, false).expect("add b");
        signal(&a);
        let ids = tokio::time::timeout(Duration::from_secs(5), set.fired())
            .await
            .expect("a fires")
            .expect("epoll");
        assert_eq!(ids, vec![7]);
        // Not read, signalled again: one-shot, so quiet until armed again.
        signal(&a);
        let quiet = tokio::time::timeout(Duration::from_millis(200), set.fired()).await;
        assert!(quiet.is_err(), "fired while disarmed: {quiet:?}");
        set.arm(a.as_fd(), 7, true).expect("arm a again");
        let ids = tokio::time::timeout(Duration::from_secs(5), set.fired())
            .await
            .expect("a fires again")
            .expect("epoll");
        assert_eq!(ids, vec![7]);
        // A removed eventfd is not reported.
        set.remove(b.as_fd());
        signal(&b);
        let quiet = tokio::time::timeout(Duration::from_millis(200), set.fired()).await;
        assert!(quiet.is_err(), "removed eventfd fired: {quiet:?}");
    }

    #[test]
    fn oom_kill_counts_read_from_v1_and_v2_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let v1 = d.path().join("memory.oom_control");
        std::fs::write(&v1, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").expect("write");
        assert_eq!(read_oom_kill_v1(&v1).expect("count"), 3);
        let v2 = d.path().join("memory.events");
        std::fs::write(
            &v2,
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n",
        )
        .expect("write");
        assert_eq!(read_oom_kill_v2(&v2).expect("count"), 2);
        std::fs::write(&v2, "low 0\n").expect("write");
        assert!(matches!(
            read_oom_kill_v2(&v2),
            Err(OomError::NoCounter { .. })
        ));
        assert!(matches!(
            read_oom_kill_v2(&d.path().join("gone")),
            Err(OomError::Vanished { .. })
        ));
    }

    #[tokio::test]
    async fn v2_watch_reports_a_kill_when_memory_events_counts_one() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("memory.events");
        std::fs::write(&f, "oom 0\noom_kill 0\n").expect("write");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let w = OomV2::spawn(tx).expect("inotify");
        w.add(CgroupPath::new("/a"), f.clone());
        // Let the watcher take the command before the file changes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&f, "oom 1\noom_kill 1\n").expect("write");
        let (path, ev) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time")
            .expect("event");
        assert_eq!(path, CgroupPath::new("/a"));
        assert_eq!(
            ev,
            OomEvent::Kill {
                count: 1,
                delta: 1,
                removed: false
            }
        );
    }

    #[tokio::test]
    async fn a_retired_watch_reports_for_its_grace_then_goes() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("memory.events");
        std::fs::write(&f, "oom 0\noom_kill 0\n").expect("write");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let w = OomV2::spawn_with_grace(tx, Duration::from_millis(300)).expect("inotify");
        w.add(CgroupPath::new("/a"), f.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
        w.retire(CgroupPath::new("/a"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Within the grace, a kill is still reported.
        std::fs::write(&f, "oom 1\noom_kill 1\n").expect("write");
        let (_, ev) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time")
            .expect("event");
        assert!(matches!(ev, OomEvent::Kill { count: 1, .. }), "{ev:?}");
        // After it, the watch is removed by us (no IN_IGNORED needed) ...
        let (path, ev) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time")
            .expect("event");
        assert_eq!((path, ev), (CgroupPath::new("/a"), OomEvent::Gone));
        // ... and reports nothing more.
        std::fs::write(&f, "oom 2\noom_kill 2\n").expect("write");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), rx.recv())
                .await
                .is_err(),
            "a retired watch reported after its grace"
        );
    }

    #[test]
    fn limit_counters_report_growth_only() {
        let a = Counts {
            oom_kill: 1,
            high: 10,
            max: 2,
        };
        assert!(changes(a, a).is_empty());
        let b = Counts {
            oom_kill: 1,
            high: 15,
            max: 3,
        };
        assert_eq!(
            changes(a, b),
            vec![
                OomEvent::Limit {
                    counter: LimitCounter::Max,
                    count: 3,
                    delta: 1
                },
                OomEvent::Limit {
                    counter: LimitCounter::High,
                    count: 15,
                    delta: 5
                },
            ]
        );
        // A counter that went down (should not happen) reports nothing.
        assert!(changes(b, a).is_empty());
    }
}
