//! The OOM watcher: its own task, with its own registry subscription and
//! config receiver, sharing nothing with the PSI triggers. It keeps a v1
//! eventfd watch (`memory.oom_control`) on every cgroup of the v1 memory
//! hierarchy, or on a pure v2 host one inotify watch (`memory.events`) per
//! cgroup, and tells the agent loop about OOM kills and `memory.events`
//! limit counters.
//!
//! The v1 eventfds, thousands on a big hybrid node, wait one-shot in one
//! epoll set (`oom::EventfdSet`): an idle watch is a struct in a map, not
//! a task. One whose eventfd fired reads its counter in a short task and
//! comes back through `v1_rx` to be armed again.
//!
//! A removed cgroup's watch stays for a grace (`oom::RETIRE_GRACE`): an OOM
//! kill just before the removal (a container cleaned up after it) is still
//! on its way. Arming (opens, writes, the first counter read) runs on the
//! blocking pool, one batch per burst of registry events.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cgroupfs::{CgroupPath, Controller, HierarchyId, Mode};
use crate::config::Config;
use crate::registry::{Registry, RegistryEvent};

use super::book::News;
use super::oom::{EventfdSet, OomEvent, OomV1, OomV2, RETIRE_GRACE};
use super::{Input, Inputs};

/// A v1 watch: waiting in the [`EventfdSet`], or reading what its eventfd
/// announced in a task of its own.
enum V1Watch {
    Idle(OomV1),
    Woken(AbortHandle),
}

/// The cgroups with an OOM watch, as the handle shows them.
pub(crate) type WatchedView = BTreeSet<String>;

struct Hierarchy {
    id: HierarchyId,
    root: PathBuf,
}

pub(crate) struct OomWatcher {
    registry: Arc<Registry>,
    v2_mode: bool,
    unified: Option<Hierarchy>,
    memory_v1: Option<Hierarchy>,
    oom_kills: bool,
    limits: bool,
    unified_paths: BTreeSet<CgroupPath>,
    memory_v1_paths: BTreeSet<CgroupPath>,
    /// The current v1 watch of each watched cgroup, by id.
    v1: HashMap<CgroupPath, u64>,
    /// Every v1 watch, current or leaving, by id.
    v1_watches: HashMap<u64, (CgroupPath, V1Watch)>,
    /// v1 watches of removed cgroups, until their eventfd reports the
    /// removal or their grace ends.
    v1_leaving: HashMap<u64, Instant>,
    /// The idle v1 eventfds; made with the first v1 watch.
    v1_poll: Option<EventfdSet>,
    /// A woken watch's result, and the watch back.
    v1_tx: mpsc::UnboundedSender<(u64, OomV1, Option<OomEvent>)>,
    v1_rx: mpsc::UnboundedReceiver<(u64, OomV1, Option<OomEvent>)>,
    v2: Option<OomV2>,
    v2_watched: HashSet<CgroupPath>,
    /// v2 watches of removed cgroups, until the watcher ends them.
    v2_leaving: HashSet<CgroupPath>,
    v2_tx: mpsc::UnboundedSender<(CgroupPath, OomEvent)>,
    v2_rx: mpsc::UnboundedReceiver<(CgroupPath, OomEvent)>,
    next_id: u64,
    out: mpsc::UnboundedSender<News>,
    view: watch::Sender<WatchedView>,
}

impl OomWatcher {
    pub(crate) fn new(
        registry: Arc<Registry>,
        config: &Config,
        out: mpsc::UnboundedSender<News>,
        view: watch::Sender<WatchedView>,
    ) -> OomWatcher {
        let layout = registry.layout().clone();
        let hier = |h: Option<&crate::cgroupfs::Hierarchy>| {
            h.map(|h| Hierarchy {
                id: h.id,
                root: h.root.clone(),
            })
        };
        let (v1_tx, v1_rx) = mpsc::unbounded_channel();
        let (v2_tx, v2_rx) = mpsc::unbounded_channel();
        OomWatcher {
            v2_mode: layout.mode == Mode::V2,
            unified: hier(layout.unified()),
            memory_v1: hier(layout.v1(Controller::Memory)),
            registry,
            oom_kills: config.alerting.oom_kills,
            limits: limits_on(config),
            unified_paths: BTreeSet::new(),
            memory_v1_paths: BTreeSet::new(),
            v1: HashMap::new(),
            v1_watches: HashMap::new(),
            v1_leaving: HashMap::new(),
            v1_poll: None,
            v1_tx,
            v1_rx,
            v2: None,
            v2_watched: HashSet::new(),
            v2_leaving: HashSet::new(),
            v2_tx,
            v2_rx,
            next_id: 0,
            out,
            view,
        }
    }

