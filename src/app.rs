//! Startup glue: flags, config, layout, then the exporter and the agent.
//! `anyhow` lives here and nowhere else: below this, errors are typed.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use prometheus_client::registry::Registry as PromRegistry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cgroupfs::Layout;
use crate::cli::Args;
use crate::collector::selfmetrics::SelfCollector;
use crate::collector::{CgroupCollector, Families};
use crate::config::{Config, ValidationContext};
use crate::http::tls::WebConfig;
use crate::kubernetes::Kubelet;
use crate::psi::PsiMetrics;
use crate::registry::{Filter, Registry, RescanReason};

/// Exit code for bad flags, config or paths (sysexits `EX_USAGE`); clap's
/// own usage errors exit 2; failures at run time exit 1.
pub const EX_USAGE: i32 = 64;

/// How long open HTTP connections and queued alerts get on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn main() -> i32 {
    let args = Args::parse();
    crate::logging::init(args.log_level, args.log_format);
    if args.check_config {
        return check_config(&args);
    }
    let config = match load_config(args.config_file.as_deref(), &args.procfs) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EX_USAGE;
        }
    };
    let layout = match check_paths(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EX_USAGE;
        }
    };
    // Read before anything listens: a broken web config is a config error
    // (exit 64), and the port is never served without the TLS it asks for.
    let web = match load_web_config(&args) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return EX_USAGE;
        }
    };
    crate::kernel::tune_allocator();
    if args.once {
        return match once(&args, &config, layout) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("cgpe")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args, config, layout, web)) {
        Ok(()) => 0,
        Err(e) => {
            error!(error = format!("{e:#}"), "exiting");
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn load_config(file: Option<&Path>, procfs: &Path) -> anyhow::Result<Config> {
    match file {
        None => Ok(Config::default()),
        Some(f) => Ok(Config::load_with(f, &ValidationContext::detect(procfs))?),
    }
}

fn load_web_config(args: &Args) -> Result<Option<WebConfig>, crate::http::tls::WebConfigError> {
    args.web_config_file
        .as_deref()
        .map(WebConfig::load)
        .transpose()
}

fn check_config(args: &Args) -> i32 {
    if let Err(e) = load_web_config(args) {
        eprintln!("error: {e}");
        return EX_USAGE;
    }
    match load_config(args.config_file.as_deref(), &args.procfs) {
        Ok(c) => {
            let mut out = std::io::stdout().lock();
            let name = args
                .config_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(defaults)".to_string());
            let _ = writeln!(out, "# {name}: valid");
            let _ = out.write_all(c.to_yaml().as_bytes());
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            EX_USAGE
        }
    }
}

/// Fails early, naming the path, when a root is missing or unreadable.
fn check_paths(args: &Args) -> anyhow::Result<Arc<Layout>> {
    std::fs::read_dir(&args.procfs).with_context(|| {
        format!(
            "--path.procfs {}: cannot read procfs",
            args.procfs.display()
        )
    })?;
    let layout = Layout::detect(&args.cgroupfs, &args.procfs)
        .with_context(|| format!("--path.cgroupfs {}", args.cgroupfs.display()))?;
    Ok(Arc::new(layout))
}

/// The pieces a scrape needs, built the same way for `--once` and serving.
struct Exporter {
    registry: Arc<Registry>,
    prom: PromRegistry,
    kubelet: Option<Arc<Kubelet>>,
    psi: Arc<PsiMetrics>,
}

fn build_exporter(args: &Args, config: &Config, layout: Arc<Layout>) -> anyhow::Result<Exporter> {
    let registry = Registry::new(layout, Filter::from_config(&config.cgroups));
    let kubelet = Kubelet::from_config(&config.kubernetes)
        .context("kubernetes.kubelet_url")?
        .map(Arc::new);
    let families = Families::from_config(&config.metrics);
    let on = families.selection().clone();
    let collector = CgroupCollector::new(
        registry.clone(),
        args.procfs.clone(),
        families,
        config.metrics.fd_cache,
    )
    .with_kubelet(kubelet.clone());
    let scrape_stats = collector.stats.clone();
    let fd_cache = collector.fd_cache();
    let mut prom = PromRegistry::default();
    prom.register_collector(Box::new(collector));
    prom.register_collector(Box::new(SelfCollector::new(
        registry.clone(),
        scrape_stats,
        fd_cache,
        on.clone(),
    )));
    if config.namespaces.enabled {
        prom.register_collector(Box::new(
            crate::namespaces::NamespaceCollector::new(args.procfs.clone())
                .with_cgroup_layout(registry.layout().clone())
                .with_selection(on.clone()),
        ));
    }
    if let Some(k) = &kubelet {
        k.register_selected(&mut prom, &on);
    }
    let psi = PsiMetrics::new();
    psi.register_selected(&mut prom, &on);
    Ok(Exporter {
        registry,
        prom,
        kubelet,
        psi,
    })
}

fn once(args: &Args, config: &Config, layout: Arc<Layout>) -> anyhow::Result<()> {
    let ex = build_exporter(args, config, layout)?;
    ex.registry.rescan(RescanReason::Initial);
    let mut out = String::new();
    crate::collector::with_deadline(Instant::now() + crate::collector::DEFAULT_DEADLINE, || {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &ex.prom)
    })
    .context("encoding the exposition")?;
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing to stdout")?;
    Ok(())
}

async fn run(
    args: Args,
    config: Config,
    layout: Arc<Layout>,
    tls: Option<WebConfig>,
) -> anyhow::Result<()> {
    // Before the port opens: a SIGTERM sent once it accepts connections must
    // reach the handler, not the default action (exit by signal).
    let signals = Signals::install()?;
    let shutdown = CancellationToken::new();
    let ex = build_exporter(&args, &config, layout)?;
    let (ready_tx, ready) = watch::channel(false);
    if let Some(k) = &ex.kubelet {
        k.clone().spawn(shutdown.clone());
        spawn_kubelet_notifier(ex.registry.clone(), k.clone(), shutdown.clone());
    }

    let addr =
        crate::http::parse_listen_address(&args.listen_address).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --web.listen-address {}", args.listen_address))?;
    info!(
        address = %listener.local_addr().unwrap_or(addr),
        tls = tls.as_ref().map(|t| t.has_tls()).unwrap_or(false),
        path = %args.telemetry_path,
        "listening"
    );

    // Discovery, on its own thread: initial walk with watches, then inotify.
    let watcher = crate::registry::watcher::spawn(ex.registry.clone())
        .context("starting the discovery thread")?;
    {
        let registry = ex.registry.clone();
        let mut started = watcher.started();
        tokio::spawn(async move {
            let _ = started.wait_for(|s| *s).await;
            info!(cgroups = registry.len(), "initial discovery done");
            ready_tx.send_replace(true);
        });
    }

    // Both files, one reload path (SIGHUP, POST /-/reload), and every
    // consumer handed new config through a watch channel.
    let web = tls
        .zip(args.web_config_file.clone())
        .map(|(web, file)| Arc::new(crate::http::tls::LiveWebConfig::new(file, web)));
    let procfs = args.procfs.clone();
    let mut config = crate::config::Watch::new(config, args.config_file.clone(), move || {
        ValidationContext::detect(&procfs)
    });
    if let Some(w) = &web {
        config = config.with_web(w.clone());
        // Certificates and users changed on disk apply within a second,
        // without a signal, as with exporter-toolkit.
        w.clone().watch(shutdown.clone());
    }
    let config = Arc::new(config);
    let web = web.map(|w| w.subscribe());
    // The PSI agent: triggers armed from registry events, alerts out.
    let listen = crate::psi::Listen {
        port: listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(addr.port()),
        https: web.as_ref().is_some_and(|w| w.borrow().has_tls()),
    };
    let agent = crate::psi::spawn_listening(
        ex.registry.clone(),
        args.procfs.clone(),
        config.subscribe(),
        ex.psi.clone(),
        shutdown.clone(),
        Some(listen),
    );

    let server = crate::http::Server {
        registry: Arc::new(ex.prom),
        telemetry_path: args.telemetry_path.clone(),
        ready,
        config: config.clone(),
        web,
    };
    let http = tokio::spawn(server.serve(listener, shutdown.clone(), SHUTDOWN_GRACE));

    wait_for_signals(signals, config, shutdown.clone()).await;
    shutdown.cancel();
    // HTTP drains and queued alerts flush at the same time, each within
    // the grace period.
    let (http_done, ()) = tokio::join!(
        tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), http),
        agent.shutdown(SHUTDOWN_GRACE),
    );
    let _ = http_done;
    let _ = tokio::task::spawn_blocking(move || watcher.stop()).await;
    info!("stopped");
    Ok(())
}

