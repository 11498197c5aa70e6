//! The YAML configuration file (`--config.file`). Every field has a default,
//! so the exporter needs no file at all. Unknown keys are errors, so a typo
//! never silently turns a feature off.
//!
//! - this file: the schema, its defaults, and loading;
//! - [`validate`]: semantic checks, located to the key that is wrong;
//! - [`diagnostics`]: serde_norway's errors rewritten into one located line,
//!   shared with `--web.config.file`;
//! - [`template`]: the annotation template language (checked here, rendered
//!   by the PSI agent);
//! - [`watch`]: the config in force, handed to every consumer, and the one
//!   reload path;
//! - receiver URLs are [`HttpUrl`]s, checked as they are deserialized;
//!   `kubernetes.kubelet_url` is resolved by [`KubernetesConfig::kubelet_url`].

mod diagnostics;
mod template;
mod trigger_spec;
mod validate;
pub mod watch;

pub(crate) use diagnostics::yaml_error;
pub use template::{render_template, TEMPLATE_PLACEHOLDERS};
pub use trigger_spec::{SpecProblem, TriggerSpec};
pub use validate::{
    has_cap_sys_resource, ValidationContext, ValidationError, PSI_UNPRIVILEGED_WINDOW_STEP,
    PSI_WINDOW_MAX, PSI_WINDOW_MIN, RESERVED_LABELS,
};

use diagnostics::FieldPath;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::net::HttpUrl;
pub use watch::{Companion, Refused, Watch};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    // A section written with no value (`psi:` with everything below it
    // commented out) means its defaults, not a type error.
    #[serde(deserialize_with = "null_as_default")]
    pub cgroups: CgroupsConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub metrics: MetricsConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub namespaces: NamespacesConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub psi: PsiConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub alerting: AlertingConfig,
    #[serde(deserialize_with = "null_as_default")]
    pub kubernetes: KubernetesConfig,
}

/// Which cgroups are tracked: cardinality guards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupsConfig {
    /// Globs on the cgroup path (`*` within a segment, `**` across): only
    /// matching cgroups are tracked.
    pub include: Vec<String>,
    /// Globs removed from what `include` selected.
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
    /// Stat files kept open between scrapes and re-read with `pread`
    /// (~2 µs instead of ~13 µs a file). Each costs one fd and ~4.4 KiB of
    /// kernel memory charged to the exporter's cgroup. Unset: half the soft
    /// `RLIMIT_NOFILE`, at most 3072. 0 turns the cache off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd_cache: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespacesConfig {
    /// Walk `/proc/<pid>/ns` for the `namespace*` families; off saves a
    /// readlink per process and namespace type on every scrape.
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
    /// Each rule arms one kernel trigger per matching cgroup.
    #[serde(deserialize_with = "null_as_default")]
    pub rules: Vec<PsiRule>,
    /// cgroup v1 memory pressure notifications (`memory.pressure_level`):
    /// the per-cgroup warning pure v1 hosts have instead of PSI. Each rule
    /// registers one eventfd per matching v1 memory cgroup.
    #[serde(deserialize_with = "null_as_default")]
    pub pressure_levels: Vec<PressureLevelRule>,
}

/// The kernel's v1 memory pressure levels, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PressureLevel {
    /// The cgroup is reclaiming memory for new allocations.
    Low,
    /// Reclaim is struggling (swapping, evicting active file cache).
    Medium,
    /// Reclaim mostly fails: an OOM kill is near.
    Critical,
}

impl PressureLevel {
    pub fn name(self) -> &'static str {
        match self {
            PressureLevel::Low => "low",
            PressureLevel::Medium => "medium",
            PressureLevel::Critical => "critical",
        }
    }
}

