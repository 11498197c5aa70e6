//! cgroup-psi-exporter: Prometheus metrics for every cgroup and namespace on a
//! Linux node, and a PSI-trigger agent that pushes alerts to Alertmanager.
//!
//! The crate is laid out one module per box of the design (`DESIGN.md`):
//! `cgroupfs` knows kernel files, `registry` knows which cgroups exist,
//! `collector` turns both into an exposition at scrape time, `namespaces`
//! maps processes to namespaces, `psi` arms kernel triggers and `alerting`
//! delivers what they find.
//!
//! # Async and blocking work
//!
//! The runtime has two workers (`app.rs`, sized for a 2-core node), and
//! everything that must answer promptly shares them: accepting
//! connections, TLS handshakes, PSI trigger wake-ups, alert delivery. One
//! worker blocked for 100 ms stalls half of that, so the rule is:
//!
//! 1. **Async code never blocks.** What runs on a worker (`http`,
//!    `alerting`, and every task started with `tokio::spawn`) does no file
//!    I/O, no DNS lookup, no `std::thread::sleep` and no CPU work beyond
//!    about a millisecond. A `parking_lot::Mutex` on that path guards memory
//!    only (never I/O or bcrypt under it) and is never held across `.await`.
//! 2. **Synchronous modules may block, and are only called off the
//!    workers.** `cgroupfs`, `collector`, `namespaces`, `config` and `pem`
//!    are plain functions that read files; their callers run them at
//!    start-up (before the runtime exists), on the blocking pool
//!    (`tokio::task::spawn_blocking`), or on a dedicated thread.
//! 3. **Where the crossing is, by name:**
//!    - a scrape: collection and encoding in `spawn_blocking`
//!      (`http::Server::metrics`);
//!    - bcrypt: one dedicated thread, `cgpe-bcrypt`, behind a bounded
//!      queue (`http::auth`), so password checks use at most one core and
//!      never the threads that collect and encode;
//!    - the web config: reloaded by a task that stats and loads its files
//!      in `spawn_blocking` once a second (`http::tls::LiveWebConfig`); a
//!      request only clones an `Arc` from its watch channel;
//!    - `POST /-/reload` and `SIGHUP`: one reload path
//!      (`config::Watch::reload`), run in `spawn_blocking`, loads the web
//!      config and the config file;
//!    - discovery: its own OS thread, `cgpe-discovery`, blocked in `poll(2)`
//!      on inotify (`registry::watcher`); a scrape applies the events queued
//!      before it from inside its own `spawn_blocking`;
//!    - the kubelet's pod list is parsed, and its token file re-read, in
//!      `spawn_blocking` (`kubernetes::client`).
//!    - the PSI agent: its owners (`psi::triggers`, `psi::oom_watch`,
//!      `psi::levels`) await only registered fds (trigger fds, eventfds,
//!      the inotify fd); trigger arming, the hidden-file check, the
//!      attribution and OOM-counter reads and the v1 registrations run in
//!      one `spawn_blocking` batch per burst of events, awaited by the
//!      owner so its events stay in order.
//!
//! clippy enforces what it can (`clippy.toml`): in this library, blocking
//! `std::fs` calls, `std::thread::sleep`, DNS through `ToSocketAddrs` and
//! bcrypt are disallowed methods, and tracing span guards may not be held
//! across `.await`. A synchronous module says so with an `#[allow]` and its
//! reason on its `mod` line below; any other blocking call needs an
//! `#[allow]` saying why it is off the workers (the agent's few blocking
//! functions carry one each, naming the batch that calls them).
#![deny(rust_2018_idioms, unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![cfg_attr(not(test), warn(clippy::disallowed_methods))]
#![warn(clippy::disallowed_types)]

pub mod alerting;
#[allow(
    clippy::disallowed_methods,
    reason = "start-up glue: checks the flags' paths before the runtime starts"
)]
pub mod app;
#[allow(
    clippy::disallowed_methods,
    reason = "synchronous by design: kernel file reads for the collector (blocking pool) and discovery"
)]
pub mod cgroupfs;
pub mod cli;
#[allow(
    clippy::disallowed_methods,
    reason = "synchronous by design: runs inside the scrape's spawn_blocking"
)]
pub mod collector;
#[allow(
    clippy::disallowed_methods,
    reason = "synchronous by design: loaded at start-up and by reloads on the blocking pool"
)]
pub mod config;
pub mod glob;
pub mod http;
#[allow(
    clippy::disallowed_methods,
    reason = "synchronous by design: the shared core for kernel-file readers, called where they are"
)]
pub mod kernel;
pub mod kubernetes;
pub mod labels;
pub mod logging;
pub mod metrics;
#[allow(
    clippy::disallowed_methods,
    reason = "synchronous by design: /proc scans from the namespace collector, inside the scrape's spawn_blocking"
)]
pub mod namespaces;
pub mod net;
pub mod pem;
pub mod psi;
#[allow(
    clippy::disallowed_methods,
    reason = "synchronous by design: discovery runs on its own OS thread (registry::watcher), and a scrape applies pending events inside its spawn_blocking"
)]
pub mod registry;
