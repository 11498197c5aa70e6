//! cgroup-psi-exporter: Prometheus metrics for every cgroup and namespace on a
//! Linux node, and a PSI-trigger agent that pushes alerts to Alertmanager.
//!
//! The crate is laid out one module per box of the design (`DESIGN.md`):
//! `cgroupfs` knows kernel files, `registry` knows which cgroups exist,
//! `collector` turns both into an exposition at scrape time, `namespaces`
//! maps processes to namespaces, `psi` arms kernel triggers and `alerting`
//! delivers what they find.
#![deny(rust_2018_idioms, unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod alerting;
pub mod app;
pub mod cgroupfs;
pub mod cli;
pub mod collector;
pub mod config;
pub mod glob;
pub mod http;
pub mod kubelet;
pub mod labels;
pub mod logging;
pub mod namespaces;
pub mod pem;
pub mod psi;
pub mod registry;
pub mod rlimit;
pub mod tlsclient;
