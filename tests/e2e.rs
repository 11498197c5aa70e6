//! End to end: a real Prometheus and Alertmanager against the exporter
//! and the agent on real cgroups (root; skipped otherwise, failing under
//! `CGPE_REQUIRE_KERNEL=1` / `CI=true`), and the exporter binary under
//! restarts, signals, reloads and resource limits (`reliability`). One
//! binary, one module per file:
//! `flock /tmp/cgpe-kernel.lock cargo test --test e2e [module::][name]`.

mod common;

mod e2e_alertmanager;
mod e2e_prometheus;
mod reliability;
