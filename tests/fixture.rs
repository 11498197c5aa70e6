//! The tests that need no root and no real cgroups: parsers and fixture
//! trees, the exporter's output against the goldens, the docs' examples,
//! the PSI agent and its delivery against local servers, the web and
//! kubelet TLS paths. One binary, one module per file:
//! `cargo test --test fixture [module::][name]`.
//!
//! (`discovery` has one case that lowers an inotify sysctl: it needs root
//! and skips without it, or fails under `CGPE_REQUIRE_KERNEL=1` / `CI=true`.)

mod common;

mod config_examples;
mod discovery;
mod fixtures_golden;
mod fuzz_parsers;
mod kubelet;
mod namespaces_fixture;
mod psi_agent;
mod psi_delivery;
mod web_security;
