//! The command line, in the Prometheus exporters' flag style
//! (`--web.listen-address`, `--path.procfs`, ...).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "cgroup-psi-exporter",
    version,
    about = "Prometheus exporter for cgroup usage, limits and pressure (PSI), with a PSI-trigger alerting agent",
    long_about = None
)]
pub struct Args {
    /// Address to listen on for HTTP requests (host:port; ":9753" means all addresses).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9753"
    )]
    pub listen_address: String,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// TLS and basic-auth config, in the Prometheus exporter-toolkit format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// YAML config file (cgroup filters, PSI rules, alerting). Optional: defaults need none.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// cgroup filesystem root; v2, v1 or hybrid layout is detected.
    #[arg(
        long = "path.cgroupfs",
        value_name = "DIR",
        default_value = "/sys/fs/cgroup"
    )]
    pub cgroupfs: PathBuf,

    /// procfs root ("/host/proc" in the DaemonSet).
    #[arg(long = "path.procfs", value_name = "DIR", default_value = "/proc")]
    pub procfs: PathBuf,

    /// Log level.
    #[arg(long = "log.level", value_name = "LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(long = "log.format", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,

    /// Collect once, print the exposition (Prometheus text) to stdout and exit.
    #[arg(long)]
    pub once: bool,

    /// Validate --config.file, print the normalised config or the error, and exit.
    #[arg(long = "check-config")]
    pub check_config: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_follow_the_design() {
        let a = Args::parse_from(["x"]);
        assert_eq!(a.listen_address, ":9753");
        assert_eq!(a.telemetry_path, "/metrics");
        assert_eq!(a.cgroupfs, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(a.procfs, PathBuf::from("/proc"));
        assert_eq!(a.log_level, LogLevel::Info);
        assert_eq!(a.log_format, LogFormat::Logfmt);
    }
}