/// An alert rule on v1 `memory.pressure_level` notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PressureLevelRule {
    /// Becomes the alert's `alertname`, so it must be unique (across
    /// `psi.rules` too).
    pub name: String,
    /// Globs on cgroup paths of the v1 memory hierarchy; `/` alone is its
    /// root (the whole host).
    pub cgroups: Vec<String>,
    /// The level registered with the kernel (`low`, `medium`, `critical`).
    pub level: PressureLevel,
    /// Quiet time after the last notification before the alert resolves.
    #[serde(with = "humantime_serde_compat", default = "default_resolve_after")]
    pub resolve_after: Duration,
    /// Added to every alert of this rule.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Templates, as for `psi.rules`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
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
    /// Becomes the alert's `alertname`, so it must be unique.
    pub name: String,
    /// Globs on cgroup paths; `/` alone means the host (`/proc/pressure`).
    pub cgroups: Vec<String>,
    /// Which `<resource>.pressure` file the trigger is armed on.
    pub resource: Resource,
    /// `some`: at least one task stalled; `full`: all non-idle tasks stalled.
    #[serde(default = "default_kind")]
    pub kind: PsiKind,
    /// Stall time within one window that fires the trigger.
    #[serde(with = "humantime_serde_compat")]
    pub threshold: Duration,
    /// The kernel's tracking window (500ms..10s; a multiple of 2s without
    /// `CAP_SYS_RESOURCE`).
    #[serde(with = "humantime_serde_compat", default = "default_window")]
    pub window: Duration,
    /// Quiet time after the last firing before the alert resolves.
    #[serde(with = "humantime_serde_compat", default = "default_resolve_after")]
    pub resolve_after: Duration,
    /// Added to every alert of this rule.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Templates with `{{ cgroup }}`, `{{ rule }}`, `{{ resource }}`,
    /// `{{ kind }}`, `{{ value }}`, `{{ node }}`.
    #[serde(default, deserialize_with = "null_as_default")]
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
    pub alertmanagers: Vec<HttpUrl>,
    /// URLs that receive each alert as JSON.
    pub webhooks: Vec<HttpUrl>,
    /// Per-request timeout towards each receiver.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Alert at once on each OOM kill in a tracked cgroup.
    pub oom_kills: bool,
    /// Alerts held per receiver while it is unreachable; beyond it the
    /// oldest are dropped and counted.
    pub queue_capacity: usize,
    /// Base URL the alerts' `generatorURL` points at (defaults to the
    /// exporter's own address). Written `""` when unset.
    #[serde(with = "crate::net::url::optional")]
    pub external_url: Option<HttpUrl>,
    /// How often firing alerts are sent again, so that Alertmanager (whose
    /// `resolve_timeout` defaults to 5m) never resolves them on its own.
    #[serde(with = "humantime_serde_compat")]
    pub resend_interval: Duration,
    /// TLS towards `https://` receivers, named as in Prometheus's
    /// `alertmanager_config`: in-cluster Alertmanagers usually hold a
    /// certificate of a private CA, sometimes behind mTLS.
    pub tls_config: TlsClientConfig,
    /// cgroup v2 `memory.events` `high` and `max` as alerts (opt-in).
    pub memory_events: MemoryEventsConfig,
}

/// Opt-in alerts on cgroup v2 `memory.events`: `high` (the cgroup is
/// throttled at `memory.high`) and `max` (it hit `memory.max`), the last
/// signals before an OOM kill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryEventsConfig {
    /// `CgroupMemoryHigh` when a cgroup's `high` counter grows.
    pub high: bool,
    /// `CgroupMemoryMax` when a cgroup's `max` counter grows.
    pub max: bool,
    /// Fires on the first increase; resolves once the counter has not
    /// grown for this long, so a cgroup that sits at its limit is one alert,
    /// not one per reclaim pass.
    #[serde(with = "humantime_serde_compat")]
    pub hold_off: Duration,
}

impl Default for MemoryEventsConfig {
    fn default() -> Self {
        MemoryEventsConfig {
            high: false,
            max: false,
            hold_off: Duration::from_secs(300),
        }
    }
}

/// Client TLS settings. Empty strings mean unset; relative paths are
/// relative to the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientConfig {
    /// PEM CA bundle that signs the receivers' certificates; unset: the
    /// public web roots compiled in.
    pub ca_file: String,
    /// PEM client certificate to present (with `key_file`), for receivers
    /// that require one.
    pub cert_file: String,
    pub key_file: String,
    /// Accept any server certificate (signatures are still checked).
    pub insecure_skip_verify: bool,
}

impl TlsClientConfig {
    pub fn client_tls(&self) -> crate::net::ClientTls {
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        crate::net::ClientTls {
            ca_file: path(&self.ca_file),
            cert_file: path(&self.cert_file),
            key_file: path(&self.key_file),
            insecure_skip_verify: self.insecure_skip_verify,
        }
    }