/// Tells the kubelet cache about new pod cgroups, so names are fetched when
/// a pod starts rather than at the next periodic refresh.
fn spawn_kubelet_notifier(
    registry: Arc<Registry>,
    kubelet: Arc<Kubelet>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let (initial, mut rx) = registry.subscribe();
        for ev in initial {
            if let crate::registry::RegistryEvent::Added { path, .. } = ev {
                if let Some(e) = registry.get(&path) {
                    kubelet.notice_cgroup(&e.labels);
                }
            }
        }
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                ev = rx.recv() => match ev {
                    Some(crate::registry::RegistryEvent::Added { path, .. }) => {
                        if let Some(e) = registry.get(&path) {
                            kubelet.notice_cgroup(&e.labels);
                        }
                    }
                    Some(_) => {}
                    None => return,
                },
            }
        }
    });
}

/// The signals the exporter handles, installed at start.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            // SIGTERM: Kubernetes and systemd ask us to stop.
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            // SIGINT: Ctrl-C while developing.
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            // SIGHUP: an operator or config-reloader sidecar asks for a reload.
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }
}

async fn wait_for_signals(
    mut s: Signals,
    config: Arc<crate::config::Watch>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = s.term.recv() => { info!(signal = "SIGTERM", "shutting down"); break; }
            _ = s.int.recv() => { info!(signal = "SIGINT", "shutting down"); break; }
            _ = s.hup.recv() => {
                if !config.has_config_file() {
                    warn!("SIGHUP: no --config.file to reload");
                }
                // The same reload as POST /-/reload. Reading files blocks:
                // the blocking pool, not this worker.
                let c = config.clone();
                let _ = tokio::task::spawn_blocking(move || c.reload()).await;
            }
            () = shutdown.cancelled() => break,
        }
    }
}
