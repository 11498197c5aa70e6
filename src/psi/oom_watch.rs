//! The OOM watcher: its own task, with its own registry subscription and
//! config receiver, sharing nothing with the PSI triggers. It keeps a v1
//! eventfd watch (`memory.oom_control`) on every cgroup of the v1 memory
//! hierarchy, or on a pure v2 host one inotify watch (`memory.events`) per
//! cgroup, and tells the agent loop about OOM kills and `memory.events`
//! limit counters.
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
use super::oom::{OomEvent, OomV1, OomV2, RETIRE_GRACE};
use super::{Input, Inputs};

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
    v1: HashMap<CgroupPath, (u64, AbortHandle)>,
    /// v1 watches of removed cgroups, until their eventfd reports the
    /// removal or their grace ends.
    v1_leaving: HashMap<u64, (AbortHandle, Instant)>,
    v1_tx: mpsc::UnboundedSender<(CgroupPath, u64, OomEvent)>,
    v1_rx: mpsc::UnboundedReceiver<(CgroupPath, u64, OomEvent)>,
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
            v1_leaving: HashMap::new(),
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
            let grace_end = self.v1_leaving.values().map(|(_, until)| *until).min();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                input = inputs.next() => match input {
                    Input::Registry(batch) => self.on_registry(batch).await,
                    Input::Config(cfg) => self.reload(&cfg).await,
                },
                Some((path, id, ev)) = self.v1_rx.recv() => self.on_v1(path, id, ev),
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

    fn start_v1(&mut self, path: CgroupPath, mut w: OomV1) {
        if self.v1.contains_key(&path) {
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let tx = self.v1_tx.clone();
        let p = path.clone();
        let task = tokio::spawn(async move {
            loop {
                let event = w.next().await;
                let last = !matches!(event, OomEvent::Kill { .. });
                if tx.send((p.clone(), id, event)).is_err() || last {
                    return;
                }
            }
        });
        self.show(&path, true);
        self.v1.insert(path, (id, task.abort_handle()));
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
            if let Some((id, abort)) = self.v1.remove(path) {
                self.v1_leaving
                    .insert(id, (abort, Instant::now() + RETIRE_GRACE));
                self.show(path, false);
            }
        }
    }

    fn end_grace(&mut self) {
        let now = Instant::now();
        self.v1_leaving.retain(|_, (abort, until)| {
            let keep = *until > now;
            if !keep {
                // Dropping the task closes its eventfd and memory.oom_control.
                abort.abort();
            }
            keep
        });
    }

    fn on_v1(&mut self, path: CgroupPath, id: u64, event: OomEvent) {
        let current = self.v1.get(&path).map(|(i, _)| *i) == Some(id);
        if !current && !self.v1_leaving.contains_key(&id) {
            return;
        }
        let ended = match event {
            OomEvent::Kill {
                count,
                delta,
                removed,
            } => {
                self.send(News::OomKill {
                    path: path.clone(),
                    count,
                    delta,
                    removed,
                });
                false
            }
            OomEvent::Limit { .. } => false, // v2 only
            OomEvent::Gone => true,
            OomEvent::Failed(e) => {
                warn!(cgroup = %path, error = %e, "OOM watch failed");
                true
            }
        };
        if ended {
            self.v1_leaving.remove(&id);
            if current {
                self.v1.remove(&path);
                self.show(&path, false);
            }
        }
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
        for (p, (_, abort)) in std::mem::take(&mut self.v1) {
            abort.abort();
            self.show(&p, false);
        }
        for (_, (abort, _)) in self.v1_leaving.drain() {
            abort.abort();
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