    /// Makes relative paths relative to `base` (the config file's folder),
    /// as Prometheus does, so the config means the same from any cwd.
    fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file] {
            if !p.is_empty() && Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).to_string_lossy().into_owned();
            }
        }
    }
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            timeout: Duration::from_secs(5),
            oom_kills: true,
            queue_capacity: 10000,
            resend_interval: Duration::from_secs(30),
            external_url: None,
            tls_config: TlsClientConfig::default(),
            memory_events: MemoryEventsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// e.g. `https://${NODE_IP}:10250`: adds `pod`, `namespace`, `container`.
    ///
    /// `${VAR}` references are expanded from the process environment (see
    /// [`expand_env_refs`]) when the kubelet client is built, and checked
    /// when the config is loaded: an unset or empty variable is a config
    /// error. Only this key expands, because it is the one value that
    /// differs per node (a DaemonSet sets `NODE_IP` from `status.hostIP`)
    /// while every node shares one config file. The struct keeps the text
    /// as written, so `--check-config` prints `${NODE_IP}`, not an address.
    pub kubelet_url: String,
    /// Bearer token file for the kubelet (the service account's by default
    /// in the Helm chart).
    pub token_file: String,
    /// Skip TLS verification of the kubelet's serving certificate (kubelets
    /// commonly use self-signed ones).
    pub insecure_skip_verify: bool,
}

impl KubernetesConfig {
    /// The kubelet's URL, or `None` when `kubelet_url` is empty (enrichment
    /// off): `${VAR}` references expanded with `env`, then parsed. Config
    /// validation and the kubelet client both get it from here, so what
    /// `--check-config` accepts is what the client uses.
    pub fn kubelet_url(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<HttpUrl>, KubeletUrlError> {
        if self.kubelet_url.is_empty() {
            return Ok(None);
        }
        let expanded = expand_env_refs(&self.kubelet_url, env)?;
        let invalid = |why: String| KubeletUrlError::Url {
            expanded: expanded.clone(),
            why,
        };
        let url = HttpUrl::parse(&expanded).map_err(invalid)?;
        if url.uri().query().is_some() {
            return Err(invalid("no query string allowed".to_string()));
        }
        Ok(Some(url))
    }
}

/// Why `kubernetes.kubelet_url` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeletUrlError {
    #[error(transparent)]
    Env(#[from] EnvRefError),
    /// The URL after expansion, and what is wrong with it.
    #[error("{why}")]
    Url { expanded: String, why: String },
}

/// Why a `${VAR}` reference cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvRefError {
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("environment variable {0} is empty")]
    Empty(String),
    #[error("unclosed \"${{\": expected ${{VAR}}")]
    Unclosed,
    #[error("invalid variable name {0:?} in ${{...}}: use letters, digits and _ (not starting with a digit)")]
    InvalidName(String),
}

/// Replaces each `${VAR}` in `s` with `lookup(VAR)`. Only the braced form:
/// a `$` not followed by `{` is kept as written, and there is no escape
/// (none is needed in a URL). Values are inserted as they are, not
/// expanded again. A variable `lookup` does not know, or knows as empty, is
/// an error rather than an empty string: `https://:10250` would only fail
/// later and less clearly.
pub fn expand_env_refs(
    s: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, EnvRefError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(EnvRefError::Unclosed)?;
        let name = &after[..end];
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(EnvRefError::InvalidName(name.to_string()));
        }
        match lookup(name) {
            None => return Err(EnvRefError::Unset(name.to_string())),
            Some(v) if v.is_empty() => return Err(EnvRefError::Empty(name.to_string())),
            Some(v) => out.push_str(&v),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A process environment variable for [`expand_env_refs`]; a value that
/// is not UTF-8 is converted lossily (and then fails the URL check).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Durations as humantime strings (`150ms`, `2s`).
mod humantime_serde_compat {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    // A visitor rather than `String::deserialize` + `map_err`: an error
    // raised inside the visitor is stamped by serde_norway with the
    // scalar's own line, column and key path, so "2x" is reported where it
    // is written and not at the start of the enclosing rule.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 150ms or 2s")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            humantime::parse_duration(s).map_err(|e| {
                let why = match e {
                    humantime::DurationError::UnknownUnit { unit, .. } => {
                        format!("unknown unit {unit:?} (use ns, us, ms, s, m or h)")
                    }
                    humantime::DurationError::NumberExpected(_) => {
                        "expected a number followed by a unit".to_string()
                    }
                    humantime::DurationError::InvalidCharacter(_) => {
                        "invalid character".to_string()
                    }
                    humantime::DurationError::NumberOverflow => "number too large".to_string(),
                    humantime::DurationError::Empty => "empty".to_string(),
                };
                let t = s.trim();
                if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    return E::custom(format!(
                        "invalid duration {s:?}: a unit is needed, e.g. {t}s or {t}ms"
                    ));
                }
                E::custom(format!("invalid duration {s:?}: {why}"))
            })
        }
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
    /// The file is not valid YAML or does not fit the schema (wrong type,
    /// unknown key, bad duration or enum value).
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    /// The file fits the schema but asks for something that cannot work
    /// (see [`Config::validate`]). One line per problem.
    #[error("{}", format_validation_errors(.file, .errors))]
    Validation {
        file: PathBuf,
        errors: Vec<ValidationError>,
    },
}

