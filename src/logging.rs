//! Logging setup: logfmt-style or JSON lines on stderr, as the Prometheus
//! exporters do, so log pipelines that parse node_exporter parse us too.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, LogLevel};

pub fn init(level: LogLevel, format: LogFormat) {
    let directive = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    };
    // Our crate at the chosen level; dependencies one notch quieter.
    let filter = EnvFilter::new(format!("warn,cgroup_psi_exporter={directive}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Logfmt => builder.with_ansi(false).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