    pub(crate) async fn run(
        mut self,
        config: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) {
        let (initial, mut inputs) = Inputs::new(&self.registry, config);
        for (hierarchy, path) in initial {
            self.track(hierarchy, path);
        }
        self.arm_all().await;
        info!(
            oom_watched = self.v1.len() + self.v2_watched.len(),
            "OOM watches armed"
        );
        loop {
            let grace_end = self.v1_leaving.values().min().copied();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                input = inputs.next() => match input {
                    Input::Registry(batch) => self.on_registry(batch).await,
                    Input::Config(cfg) => self.reload(&cfg).await,
                },
                ids = fired(&self.v1_poll) => self.on_fired(ids),
                Some((id, w, ev)) = self.v1_rx.recv() => self.on_v1(id, w, ev),
                Some((path, ev)) = self.v2_rx.recv() => self.on_v2(path, ev),
                _ = super::sleep_until_opt(grace_end) => self.end_grace(),
            }
        }
        self.disarm_all();
    }

    fn send(&self, out: News) {
        let _ = self.out.send(out);
    }

    fn show(&self, path: &CgroupPath, watched: bool) {
        self.view.send_modify(|v| {
            if watched {
                v.insert(path.to_string());
            } else {
                v.remove(path.as_str());
            }
        });
    }

    /// Records a path; returns which kind of watch it wants, if any.
    fn track(&mut self, hierarchy: HierarchyId, path: CgroupPath) -> (bool, bool) {
        let (mut v1, mut v2) = (false, false);
        if self.unified.as_ref().is_some_and(|h| h.id == hierarchy) {
            self.unified_paths.insert(path.clone());
            v2 = true;
        }
        if self.memory_v1.as_ref().is_some_and(|h| h.id == hierarchy) {
            self.memory_v1_paths.insert(path);
            v1 = true;
        }
        (v1, v2)
    }

    /// The v2 `memory.events` watch serves OOM kills and limit alerts.
    fn v2_wanted(&self) -> bool {
        self.v2_mode && (self.oom_kills || self.limits)
    }

    async fn arm_all(&mut self) {
        let v1 = if self.oom_kills {
            self.memory_v1_paths.iter().cloned().collect()
        } else {
            Vec::new()
        };
        let v2 = if self.v2_wanted() {
            self.unified_paths.iter().cloned().collect()
        } else {
            Vec::new()
        };
        self.arm(v1, v2).await;
    }

    /// Arms v1 and v2 watches on the blocking pool, in one batch.
    async fn arm(&mut self, v1: Vec<CgroupPath>, v2: Vec<CgroupPath>) {
        let v1: Vec<(CgroupPath, PathBuf)> = match &self.memory_v1 {
            Some(h) => v1
                .into_iter()
                .filter(|p| !self.v1.contains_key(p))
                .map(|p| {
                    let dir = h.root.join(p.relative());
                    (p, dir)
                })
                .collect(),
            None => Vec::new(),
        };
        let v2: Vec<(CgroupPath, PathBuf)> = match &self.unified {
            Some(h) => v2
                .into_iter()
                .filter(|p| !self.v2_watched.contains(p))
                .map(|p| {
                    let file = h.root.join(p.relative()).join("memory.events");
                    (p, file)
                })
                .collect(),
            None => Vec::new(),
        };
        if v1.is_empty() && v2.is_empty() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            let v1: Vec<_> = v1
                .into_iter()
                .map(|(p, dir)| (p, OomV1::arm(&dir)))
                .collect();
            let v2: Vec<_> = v2.into_iter().filter(|(_, f)| super::exists(f)).collect();
            (v1, v2)
        })
        .await;
        let Ok((v1, v2)) = done else {
            warn!("OOM watch arming task failed");
            return;
        };
        for (path, armed) in v1 {
            match armed {
                Ok(w) if self.oom_kills && self.memory_v1_paths.contains(&path) => {
                    self.start_v1(path, w)
                }
                Ok(_) => {} // dropped while arming: closing the eventfd ends it
                Err(e) => debug!(cgroup = %path, error = %e, "no OOM watch"),
            }
        }
        for (path, file) in v2 {
            if self.v2_wanted() && self.unified_paths.contains(&path) {
                self.start_v2(path, file);
            }
        }
    }

    fn start_v1(&mut self, path: CgroupPath, w: OomV1) {
        if self.v1.contains_key(&path) {
            return;
        }
        if self.v1_poll.is_none() {
            match EventfdSet::new() {
                Ok(p) => self.v1_poll = Some(p),
                Err(e) => {
                    warn!(error = %e, "no epoll set for v1 OOM watches");
                    return;
                }
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        if let Some(Err(e)) = self.v1_poll.as_ref().map(|p| p.arm(w.eventfd(), id, false)) {
            debug!(cgroup = %path, error = %e, "no OOM watch");
            return;
        }
        self.show(&path, true);
        self.v1.insert(path.clone(), id);
        self.v1_watches.insert(id, (path, V1Watch::Idle(w)));
    }

    /// Eventfds fired: each watch reads what happened in a task of its
    /// own (counter reads on the blocking pool, timers), and comes back
    /// through `v1_rx`.
    fn on_fired(&mut self, ids: Vec<u64>) {
        for id in ids {
            let Some((path, watch)) = self.v1_watches.remove(&id) else {
                continue;
            };
            let V1Watch::Idle(mut w) = watch else {
                self.v1_watches.insert(id, (path, watch));
                continue;
            };
            let tx = self.v1_tx.clone();
            let task = tokio::spawn(async move {
                let ev = w.woken().await;
                let _ = tx.send((id, w, ev));
            });
            self.v1_watches
                .insert(id, (path, V1Watch::Woken(task.abort_handle())));
        }
    }

    /// Ends a v1 watch, idle or woken (dropping it closes its eventfd).
    fn end_v1(&mut self, id: u64) {
        self.v1_leaving.remove(&id);
        if let Some((path, watch)) = self.v1_watches.remove(&id) {
            match watch {
                V1Watch::Idle(w) => {
                    if let Some(p) = &self.v1_poll {
                        p.remove(w.eventfd());
                    }
                }
                V1Watch::Woken(abort) => abort.abort(),
            }
            if self.v1.get(&path) == Some(&id) {
                self.v1.remove(&path);
                self.show(&path, false);
            }
        }
    }

    fn start_v2(&mut self, path: CgroupPath, file: PathBuf) {
        if self.v2_watched.contains(&path) {
            return;
        }
        if self.v2.is_none() {
            match OomV2::spawn(self.v2_tx.clone()) {
                Ok(w) => self.v2 = Some(w),
                Err(e) => {
                    warn!(error = %e, "cannot start inotify for OOM watches");
                    return;
                }
            }
        }
        if let Some(w) = &self.v2 {
            w.add(path.clone(), file);
            self.show(&path, true);
            self.v2_leaving.remove(&path);
            self.v2_watched.insert(path);
        }
    }

    async fn on_registry(&mut self, batch: Vec<RegistryEvent>) {
        let (mut v1, mut v2) = (Vec::new(), Vec::new());
        for ev in batch {
            match ev {
                RegistryEvent::Added { path, hierarchy } => {
                    let (a1, a2) = self.track(hierarchy, path.clone());
                    if a1 && self.oom_kills {
                        v1.push(path.clone());
                    }
                    if a2 && self.v2_wanted() {
                        v2.push(path);
                    }
                }
                RegistryEvent::Removed { path, hierarchy } => {
                    // Arm what came before the removal first, so the
                    // removal also retires it.
                    self.arm(std::mem::take(&mut v1), std::mem::take(&mut v2))
                        .await;
                    self.removed(hierarchy, &path);
                }
            }
        }
        self.arm(v1, v2).await;
    }

    fn removed(&mut self, hierarchy: HierarchyId, path: &CgroupPath) {
        if self.unified.as_ref().is_some_and(|h| h.id == hierarchy) {
            self.unified_paths.remove(path);
            // The watcher removes the watch after the grace and reports
            // `Gone` (the kernel does not always end it itself).
            if self.v2_watched.remove(path) {
                self.v2_leaving.insert(path.clone());
                self.show(path, false);
                if let Some(w) = &self.v2 {
                    w.retire(path.clone());
                }
            }
        }
        if self.memory_v1.as_ref().is_some_and(|h| h.id == hierarchy) {
            self.memory_v1_paths.remove(path);
            // The watch normally ends within about a second, when its
            // eventfd reports the removal. The grace bounds it anyway, so
            // an eventfd that is never signalled (one registered as the
            // cgroup was going away) cannot pin its descriptors forever.
            if let Some(id) = self.v1.remove(path) {
                self.v1_leaving.insert(id, Instant::now() + RETIRE_GRACE);
                self.show(path, false);
            }
        }
    }

    fn end_grace(&mut self) {
        let now = Instant::now();
        let over: Vec<u64> = self
            .v1_leaving
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in over {
            self.end_v1(id);
        }
    }

    /// A woken watch is back: report its kill, then wait again, unless the
    /// cgroup has gone or the watch failed.
    fn on_v1(&mut self, id: u64, w: OomV1, event: Option<OomEvent>) {
        let Some((path, _)) = self.v1_watches.get(&id) else {
            return; // ended meanwhile (disarmed): dropping `w` closes it
        };
        let path = path.clone();
        let mut ended = w.is_over();
        match event {
            Some(OomEvent::Kill {
                count,
                delta,
                removed,
            }) => self.send(News::OomKill {
                path: path.clone(),
                count,
                delta,
                removed,
            }),
            Some(OomEvent::Limit { .. }) | None => {} // Limit: v2 only
            Some(OomEvent::Gone) => ended = true,
            Some(OomEvent::Failed(e)) => {
                warn!(cgroup = %path, error = %e, "OOM watch failed");
                ended = true;
            }
        }
        if !ended {
            match self.v1_poll.as_ref().map(|p| p.arm(w.eventfd(), id, true)) {
                Some(Ok(())) => {
                    self.v1_watches.insert(id, (path, V1Watch::Idle(w)));
                    return;
                }
                Some(Err(e)) => warn!(cgroup = %path, error = %e, "OOM watch failed"),
                None => {}
            }
        }
        drop(w);
        self.end_v1(id);
    }

    fn on_v2(&mut self, path: CgroupPath, ev: OomEvent) {
        let ours = self.v2_watched.contains(&path) || self.v2_leaving.contains(&path);
        match ev {
            OomEvent::Kill {
                count,
                delta,
                removed,
            } if self.oom_kills && ours => self.send(News::OomKill {
                path,
                count,
                delta,
                removed,
            }),
            OomEvent::Kill { .. } => {}
            OomEvent::Limit { counter, count, .. } if ours => self.send(News::LimitGrew {
                path,
                counter,
                count,
            }),
            OomEvent::Limit { .. } => {}
            OomEvent::Gone | OomEvent::Failed(_) => {
                self.v2_leaving.remove(&path);
                if self.v2_watched.remove(&path) {
                    self.show(&path, false);
                }
                self.send(News::LimitsGone(path));
            }
        }
    }

    fn disarm_all(&mut self) {
        let ids: Vec<u64> = self.v1_watches.keys().copied().collect();
        for id in ids {
            self.end_v1(id);
        }
        self.v2 = None;
        self.v2_leaving.clear();
        for p in std::mem::take(&mut self.v2_watched) {
            self.show(&p, false);
        }
    }

    async fn reload(&mut self, cfg: &Config) {
        let before = (self.oom_kills, self.v2_wanted());
        self.oom_kills = cfg.alerting.oom_kills;
        self.limits = limits_on(cfg);
        if before != (self.oom_kills, self.v2_wanted()) {
            self.disarm_all();
            self.arm_all().await;
        }
    }
}

fn limits_on(cfg: &Config) -> bool {
    cfg.alerting.memory_events.high || cfg.alerting.memory_events.max
}

/// The ids of fired v1 eventfds; never ready without a set. An epoll
/// error (not expected: the set is ours) stops the v1 watches' wake-ups
/// rather than spin.
async fn fired(set: &Option<EventfdSet>) -> Vec<u64> {
    let Some(set) = set else {
        return std::future::pending().await;
    };
    match set.fired().await {
        Ok(ids) => ids,
        Err(e) => {
            warn!(error = %e, "v1 OOM watches: epoll failed");
            std::future::pending().await
        }
    }
}