fn format_validation_errors(file: &Path, errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(|e| e.display_in(file))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads, parses and validates a config file with the default (strict)
    /// [`ValidationContext`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &ValidationContext::default())
    }

    /// Reads, parses and validates a config file against what this host
    /// allows (`ValidationContext::detect`).
    pub fn load_with(path: &Path, ctx: &ValidationContext) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::parse_str_with(&text, path, ctx)?;
        // Files named by the config are read now, so a missing CA or key
        // fails the start, `--check-config` and a reload, not the first
        // alert.
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.alerting.tls_config.resolve_paths(base);
        let tls = &cfg.alerting.tls_config;
        if tls.client_tls().is_set() {
            if let Err(e) = tls.client_tls().build() {
                let mut at = FieldPath::default().key("alerting").key("tls_config");
                let named = |s: &str| e.path() == Some(Path::new(s));
                // The key naming the bad file when it can be told; a key
                // that does not match its certificate is the key file's.
                if named(&tls.ca_file) {
                    at = at.key("ca_file");
                } else if named(&tls.cert_file) {
                    at = at.key("cert_file");
                } else if named(&tls.key_file) || !tls.key_file.is_empty() {
                    at = at.key("key_file");
                }
                let mut err = ValidationError::new(&at, e.to_string());
                err.locate_in(&text);
                return Err(ConfigError::Validation {
                    file: path.to_path_buf(),
                    errors: vec![err],
                });
            }
        }
        Ok(cfg)
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        Self::parse_str_with(text, file, &ValidationContext::default())
    }

    /// Parses YAML text and validates it against `ctx`. Validation errors
    /// carry the line and column of the value they name.
    pub fn parse_str_with(
        text: &str,
        file: &Path,
        ctx: &ValidationContext,
    ) -> Result<Config, ConfigError> {
        let cfg = Self::parse_str_unvalidated(text, file)?;
        match cfg.validate(ctx) {
            Ok(()) => Ok(cfg),
            Err(mut errors) => {
                for e in &mut errors {
                    e.locate_in(text);
                }
                Err(ConfigError::Validation {
                    file: file.to_path_buf(),
                    errors,
                })
            }
        }
    }

    /// Parses YAML text into the schema only: syntax, types, unknown keys,
    /// durations and enum values. No semantic checks.
    pub fn parse_str_unvalidated(text: &str, file: &Path) -> Result<Config, ConfigError> {
        // A first pass into a plain value reports YAML syntax errors as
        // such (the typed pass may trip over the type of a half-parsed node
        // first) and lets a file of only comments mean "all defaults".
        match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(value) if value.is_null() => return Ok(Config::default()),
            Ok(_) => {}
            // A value `Value` cannot hold (an integer beyond 64 bits) is
            // not a syntax error: let the typed pass say what was expected.
            Err(e) if e.to_string().contains("expected any YAML value") => {}
            Err(e) => return Err(yaml_error(file, text, &e)),
        }
        serde_yaml::from_str(text).map_err(|e| yaml_error(file, text, &e))
    }

    /// The normalised config as YAML, for `--check-config`: every default
    /// filled in, durations as humantime strings. It parses back to an
    /// equal `Config`.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

impl PsiRule {
    /// The trigger line written to the pressure file, without the
    /// trailing NUL the writer must add.
    pub fn trigger_line(&self) -> String {
        format!(
            "{} {} {}",
            self.kind.name(),
            self.threshold.as_micros(),
            self.window.as_micros()
        )
    }
}

#[cfg(test)]
mod tests;
