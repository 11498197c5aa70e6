//! One way to hand new config to every consumer. [`Watch`] keeps the config
//! in force as a `tokio::sync::watch` of `Arc<Config>` snapshots: the PSI
//! agent (and through it the notifier) holds a receiver and sees each new
//! one. [`Watch::reload`] is the one reload path, for SIGHUP and
//! `POST /-/reload` alike: it reloads the web config (a [`Companion`], whose
//! own channel the HTTP server reads) and the config file. It reads files:
//! call it on the blocking pool.

use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{Config, ConfigError, ValidationContext};

/// A file reloaded with the config: the web config. It is loaded and
/// published by `http::tls`, above this layer, and plugs in here so both
/// files have one reload path.
pub trait Companion: Send + Sync {
    /// Loads the file again if it, or a file it names, changed on disk.
    /// Blocking. `Ok(true)`: a new one is in force; `Ok(false)`: nothing
    /// changed; `Err`: why what is on disk was refused (the running one
    /// stays).
    fn refresh(&self) -> Result<bool, String>;
}

/// Why a reload left a file's running config in force.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("web config refused: {0}")]
    Web(String),
    #[error("config refused: {0}")]
    Config(#[from] ConfigError),
}

/// The config in force and how to reload it. See the module doc.
pub struct Watch {
    file: Option<PathBuf>,
    /// What validation may assume, asked again on each reload.
    context: Box<dyn Fn() -> ValidationContext + Send + Sync>,
    tx: watch::Sender<Arc<Config>>,
    web: Option<Arc<dyn Companion>>,
    /// SIGHUP and `POST /-/reload` may arrive together: one at a time.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("file", &self.file)
            .field("web", &self.web.is_some())
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// `config` was loaded from `file` (`None`: defaults, nothing to
    /// reload) with `context()`.
    pub fn new(
        config: Config,
        file: Option<PathBuf>,
        context: impl Fn() -> ValidationContext + Send + Sync + 'static,
    ) -> Watch {
        Watch {
            file,
            context: Box::new(context),
            tx: watch::Sender::new(Arc::new(config)),
            web: None,
            reloading: Mutex::new(()),
        }
    }

    /// Reloads `web` with the config.
    pub fn with_web(mut self, web: Arc<dyn Companion>) -> Watch {
        self.web = Some(web);
        self
    }

    /// A receiver of every config put in force from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.tx.subscribe()
    }

    pub fn current(&self) -> Arc<Config> {
        self.tx.borrow().clone()
    }

    /// Whether there is any file to reload.
    pub fn has_files(&self) -> bool {
        self.file.is_some() || self.web.is_some()
    }

    pub fn has_config_file(&self) -> bool {
        self.file.is_some()
    }

    /// Reloads the web config (if its files changed) and the config file.
    /// A valid file replaces the running config; a broken one is refused
    /// with a log line and the old one keeps running. Blocking.
    pub fn reload(&self) -> Result<(), Vec<Refused>> {
        let _one = self.reloading.lock();
        let mut refused = Vec::new();
        if let Some(Err(e)) = self.web.as_ref().map(|w| w.refresh()) {
            refused.push(Refused::Web(e));
        }
        if let Some(file) = &self.file {
            match Config::load_with(file, &(self.context)()) {
                Ok(c) => {
                    let old = self.current();
                    if old.cgroups != c.cgroups
                        || old.metrics != c.metrics
                        || old.namespaces != c.namespaces
                        || old.kubernetes != c.kubernetes
                    {
                        warn!("cgroups, metrics, namespaces and kubernetes sections take effect on restart only");
                    }
                    self.tx.send_replace(Arc::new(c));
                    info!(file = %file.display(), "config reloaded");
                }
                Err(e) => {
                    error!(error = %e, "config reload refused; the running config stays");
                    refused.push(Refused::Config(e));
                }
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Web(AtomicUsize);

    impl Companion for Web {
        fn refresh(&self) -> Result<bool, String> {
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(true),
                _ => Err("bad web.yml".to_string()),
            }
        }
    }

    #[test]
    fn reload_publishes_a_valid_file_and_keeps_the_old_on_a_broken_one() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("c.yaml");
        std::fs::write(&file, "alerting:\n  queue_capacity: 7\n").unwrap();
        let web = Arc::new(Web(AtomicUsize::new(0)));
        let w = Watch::new(
            Config::default(),
            Some(file.clone()),
            ValidationContext::default,
        )
        .with_web(web.clone());
        let mut rx = w.subscribe();
        assert!(w.has_files());
        w.reload().expect("valid");
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().alerting.queue_capacity, 7);

        std::fs::write(&file, "alerting:\n  queue_capacity: 0\n").unwrap();
        let refused = w.reload().expect_err("broken");
        let text: Vec<String> = refused.iter().map(|r| r.to_string()).collect();
        assert_eq!(text[0], "web config refused: bad web.yml");
        assert!(text[1].starts_with("config refused: "), "{text:?}");
        assert!(text[1].contains("alerting.queue_capacity"), "{text:?}");
        assert!(!rx.has_changed().unwrap(), "the running config stays");
        assert_eq!(w.current().alerting.queue_capacity, 7);
    }

    #[test]
    fn defaults_have_nothing_to_reload() {
        let w = Watch::new(Config::default(), None, ValidationContext::default);
        assert!(!w.has_files());
        assert!(w.reload().is_ok());
    }
}
