//! The tests against the real kernel: real cgroups, PSI triggers and the
//! kernel's own files, as root. Without root or cgroupfs they print
//! `skipped: <reason>` and pass, and fail instead with
//! `CGPE_REQUIRE_KERNEL=1` or `CI=true`; `kernel_v2` runs only on a pure
//! cgroup v2 host (the VM of `scripts/vm/run`, which runs this binary one
//! module at a time). One binary, one module per file:
//! `flock /tmp/cgpe-kernel.lock cargo test --test kernel [module::][name]`.
//!
//! Tests of different modules never run side by side (`common::gate`), as
//! when each file was a binary of its own.

mod common;

mod kernel_core;
mod kernel_discovery;
mod kernel_namespaces;
mod kernel_privileges;
mod kernel_psi;
mod kernel_v2;
