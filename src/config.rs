//! The YAML configuration file (`--config.file`). Every field has a default,
//! so the exporter needs no file at all. Unknown keys are errors, so a typo
//! never silently turns a feature off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub cgroups: CgroupsConfig,
    pub metrics: MetricsConfig,
    pub namespaces: NamespacesConfig,
    pub psi: PsiConfig,
    pub alerting: AlertingConfig,
    pub kubernetes: KubernetesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cgroups: CgroupsConfig::default(),
            metrics: MetricsConfig::default(),
            namespaces: NamespacesConfig::default(),
            psi: PsiConfig::default(),
            alerting: AlertingConfig::default(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

/// Which cgroups are tracked: cardinality guards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupsConfig {
    /// Globs on the cgroup path (`*` within a segment, `**` across).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Deepest level tracked; the root is depth 0.
    pub max_depth: usize,
    /// Beyond this many, new cgroups are skipped, warned about and counted.
    pub max_cgroups: usize,
}

impl Default for CgroupsConfig {
    fn default() -> Self {
        CgroupsConfig {
            include: vec!["**".to_string()],
            exclude: Vec::new(),
            max_depth: 10,
            max_cgroups: 20000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Metric family names (as exported, e.g. `cgroup_memory_stat_bytes`)
    /// that are neither read nor exported.
    pub disable: Vec<String>,
    /// Costly families that are off unless named here
    /// (`cgroup_memory_numa_bytes`).
    pub enable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespacesConfig {
    pub enabled: bool,
}

impl Default for NamespacesConfig {
    fn default() -> Self {
        NamespacesConfig { enabled: true }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PsiConfig {
    pub rules: Vec<PsiRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Cpu,
    Memory,
    Io,
    Irq,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Io => "io",
            Resource::Irq => "irq",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PsiKind {
    Some,
    Full,
}

impl PsiKind {
    pub fn name(self) -> &'static str {
        match self {
            PsiKind::Some => "some",
            PsiKind::Full => "full",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsiRule {
    pub name: String,
    /// Globs on cgroup paths; `/` alone means the host (`/proc/pressure`).
    pub cgroups: Vec<String>,
    pub resource: Resource,
    #[serde(default = "default_kind")]
    pub kind: PsiKind,
    #[serde(with = "humantime_serde_compat")]
    pub threshold: Duration,
    #[serde(with = "humantime_serde_compat", default = "default_window")]
    pub window: Duration,
    #[serde(with = "humantime_serde_compat", default = "default_resolve_after")]
    pub resolve_after: Duration,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_kind() -> PsiKind {
    PsiKind::Some
}

fn default_window() -> Duration {
    Duration::from_secs(2)
}

fn default_resolve_after() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Alertmanager base URLs; alerts are POSTed to `<url>/api/v2/alerts`.
    pub alertmanagers: Vec<String>,
    /// URLs that receive each alert as JSON.
    pub webhooks: Vec<String>,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Alert at once on each OOM kill in a tracked cgroup.
    pub oom_kills: bool,
    /// Alerts held per receiver while it is unreachable; beyond it the
    /// oldest are dropped and counted.
    pub queue_capacity: usize,
    /// Base URL the alerts' `generatorURL` points at (defaults to the
    /// exporter's own address).
    pub external_url: String,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            timeout: Duration::from_secs(5),
            oom_kills: true,
            queue_capacity: 10000,
            external_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// e.g. `https://NODE_IP:10250`: adds `pod`, `namespace`, `container`.
    pub kubelet_url: String,
    /// Bearer token file for the kubelet (the service account's by default
    /// in the Helm chart).
    pub token_file: String,
    /// Skip TLS verification of the kubelet's serving certificate (kubelets
    /// commonly use self-signed ones).
    pub insecure_skip_verify: bool,
}

/// Durations as humantime strings (`150ms`, `2s`).
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// A config error, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse_str(&text, path)
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((0, 0));
                ConfigError::Syntax {
                    file: file.to_path_buf(),
                    line,
                    column,
                    message: e.to_string(),
                }
            })?
        };
        Ok(cfg)
    }

    /// The normalised config as YAML, for `--check-config`.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}
