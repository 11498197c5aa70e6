//! The YAML configuration file (`--config.file`). Every field has a default,
//! so the exporter needs no file at all. Unknown keys are errors, so a typo
//! never silently turns a feature off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::glob::Glob;

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
    /// `RLIMIT_NOFILE`, at most 8192. 0 turns the cache off.
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
    pub alertmanagers: Vec<String>,
    /// URLs that receive each alert as JSON.
    pub webhooks: Vec<String>,
    /// Per-request timeout towards each receiver.
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
    /// How often firing alerts are sent again, so that Alertmanager (whose
    /// `resolve_timeout` defaults to 5m) never resolves them on its own.
    #[serde(with = "humantime_serde_compat")]
    pub resend_interval: Duration,
    /// TLS towards `https://` receivers, named as in Prometheus's
    /// `alertmanager_config`: in-cluster Alertmanagers usually hold a
    /// certificate of a private CA, sometimes behind mTLS.
    pub tls_config: TlsClientConfig,
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
    pub fn client_tls(&self) -> crate::tlsclient::ClientTls {
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        crate::tlsclient::ClientTls {
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
            external_url: String::new(),
            tls_config: TlsClientConfig::default(),
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

/// What validation may assume about the host the config will run on.
///
/// `Default` is the strict, kernel-independent context: no
/// `CAP_SYS_RESOURCE` (the hardened DaemonSet case), and no family list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationContext {
    /// Whether the process may arm PSI triggers with any window (not only
    /// multiples of 2s). See [`has_cap_sys_resource`].
    pub cap_sys_resource: bool,
    /// Metric family names `metrics.disable`/`enable` may name; empty skips
    /// the check.
    pub known_families: Vec<&'static str>,
}

impl ValidationContext {
    /// The context of this process: its capabilities read from
    /// `<procfs>/self/status`. Fill `known_families` from the collector.
    pub fn detect(procfs: &Path) -> ValidationContext {
        ValidationContext {
            cap_sys_resource: has_cap_sys_resource(procfs),
            known_families: Vec::new(),
        }
    }
}

/// One semantic problem in a config, named by its key path
/// (`psi.rules[1].window`) and, when parsed from text, located in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    pub path: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    segments: Vec<PathSegment>,
}

impl ValidationError {
    fn new(path: &FieldPath, message: String) -> ValidationError {
        ValidationError {
            path: path.to_string(),
            line: None,
            column: None,
            message,
            segments: path.0.clone(),
        }
    }

    /// `file:line:column: path: message`, or `file: path: message` when the
    /// key is not in the text (a default value).
    pub fn display_in(&self, file: &Path) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}: {self}", file.display()),
            _ => format!("{}: {self}", file.display()),
        }
    }

    /// Points the error at the value it names in `text`, or at the
    /// nearest enclosing key that is written there (a rule whose `window`
    /// was left at its default is reported at the rule).
    fn locate_in(&mut self, text: &str) {
        for len in (1..=self.segments.len()).rev() {
            if let Some((line, column)) = locate(text, &self.segments[..len]) {
                self.line = Some(line);
                self.column = Some(column);
                return;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathSegment {
    Key(String),
    Index(usize),
}

/// A key path into the config, built while validating.
#[derive(Debug, Clone, Default)]
struct FieldPath(Vec<PathSegment>);

impl FieldPath {
    fn key(&self, k: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(k.to_string()));
        p
    }

    fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(i));
        p
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Key(k) if i == 0 => f.write_str(k)?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
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

    /// Semantic checks the schema cannot express: globs, kernel limits on
    /// PSI triggers, label names, templates, URLs. Collects every problem
    /// rather than stopping at the first, so one `--check-config` run shows
    /// them all. `kubernetes.kubelet_url` is checked after expanding its
    /// `${VAR}` references from the process environment.
    pub fn validate(&self, ctx: &ValidationContext) -> Result<(), Vec<ValidationError>> {
        let mut errs = Vec::new();
        let root = FieldPath::default();
        self.validate_cgroups(&root.key("cgroups"), &mut errs);
        self.validate_metrics(&root.key("metrics"), ctx, &mut errs);
        let rules = root.key("psi").key("rules");
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, rule) in self.psi.rules.iter().enumerate() {
            let path = rules.index(i);
            if let Some(first) = seen.get(rule.name.as_str()) {
                errs.push(ValidationError::new(
                    &path.key("name"),
                    format!(
                        "duplicate rule name {:?} (also psi.rules[{first}]): it is the alertname, so it must be unique",
                        rule.name
                    ),
                ));
            } else {
                seen.insert(&rule.name, i);
            }
            rule.validate(&path, ctx, &mut errs);
        }
        self.validate_alerting(&root.key("alerting"), &mut errs);
        self.validate_kubernetes(&root.key("kubernetes"), process_env, &mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// `kubelet_url`, checked as the kubelet client will use it: expanded
    /// with `env` (the process environment, so `--check-config` should run
    /// with the exporter's environment), then parsed.
    fn validate_kubernetes(
        &self,
        path: &FieldPath,
        env: impl Fn(&str) -> Option<String>,
        errs: &mut Vec<ValidationError>,
    ) {
        let kubelet = &self.kubernetes.kubelet_url;
        if kubelet.is_empty() {
            return;
        }
        let at = path.key("kubelet_url");
        match expand_env_refs(kubelet, env) {
            Err(why) => errs.push(ValidationError::new(&at, format!("{kubelet:?}: {why}"))),
            Ok(url) => {
                if let Err(why) = parse_http_url(&url) {
                    let shown = if url == *kubelet {
                        format!("{kubelet:?}")
                    } else {
                        format!("{kubelet:?} (expanded to {url:?})")
                    };
                    errs.push(ValidationError::new(&at, format!("{shown}: {why}")));
                }
            }
        }
    }

    fn validate_cgroups(&self, path: &FieldPath, errs: &mut Vec<ValidationError>) {
        let c = &self.cgroups;
        for (key, globs) in [("include", &c.include), ("exclude", &c.exclude)] {
            for (i, g) in globs.iter().enumerate() {
                if let Err(e) = Glob::new(g) {
                    errs.push(ValidationError::new(&path.key(key).index(i), e.to_string()));
                }
            }
        }
        if c.max_cgroups == 0 {
            errs.push(ValidationError::new(
                &path.key("max_cgroups"),
                "must be at least 1".to_string(),
            ));
        }
    }

    fn validate_metrics(
        &self,
        path: &FieldPath,
        ctx: &ValidationContext,
        errs: &mut Vec<ValidationError>,
    ) {
        let m = &self.metrics;
        for (key, names) in [("disable", &m.disable), ("enable", &m.enable)] {
            for (i, name) in names.iter().enumerate() {
                let p = path.key(key).index(i);
                if !ctx.known_families.is_empty() && !family_known(&ctx.known_families, name) {
                    let hint = suggest(name, ctx.known_families.iter().copied())
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    errs.push(ValidationError::new(
                        &p,
                        format!("unknown metric family {name:?}{hint}"),
                    ));
                }
                if key == "enable" && m.disable.contains(name) {
                    errs.push(ValidationError::new(
                        &p,
                        format!("{name:?} is both enabled and disabled"),
                    ));
                }
            }
        }
    }

    fn validate_alerting(&self, path: &FieldPath, errs: &mut Vec<ValidationError>) {
        let a = &self.alerting;
        for (key, urls) in [
            ("alertmanagers", &a.alertmanagers),
            ("webhooks", &a.webhooks),
        ] {
            for (i, url) in urls.iter().enumerate() {
                if let Err(why) = parse_http_url(url) {
                    errs.push(ValidationError::new(
                        &path.key(key).index(i),
                        format!("{url:?}: {why}"),
                    ));
                }
            }
        }
        if !a.external_url.is_empty() {
            if let Err(why) = parse_http_url(&a.external_url) {
                errs.push(ValidationError::new(
                    &path.key("external_url"),
                    format!("{:?}: {why}", a.external_url),
                ));
            }
        }
        if a.timeout.is_zero() {
            errs.push(ValidationError::new(
                &path.key("timeout"),
                "must be greater than 0".to_string(),
            ));
        }
        if a.queue_capacity == 0 {
            errs.push(ValidationError::new(
                &path.key("queue_capacity"),
                "must be at least 1".to_string(),
            ));
        }
        let tls = &a.tls_config;
        if tls.cert_file.is_empty() != tls.key_file.is_empty() {
            let (set, unset) = if tls.cert_file.is_empty() {
                ("key_file", "cert_file")
            } else {
                ("cert_file", "key_file")
            };
            errs.push(ValidationError::new(
                &path.key("tls_config").key(set),
                format!("a client certificate needs {unset} too"),
            ));
        }
        if a.resend_interval < Duration::from_secs(1)
            || a.resend_interval > Duration::from_secs(240)
        {
            errs.push(ValidationError::new(
                &path.key("resend_interval"),
                format!(
                    "{}: must be between 1s and 4m (below Alertmanager's default resolve_timeout of 5m)",
                    humantime::format_duration(a.resend_interval)
                ),
            ));
        }
    }
}

/// Whether `name` is a known family, allowing the exported `_total` suffix
/// of counters to be written or left out.
fn family_known(known: &[&str], name: &str) -> bool {
    known.iter().any(|k| {
        *k == name
            || name.strip_suffix("_total") == Some(k)
            || k.strip_suffix("_total") == Some(name)
    })
}

/// Kernel limits on a PSI trigger window (`kernel/sched/psi.c`).
pub const PSI_WINDOW_MIN: Duration = Duration::from_millis(500);
pub const PSI_WINDOW_MAX: Duration = Duration::from_secs(10);
/// Without `CAP_SYS_RESOURCE` the kernel accepts only windows that are a
/// multiple of this: unprivileged triggers ride on the 2s averaging work
/// instead of spawning a real-time polling thread.
pub const PSI_UNPRIVILEGED_WINDOW_STEP: Duration = Duration::from_secs(2);

/// Labels the agent sets on every PSI alert; a rule may not override them.
pub const RESERVED_LABELS: &[&str] = &["alertname", "rule", "cgroup", "resource", "kind"];

/// Placeholders annotation templates may use (see [`render_template`]).
pub const TEMPLATE_PLACEHOLDERS: &[&str] = &[
    "cgroup",
    "rule",
    "resource",
    "kind",
    "value",
    "node",
    "threshold",
    "window",
    // Labels the alert carries when the cgroup path or the kubelet gives them.
    "pod_uid",
    "container_id",
    "qos_class",
    "unit",
    "pod",
    "namespace",
    "container",
];

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

    fn validate(&self, path: &FieldPath, ctx: &ValidationContext, errs: &mut Vec<ValidationError>) {
        let mut err = |p: FieldPath, msg: String| errs.push(ValidationError::new(&p, msg));
        if self.name.is_empty() {
            err(
                path.key("name"),
                "must not be empty: it becomes the alert's alertname".to_string(),
            );
        } else if !is_rule_name(&self.name) {
            err(
                path.key("name"),
                format!(
                    "{:?}: use letters, digits, '_', ':', '.' and '-', starting with a letter or '_' (it becomes the alertname)",
                    self.name
                ),
            );
        }

        if self.cgroups.is_empty() {
            err(
                path.key("cgroups"),
                "needs at least one cgroup glob (\"/\" alone is the host)".to_string(),
            );
        }
        for (i, g) in self.cgroups.iter().enumerate() {
            if let Err(e) = Glob::new(g) {
                err(path.key("cgroups").index(i), e.to_string());
            }
        }

        if self.resource == Resource::Irq && self.kind == PsiKind::Some {
            err(
                path.key("kind"),
                "resource irq has only \"full\" pressure: use kind: full".to_string(),
            );
        }

        let window = self.window;
        let wp = path.key("window");
        let w = fmt_duration(window);
        if window < PSI_WINDOW_MIN || window > PSI_WINDOW_MAX {
            err(
                wp,
                format!(
                    "{w}: must be between 500ms and 10s (kernel limits on a PSI trigger window)"
                ),
            );
        } else if window.subsec_nanos() % 1000 != 0 {
            err(wp, format!("{w}: must be a whole number of microseconds"));
        } else if !ctx.cap_sys_resource
            && window.as_micros() % PSI_UNPRIVILEGED_WINDOW_STEP.as_micros() != 0
        {
            err(
                wp,
                format!(
                    "{w}: without CAP_SYS_RESOURCE the kernel accepts only windows that are multiples of 2s (grant CAP_SYS_RESOURCE or use 2s, 4s, ...)"
                ),
            );
        }

        let tp = path.key("threshold");
        let t = fmt_duration(self.threshold);
        if self.threshold.is_zero() {
            err(tp, "must be greater than 0".to_string());
        } else if self.threshold.subsec_nanos() % 1000 != 0 {
            err(tp, format!("{t}: must be a whole number of microseconds"));
        } else if self.threshold >= window {
            // The kernel would take threshold == window (stalled for the
            // whole window), but such a rule can only fire on a complete
            // stall: it is refused as the likely mistake it is.
            err(
                tp,
                format!(
                    "{t}: must be below the window ({w}): stall time is measured within one window"
                ),
            );
        }

        if self.resolve_after < window {
            err(
                path.key("resolve_after"),
                format!(
                    "{}: must be at least the window ({w}): a trigger fires at most once per window, so a shorter quiet time resolves alerts while pressure lasts",
                    fmt_duration(self.resolve_after)
                ),
            );
        }

        for key in self.labels.keys() {
            let p = path.key("labels").key(key);
            if key == "alertname" {
                err(
                    p,
                    "alertname is set from the rule name: rename the rule instead".to_string(),
                );
            } else if RESERVED_LABELS.contains(&key.as_str()) {
                err(
                    p,
                    format!("{key:?} is set by the agent on every alert and cannot be overridden"),
                );
            } else if !is_label_name(key) {
                err(
                    p,
                    format!("{key:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                );
            } else if key.starts_with("__") {
                err(
                    p,
                    format!("{key:?}: names starting with \"__\" are reserved"),
                );
            }
        }
        for (key, tpl) in &self.annotations {
            let p = path.key("annotations").key(key);
            if !is_label_name(key) {
                err(
                    p,
                    format!("{key:?} is not a valid annotation name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                );
            } else if let Err(why) = check_template(tpl, &self.labels) {
                err(p, why);
            }
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn is_rule_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'))
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Finds `{{ name }}` placeholders: yields the text before each, the
/// trimmed name and the raw placeholder; for an unclosed `{{`, `Err` with
/// all the remaining text.
fn placeholders(tpl: &str) -> impl Iterator<Item = Result<(&str, &str, &str), &str>> {
    let mut rest = tpl;
    std::iter::from_fn(move || {
        let open = rest.find("{{")?;
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            let bad = rest;
            rest = "";
            return Some(Err(bad));
        };
        let before = &rest[..open];
        let raw = &rest[open..open + 2 + close + 2];
        let name = after[..close].trim();
        rest = &after[close + 2..];
        Some(Ok((before, name, raw)))
    })
}

/// Placeholders are the agent's variables and the rule's own labels.
fn check_template(tpl: &str, labels: &BTreeMap<String, String>) -> Result<(), String> {
    for item in placeholders(tpl) {
        match item {
            Err(_) => return Err("unclosed \"{{\" in template".to_string()),
            Ok((_, name, raw))
                if !TEMPLATE_PLACEHOLDERS.contains(&name) && !labels.contains_key(name) =>
            {
                let known = TEMPLATE_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{{ {p} }}}}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(format!("unknown placeholder {raw:?} (known: {known})"));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Fills `{{ name }}` placeholders (spaces inside the braces optional)
/// from `vars`. Placeholders not in `vars` and an unclosed `{{` are kept
/// verbatim, so a template is never lost, only left unfilled.
pub fn render_template(tpl: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(tpl.len() + 32);
    let mut consumed = 0;
    for item in placeholders(tpl) {
        match item {
            Ok((before, name, raw)) => {
                out.push_str(before);
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(raw),
                }
                consumed += before.len() + raw.len();
            }
            Err(bad) => {
                out.push_str(bad);
                consumed = tpl.len();
            }
        }
    }
    out.push_str(&tpl[consumed..]);
    out
}

/// The parts of an `http(s)://host[:port][/path]` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpUrl<'a> {
    /// `http` or `https`, lowercase.
    pub scheme: &'static str,
    /// Host name, IPv4 address, or IPv6 address without brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Path and query as written (`""` when absent).
    pub path: &'a str,
}

/// Checks a receiver or kubelet URL. Deliberately small (no `url` crate):
/// scheme, host, optional port, optional path and query. Credentials and
/// fragments are rejected because nothing would send them.
pub fn parse_http_url(s: &str) -> Result<HttpUrl<'_>, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| "expected a URL such as http://host:port/path".to_string())?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        return Err(format!("scheme {scheme:?} is not http or https"));
    };
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("URL contains whitespace".to_string());
    }
    if s.contains('#') {
        return Err("URL fragments (#...) are not allowed".to_string());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".to_string());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| "unclosed \"[\" in IPv6 host".to_string())?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("invalid IPv6 address {addr:?}"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| "expected \":port\" after \"]\"".to_string())?,
            ),
        };
        (addr, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".to_string());
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Some(n),
            _ => return Err(format!("invalid port {p:?} (1-65535)")),
        },
    };
    Ok(HttpUrl {
        scheme,
        host,
        port,
        path,
    })
}

/// Whether this process holds `CAP_SYS_RESOURCE` in its effective set,
/// read from `CapEff` in `<procfs>/self/status`. Any failure reads as
/// "no": the strict check is the safe one to fall back on.
pub fn has_cap_sys_resource(procfs: &Path) -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let Ok(status) = std::fs::read_to_string(procfs.join("self").join("status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

// === YAML error messages ===

/// Turns a serde_norway error into one located line (also used for
/// `--web.config.file`, so both files report errors alike). serde_norway stamps
/// schema errors (wrong type, unknown key, enum value, our durations) with
/// the position and key path of the node, so only wording is fixed here.
pub(crate) fn yaml_error(file: &Path, text: &str, e: &serde_yaml::Error) -> ConfigError {
    let raw = e.to_string();
    let (line, column) = match e.location() {
        Some(l) => duplicate_key_location(text, &raw, l.line(), l.column())
            .unwrap_or((l.line(), l.column())),
        None => fallback_location(text, &raw),
    };
    ConfigError::Syntax {
        file: file.to_path_buf(),
        line,
        column,
        message: tidy_message(&raw),
    }
}

/// Errors serde_norway reports without a position: a second document is
/// pointed at its `---`, anything else at the start of the file.
fn fallback_location(text: &str, message: &str) -> (usize, usize) {
    if message.contains("more than one document") {
        let starts: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("---"))
            .map(|(i, _)| i + 1)
            .collect();
        let content_before_first = text
            .lines()
            .take(starts.first().map_or(0, |s| s - 1))
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let idx = if content_before_first { 0 } else { 1 };
        if let Some(line) = starts.get(idx) {
            return (*line, 1);
        }
    }
    (1, 1)
}

/// serde_norway reports a duplicate key at the start of its mapping; the
/// second occurrence of the key (same indentation, further down) is where
/// the user has to look. Block mappings only; `None` leaves the mapping's
/// position.
fn duplicate_key_location(
    text: &str,
    message: &str,
    line: usize,
    column: usize,
) -> Option<(usize, usize)> {
    let key = ["duplicate entry with key \"", "duplicate field `"]
        .iter()
        .find_map(|m| message.split_once(m))
        .and_then(|(_, rest)| rest.split(['"', '`']).next())?;
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (i, l) in text.lines().enumerate().skip(line.checked_sub(1)?) {
        let content = l.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        // Only the mapping's first line may start before its column (the
        // `- ` of a sequence item); anything else that does ends it.
        let Some((prefix, rest)) = l.split_at_checked(indent) else {
            break;
        };
        let item_start = i + 1 == line && prefix.trim() == "-";
        if !(prefix.chars().all(|c| c == ' ') || item_start) {
            break;
        }
        let is_key = rest
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with(':'));
        if is_key {
            seen += 1;
            if seen == 2 {
                return Some((i + 1, column));
            }
        }
    }
    None
}

fn tidy_message(raw: &str) -> String {
    let mut m = strip_positions(raw);
    // Numbers read better unquoted: `integer 1`, not `integer "1"`.
    for kind in ["integer `", "floating point `"] {
        if let Some(i) = m.find(kind) {
            let open = i + kind.len() - 1;
            if let Some(len) = m[open + 1..].find('`') {
                m.replace_range(open + 1 + len..open + 2 + len, "");
                m.replace_range(open..open + 1, "");
            }
        }
    }
    for (from, to) in [
        ("invalid type: map,", "invalid type: mapping,"),
        (" as u128", ""),
        (" as i128", ""),
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected a list"),
        ("unit value", "null"),
    ] {
        m = m.replace(from, to);
    }
    m = m
        .replace("expected a mapping", "\u{1}")
        .replace("expected a map", "\u{1}")
        .replace('\u{1}', "expected a mapping");
    while let Some(i) = m.find("expected struct ") {
        let rest = &m[i + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        m = format!("{}expected a mapping{}", &m[..i], &rest[end..]);
    }
    let hint = did_you_mean(&m);
    let mut m = match m.find("expected one of ") {
        Some(i) => format!("{}{}", m[..i].replace('`', "\""), m[i..].replace('`', "")),
        None => m.replace('`', "\""),
    };
    m.push_str(&hint);
    m
}

/// Removes serde_norway's " at line N column M" / " at position N": the
/// location is already in front of the message.
fn strip_positions(msg: &str) -> String {
    let mut out = msg.to_string();
    for marker in [" at line ", " at position "] {
        while let Some(i) = out.find(marker) {
            let after = &out[i + marker.len()..];
            let mut end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if marker == " at line " {
                if let Some(col) = after[end..].strip_prefix(" column ") {
                    let n = col.find(|c: char| !c.is_ascii_digit()).unwrap_or(col.len());
                    end += " column ".len() + n;
                }
            }
            if end == 0 {
                break;
            }
            out.replace_range(i..i + marker.len() + end, "");
        }
    }
    out
}

/// For "unknown field/variant `x`, expected one of `a`, `b`": the closest
/// expected name, as ` (did you mean "a"?)`.
fn did_you_mean(msg: &str) -> String {
    let Some(i) = msg
        .find("unknown field `")
        .or_else(|| msg.find("unknown variant `"))
    else {
        return String::new();
    };
    let ticked: Vec<&str> = msg[i..].split('`').skip(1).step_by(2).collect();
    let Some((given, expected)) = ticked.split_first() else {
        return String::new();
    };
    suggest(given, expected.iter().copied())
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

/// The candidate within edit distance 2 (or a third of the length) of
/// `given`, if any.
fn suggest<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(given, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// === Locating a key path in the text ===
//
// serde_norway keeps no positions in `Value`, but it stamps any error raised
// while deserializing a node with that node's line and column. So to find
// where `psi.rules[1].window` is written, deserialize the text with a seed
// that walks down that path and raises a marker error at the target node.

const LOCATE_MARKER: &str = "cgpe-locate-marker";

fn locate(text: &str, path: &[PathSegment]) -> Option<(usize, usize)> {
    use serde::de::DeserializeSeed;
    let de = serde_yaml::Deserializer::from_str(text);
    match Locate(path).deserialize(de) {
        Err(e) if e.to_string().contains(LOCATE_MARKER) => {
            e.location().map(|l| (l.line(), l.column()))
        }
        _ => None,
    }
}

struct Locate<'a>(&'a [PathSegment]);

impl<'de> serde::de::DeserializeSeed<'de> for Locate<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Locate<'_> {
    fn leaf<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(LOCATE_MARKER))
        } else {
            Ok(())
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Locate<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::IgnoredAny;
        let want = match self.0.split_first() {
            None => return Err(serde::de::Error::custom(LOCATE_MARKER)),
            Some((PathSegment::Index(n), rest)) => Some((*n, rest)),
            Some(_) => None,
        };
        let mut i = 0;
        loop {
            let more = match want {
                Some((n, rest)) if n == i => seq.next_element_seed(Locate(rest))?.is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::IgnoredAny;
        let want = match self.0.split_first() {
            None => return Err(serde::de::Error::custom(LOCATE_MARKER)),
            Some((PathSegment::Key(k), rest)) => Some((k.as_str(), rest)),
            Some(_) => None,
        };
        while let Some(key) = map.next_key::<KeyText>()? {
            match want {
                Some((k, rest)) if key.0.as_deref() == Some(k) => {
                    map.next_value_seed(Locate(rest))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A mapping key as text when it is a scalar.
struct KeyText(Option<String>);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<KeyText, E> {
                Ok(KeyText(Some(s.to_string())))
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<KeyText, E> {
                Ok(KeyText(Some(b.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<KeyText, E> {
                Ok(KeyText(Some(n.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<KeyText, E> {
                Ok(KeyText(Some(n.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<KeyText, E> {
                Ok(KeyText(Some(n.to_string())))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<KeyText, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<KeyText, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(KeyText(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "config.yaml";

    /// A valid rule on lines 1-6; tests append keys at line 7 onwards with
    /// six spaces of indentation (values of `window:` start at column 15).
    const RULE: &str = "psi:\n  rules:\n    - name: mem\n      cgroups: [\"/\"]\n      resource: memory\n      threshold: 150ms\n";

    fn rule_with(extra: &str) -> String {
        format!("{RULE}{extra}")
    }

    fn strict() -> ValidationContext {
        ValidationContext::default()
    }

    fn privileged() -> ValidationContext {
        ValidationContext {
            cap_sys_resource: true,
            known_families: Vec::new(),
        }
    }

    /// Asserts a schema/syntax error at exactly `line:column` whose message
    /// contains `fragment`.
    #[track_caller]
    fn assert_syntax(text: &str, line: usize, column: usize, fragment: &str) {
        match Config::parse_str(text, Path::new(FILE)) {
            Err(ConfigError::Syntax {
                file,
                line: l,
                column: c,
                message,
            }) => {
                assert_eq!(file, Path::new(FILE));
                assert_eq!((l, c), (line, column), "location of {message:?}");
                assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
                assert!(!message.contains('\n'), "not one line: {message:?}");
                assert!(!message.contains(" at line "), "{message:?}");
            }
            other => panic!("expected a syntax error for {text:?}, got {other:?}"),
        }
    }

    fn validation_errors(text: &str, ctx: &ValidationContext) -> Vec<ValidationError> {
        match Config::parse_str_with(text, Path::new(FILE), ctx) {
            Err(ConfigError::Validation { errors, .. }) => errors,
            other => panic!("expected validation errors for {text:?}, got {other:?}"),
        }
    }

    /// Asserts that validation reports `path` at `line:column` with a
    /// message containing `fragment`.
    #[track_caller]
    fn assert_invalid(
        text: &str,
        ctx: &ValidationContext,
        path: &str,
        line: usize,
        column: usize,
        fragment: &str,
    ) {
        let errors = validation_errors(text, ctx);
        let e = errors
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no error at {path} in {errors:?}"));
        assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
        assert!(
            e.message.contains(fragment),
            "{:?} lacks {fragment:?}",
            e.message
        );
    }

    #[track_caller]
    fn assert_valid(text: &str, ctx: &ValidationContext) -> Config {
        match Config::parse_str_with(text, Path::new(FILE), ctx) {
            Ok(cfg) => cfg,
            Err(e) => panic!("{text:?} should be valid: {e}"),
        }
    }

    // === schema and syntax errors: file:line:column ===

    #[test]
    fn unknown_resource_names_the_variant_and_choices() {
        let text = RULE.replace("resource: memory", "resource: gpu");
        assert_syntax(
            &text,
            5,
            17,
            "psi.rules[0].resource: unknown variant \"gpu\", expected one of cpu, memory, io, irq",
        );
        let err = Config::parse_str(&text, Path::new(FILE)).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("config.yaml:5:17: psi.rules[0].resource: unknown variant \"gpu\""));
    }

    #[test]
    fn misspelt_resource_gets_a_suggestion() {
        let text = RULE.replace("resource: memory", "resource: memroy");
        assert_syntax(&text, 5, 17, "(did you mean \"memory\"?)");
    }

    #[test]
    fn unknown_kind_is_located_at_its_value() {
        assert_syntax(
            &rule_with("      kind: smoe\n"),
            7,
            13,
            "psi.rules[0].kind: unknown variant \"smoe\", expected \"some\" or \"full\"",
        );
    }

    #[test]
    fn bad_duration_unit_is_located_at_its_value() {
        let text = RULE.replace("threshold: 150ms", "threshold: 2x");
        assert_syntax(
            &text,
            6,
            18,
            "psi.rules[0].threshold: invalid duration \"2x\": unknown unit \"x\"",
        );
    }

    #[test]
    fn duration_without_unit_asks_for_one() {
        assert_syntax(
            &rule_with("      window: 3\n"),
            7,
            15,
            "psi.rules[0].window: invalid duration \"3\": a unit is needed, e.g. 3s or 3ms",
        );
    }

    #[test]
    fn duration_of_wrong_type_is_located() {
        assert_syntax(
            &rule_with("      resolve_after: [1s]\n"),
            7,
            22,
            "psi.rules[0].resolve_after: invalid type: sequence, expected a duration such as 150ms or 2s",
        );
    }

    #[test]
    fn alerting_timeout_duration_is_checked() {
        assert_syntax(
            "alerting:\n  timeout: soon\n",
            2,
            12,
            "alerting.timeout: invalid duration \"soon\"",
        );
    }

    #[test]
    fn unknown_rule_key_is_located_at_the_key_with_suggestion() {
        assert_syntax(
            &rule_with("      windw: 2s\n"),
            7,
            7,
            "psi.rules[0]: unknown field \"windw\", expected one of name, cgroups, resource, kind, threshold, window, resolve_after, labels, annotations (did you mean \"window\"?)",
        );
    }

    #[test]
    fn unknown_top_level_key_is_reported() {
        assert_syntax(
            "cgroup:\n  include: []\n",
            1,
            1,
            "unknown field \"cgroup\", expected one of cgroups, metrics, namespaces, psi, alerting, kubernetes (did you mean \"cgroups\"?)",
        );
    }

    #[test]
    fn unknown_key_after_known_ones_is_located_at_itself() {
        assert_syntax(
            "cgroups:\n  include: []\n  inclde: []\n",
            3,
            3,
            "cgroups: unknown field \"inclde\"",
        );
    }

    #[test]
    fn unknown_key_in_flow_mapping_is_located() {
        assert_syntax(
            "psi:\n  rules:\n    - {name: a, cgroups: [\"/\"], resource: cpu, threshold: 1s, bogus: 1}\n",
            3,
            63,
            "psi.rules[0]: unknown field \"bogus\"",
        );
    }

    #[test]
    fn string_for_integer_is_a_type_error() {
        assert_syntax(
            "cgroups:\n  max_depth: abc\n",
            2,
            14,
            "cgroups.max_depth: invalid type: string \"abc\", expected a non-negative integer",
        );
    }

    #[test]
    fn negative_depth_is_a_type_error() {
        assert_syntax(
            "cgroups:\n  max_depth: -1\n",
            2,
            14,
            "cgroups.max_depth: invalid type: integer -1, expected a non-negative integer",
        );
    }

    #[test]
    fn float_for_integer_is_a_type_error() {
        assert_syntax(
            "alerting:\n  queue_capacity: 1.5\n",
            2,
            19,
            "alerting.queue_capacity: invalid type: floating point 1.5, expected a non-negative integer",
        );
    }

    #[test]
    fn huge_integer_is_a_type_error() {
        assert_syntax(
            "cgroups:\n  max_cgroups: 99999999999999999999999\n",
            2,
            16,
            "cgroups.max_cgroups: invalid type: integer 99999999999999999999999, expected a non-negative integer",
        );
    }

    #[test]
    fn string_for_list_is_a_type_error() {
        assert_syntax(
            "cgroups:\n  include: \"/a\"\n",
            2,
            12,
            "cgroups.include: invalid type: string \"/a\", expected a list",
        );
    }

    #[test]
    fn list_for_section_is_a_type_error() {
        assert_syntax(
            "cgroups: []\n",
            1,
            10,
            "cgroups: invalid type: sequence, expected a mapping",
        );
    }

    #[test]
    fn mapping_for_rules_is_a_type_error() {
        assert_syntax(
            "psi:\n  rules:\n    name: a\n",
            3,
            5,
            "psi.rules: invalid type: mapping, expected a list",
        );
    }

    #[test]
    fn yes_is_not_a_boolean() {
        assert_syntax(
            "namespaces:\n  enabled: yes\n",
            2,
            12,
            "namespaces.enabled: invalid type: string \"yes\", expected a boolean",
        );
    }

    #[test]
    fn integer_is_not_a_boolean() {
        assert_syntax(
            "alerting:\n  oom_kills: 1\n",
            2,
            14,
            "alerting.oom_kills: invalid type: integer 1, expected a boolean",
        );
    }

    #[test]
    fn nested_list_in_string_list_is_a_type_error() {
        assert_syntax(
            "metrics:\n  disable: [a, [b]]\n",
            2,
            16,
            "metrics.disable[1]: invalid type: sequence, expected a string",
        );
    }

    #[test]
    fn label_value_must_be_a_string() {
        assert_syntax(
            &rule_with("      labels: {team: [a]}\n"),
            7,
            22,
            "psi.rules[0].labels.team: invalid type: sequence, expected a string",
        );
    }

    #[test]
    fn missing_required_rule_field_is_located_at_the_rule() {
        let text = RULE.replace("      resource: memory\n", "");
        assert_syntax(&text, 3, 7, "psi.rules[0]: missing field \"resource\"");
    }

    #[test]
    fn top_level_list_is_a_type_error() {
        assert_syntax("- 1\n", 1, 1, "invalid type: sequence, expected a mapping");
    }

    #[test]
    fn unclosed_flow_sequence_is_a_syntax_error() {
        assert_syntax(
            "cgroups:\n  include: [\"/a\"\n",
            3,
            1,
            "did not find expected ',' or ']'",
        );
    }

    #[test]
    fn tab_indentation_is_a_syntax_error() {
        assert_syntax(
            "cgroups:\n\tinclude: []\n",
            2,
            1,
            "found character that cannot start any token",
        );
    }

    #[test]
    fn bad_indentation_is_a_syntax_error() {
        assert_syntax(
            "psi:\n  rules:\n    - name: a\n   cgroups: []\n",
            4,
            4,
            "did not find expected key",
        );
    }

    #[test]
    fn unclosed_quote_is_a_syntax_error() {
        assert_syntax(
            "kubernetes:\n  kubelet_url: \"http://x\n",
            3,
            1,
            "found unexpected end of stream",
        );
    }

    #[test]
    fn duplicate_key_points_at_the_second_occurrence() {
        assert_syntax(
            "cgroups:\n  max_depth: 1\n  include: []\n  max_depth: 2\n",
            4,
            3,
            "cgroups: duplicate entry with key \"max_depth\"",
        );
    }

    #[test]
    fn duplicate_key_in_a_rule_points_at_the_second_occurrence() {
        assert_syntax(
            &rule_with("      # again\n      threshold: 1s\n"),
            8,
            7,
            "duplicate entry with key \"threshold\"",
        );
    }

    #[test]
    fn unknown_alias_is_a_syntax_error() {
        assert_syntax("cgroups: &a {}\nmetrics: *b\n", 2, 10, "unknown anchor");
    }

    #[test]
    fn second_document_is_rejected_at_its_marker() {
        assert_syntax(
            "cgroups: {}\n---\nmetrics: {}\n",
            2,
            1,
            "more than one document",
        );
    }

    #[test]
    fn syntax_error_display_is_one_line_with_file_line_column() {
        let err = Config::parse_str("cgroups:\n  max_depth: abc\n", Path::new("/etc/cgpe.yaml"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/cgpe.yaml:2:14: cgroups.max_depth: invalid type: string \"abc\", expected a non-negative integer"
        );
    }

    // === defaults and tolerated forms ===

    #[test]
    fn empty_or_comment_only_file_means_defaults() {
        for text in ["", "\n\n", "# nothing here\n", "---\n", "~\n"] {
            assert_eq!(assert_valid(text, &strict()), Config::default(), "{text:?}");
        }
    }

    #[test]
    fn empty_sections_mean_defaults() {
        let cfg = assert_valid(
            "cgroups:\nmetrics:\nnamespaces:\npsi:\n  rules:\nalerting:\nkubernetes:\n",
            &strict(),
        );
        assert_eq!(cfg, Config::default());
        let cfg = assert_valid(&rule_with("      labels:\n      annotations:\n"), &strict());
        assert!(cfg.psi.rules[0].labels.is_empty());
    }

    #[test]
    fn rule_defaults_are_filled_in() {
        let cfg = assert_valid(RULE, &strict());
        let r = &cfg.psi.rules[0];
        assert_eq!(r.kind, PsiKind::Some);
        assert_eq!(r.window, Duration::from_secs(2));
        assert_eq!(r.resolve_after, Duration::from_secs(30));
        assert_eq!(r.threshold, Duration::from_millis(150));
        assert_eq!(r.trigger_line(), "some 150000 2000000");
    }

    #[test]
    fn design_example_parses() {
        let text = r#"
cgroups:
  include: ["**"]
  exclude: []
  max_depth: 10
  max_cgroups: 20000
metrics:
  disable: []
namespaces: { enabled: true }
psi:
  rules:
    - name: memory-pressure
      cgroups: ["/kubepods.slice/**"]
      resource: memory
      kind: some
      threshold: 150ms
      window: 2s
      resolve_after: 30s
      labels: { severity: warning }
      annotations: { summary: "memory pressure in {{ cgroup }}" }
alerting:
  alertmanagers: ["http://alertmanager:9093"]
  webhooks: []
  timeout: 5s
  oom_kills: true
kubernetes:
  kubelet_url: ""
"#;
        let cfg = assert_valid(text, &strict());
        assert_eq!(cfg.psi.rules[0].name, "memory-pressure");
        assert_eq!(cfg.alerting.alertmanagers, ["http://alertmanager:9093"]);
    }

    // === semantic validation ===

    #[test]
    fn one_second_window_needs_cap_sys_resource() {
        let text = rule_with("      window: 1s\n");
        let errors = validation_errors(&text, &strict());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].display_in(Path::new(FILE)),
            "config.yaml:7:15: psi.rules[0].window: 1s: without CAP_SYS_RESOURCE the kernel accepts only windows that are multiples of 2s (grant CAP_SYS_RESOURCE or use 2s, 4s, ...)"
        );
        assert_valid(&text, &privileged());
    }

    #[test]
    fn odd_seconds_window_needs_cap_sys_resource() {
        let text = rule_with("      window: 3s\n");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].window",
            7,
            15,
            "multiples of 2s",
        );
        assert_valid(&text, &privileged());
        assert_valid(&rule_with("      window: 4s\n"), &strict());
        assert_valid(&rule_with("      window: 10s\n"), &strict());
    }

    #[test]
    fn window_outside_kernel_limits_is_rejected_even_with_the_capability() {
        for w in ["200ms", "20s"] {
            let text = rule_with(&format!("      window: {w}\n      threshold: 100ms\n"));
            let text = text.replace("      threshold: 150ms\n", "");
            assert_invalid(
                &text,
                &privileged(),
                "psi.rules[0].window",
                6,
                15,
                "must be between 500ms and 10s",
            );
        }
        assert_valid(
            &rule_with("      window: 500ms\n      resolve_after: 1s\n").replace("150ms", "100ms"),
            &privileged(),
        );
    }

    #[test]
    fn sub_microsecond_durations_are_rejected() {
        let text = rule_with("      window: 1s 500ns\n");
        assert_invalid(
            &text,
            &privileged(),
            "psi.rules[0].window",
            7,
            15,
            "whole number of microseconds",
        );
        let text = RULE.replace("threshold: 150ms", "threshold: 150ms 10ns");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].threshold",
            6,
            18,
            "whole number of microseconds",
        );
    }

    #[test]
    fn zero_threshold_is_rejected() {
        let text = RULE.replace("threshold: 150ms", "threshold: 0s");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].threshold",
            6,
            18,
            "must be greater than 0",
        );
    }

    #[test]
    fn threshold_not_below_window_is_rejected() {
        let text = RULE.replace("threshold: 150ms", "threshold: 3s");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].threshold",
            6,
            18,
            "3s: must be below the window (2s)",
        );
        let text = RULE.replace("threshold: 150ms", "threshold: 2s");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].threshold",
            6,
            18,
            "2s: must be below the window (2s)",
        );
        assert_valid(
            &RULE.replace("threshold: 150ms", "threshold: 1999ms"),
            &strict(),
        );
    }

    #[test]
    fn resolve_after_shorter_than_window_is_rejected() {
        let text = rule_with("      window: 4s\n      resolve_after: 2s\n");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].resolve_after",
            8,
            22,
            "must be at least the window (4s)",
        );
    }

    #[test]
    fn rule_names_must_be_alertnames() {
        let text = RULE.replace("name: mem", "name: \"memory pressure\"");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].name",
            3,
            13,
            "use letters, digits",
        );
        let text = RULE.replace("name: mem", "name: \"\"");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].name",
            3,
            13,
            "must not be empty",
        );
        let text = RULE.replace("name: mem", "name: 1mem");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].name",
            3,
            13,
            "starting with a letter",
        );
        assert_valid(
            &RULE.replace("name: mem", "name: mem.pressure:high-1_x"),
            &strict(),
        );
    }

    #[test]
    fn duplicate_rule_names_are_rejected_at_the_second() {
        let text = format!(
            "{RULE}    - name: mem\n      cgroups: [\"/a\"]\n      resource: io\n      threshold: 1s\n"
        );
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[1].name",
            7,
            13,
            "duplicate rule name \"mem\" (also psi.rules[0])",
        );
    }

    #[test]
    fn rule_needs_a_cgroup() {
        let text = RULE.replace("cgroups: [\"/\"]", "cgroups: []");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].cgroups",
            4,
            16,
            "at least one cgroup glob",
        );
    }

    #[test]
    fn invalid_rule_glob_is_located_at_the_element() {
        let text = RULE.replace("cgroups: [\"/\"]", "cgroups: [\"/\", \"/a**\"]");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].cgroups[1]",
            4,
            22,
            "invalid glob \"/a**\": \"**\" must be a whole path segment",
        );
    }

    #[test]
    fn irq_pressure_has_only_full() {
        let text = RULE.replace("resource: memory", "resource: irq");
        // kind defaults to some: reported at the rule, where kind is missing.
        assert_invalid(&text, &strict(), "psi.rules[0].kind", 3, 7, "only \"full\"");
        assert_valid(
            &rule_with("      kind: full\n").replace("memory", "irq"),
            &strict(),
        );
    }

    #[test]
    fn cpu_full_is_allowed() {
        assert_valid(
            &rule_with("      kind: full\n").replace("memory", "cpu"),
            &strict(),
        );
    }

    #[test]
    fn alertname_label_is_rejected() {
        let text = rule_with("      labels:\n        alertname: Foo\n");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].labels.alertname",
            8,
            20,
            "alertname is set from the rule name",
        );
    }

    #[test]
    fn reserved_and_invalid_label_names_are_rejected() {
        let text = rule_with(
            "      labels:\n        cgroup: x\n        a-b: y\n        __meta: z\n        severity: page\n",
        );
        let errors = validation_errors(&text, &strict());
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].labels.cgroup",
            8,
            17,
            "set by the agent",
        );
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].labels.a-b",
            9,
            14,
            "not a valid label name",
        );
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].labels.__meta",
            10,
            17,
            "reserved",
        );
    }

    #[test]
    fn label_keys_with_dots_are_located_exactly() {
        let text = rule_with("      labels:\n        app.kubernetes.io/name: x\n");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].labels.app.kubernetes.io/name",
            8,
            33,
            "not a valid label name",
        );
    }

    #[test]
    fn unknown_template_placeholder_is_rejected() {
        let text =
            rule_with("      annotations:\n        summary: \"{{ cgroup }} at {{ $value }}\"\n");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].annotations.summary",
            8,
            18,
            "unknown placeholder \"{{ $value }}\"",
        );
        let text = rule_with("      annotations:\n        summary: \"{{ cgroup \"\n");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].annotations.summary",
            8,
            18,
            "unclosed",
        );
        let text = rule_with("      annotations:\n        bad-name: x\n");
        assert_invalid(
            &text,
            &strict(),
            "psi.rules[0].annotations.bad-name",
            8,
            19,
            "not a valid annotation name",
        );
    }

    #[test]
    fn known_template_placeholders_pass() {
        assert_valid(
            &rule_with(
                "      annotations:\n        summary: \"{{cgroup}} {{ rule }} {{  resource }} {{kind }} {{ value }} {{ node }}\"\n",
            ),
            &strict(),
        );
    }

    #[test]
    fn invalid_include_and_exclude_globs_are_located() {
        let text =
            "cgroups:\n  include:\n    - \"**\"\n    - \"/a/[b\"\n  exclude: [\"/x/../y\"]\n";
        assert_invalid(
            text,
            &strict(),
            "cgroups.include[1]",
            4,
            7,
            "unclosed \"[\"",
        );
        assert_invalid(text, &strict(), "cgroups.exclude[0]", 5, 13, "not allowed");
    }

    #[test]
    fn zero_max_cgroups_is_rejected() {
        assert_invalid(
            "cgroups:\n  max_cgroups: 0\n",
            &strict(),
            "cgroups.max_cgroups",
            2,
            16,
            "at least 1",
        );
    }

    #[test]
    fn metric_families_are_checked_when_known() {
        let ctx = ValidationContext {
            cap_sys_resource: false,
            known_families: vec![
                "cgroup_memory_stat_bytes",
                "cgroup_cpu_usage_seconds",
                "cgroup_memory_numa_bytes",
            ],
        };
        let text = "metrics:\n  disable: [cgroup_memory_stat_byte, cgroup_cpu_usage_seconds_total]\n  enable: [cgroup_memory_numa_bytes]\n";
        assert_invalid(
            text,
            &ctx,
            "metrics.disable[0]",
            2,
            13,
            "unknown metric family \"cgroup_memory_stat_byte\" (did you mean \"cgroup_memory_stat_bytes\"?)",
        );
        assert_eq!(validation_errors(text, &ctx).len(), 1);
        // Without a family list the names are not checked.
        assert_valid(text, &strict());
    }

    #[test]
    fn family_both_enabled_and_disabled_is_rejected() {
        let text = "metrics:\n  disable: [x]\n  enable: [y, x]\n";
        assert_invalid(
            text,
            &strict(),
            "metrics.enable[1]",
            3,
            15,
            "both enabled and disabled",
        );
    }

    #[test]
    fn receiver_urls_are_checked() {
        let text = "alerting:\n  alertmanagers:\n    - http://am:9093\n    - ftp://am\n    - http://am:99999\n  webhooks: [\"https://user:pw@hook/x\"]\n  external_url: \"exporter:9753\"\n";
        let errors = validation_errors(text, &strict());
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_invalid(
            text,
            &strict(),
            "alerting.alertmanagers[1]",
            4,
            7,
            "scheme \"ftp\" is not http or https",
        );
        assert_invalid(
            text,
            &strict(),
            "alerting.alertmanagers[2]",
            5,
            7,
            "invalid port \"99999\"",
        );
        assert_invalid(
            text,
            &strict(),
            "alerting.webhooks[0]",
            6,
            14,
            "credentials",
        );
        assert_invalid(
            text,
            &strict(),
            "alerting.external_url",
            7,
            17,
            "expected a URL",
        );
    }

    #[test]
    fn zero_timeout_and_queue_are_rejected() {
        let text = "alerting:\n  timeout: 0s\n  queue_capacity: 0\n";
        assert_invalid(text, &strict(), "alerting.timeout", 2, 12, "greater than 0");
        assert_invalid(
            text,
            &strict(),
            "alerting.queue_capacity",
            3,
            19,
            "at least 1",
        );
    }

    #[test]
    fn kubelet_url_is_checked_when_set() {
        assert_invalid(
            "kubernetes:\n  kubelet_url: \"10.0.0.1:10250\"\n",
            &strict(),
            "kubernetes.kubelet_url",
            2,
            16,
            "expected a URL",
        );
        assert_valid(
            "kubernetes:\n  kubelet_url: \"https://10.0.0.1:10250\"\n",
            &strict(),
        );
        assert_valid("kubernetes:\n  kubelet_url: \"\"\n", &strict());
    }

    /// A name no environment sets, so the test needs no `set_var`.
    const UNSET_VAR: &str = "CGROUP_PSI_EXPORTER_TEST_SURELY_UNSET_VAR";

    #[test]
    fn kubelet_url_with_an_unset_variable_is_an_error_naming_it() {
        assert!(std::env::var_os(UNSET_VAR).is_none());
        let text = format!("kubernetes:\n  kubelet_url: \"https://${{{UNSET_VAR}}}:10250\"\n");
        assert_invalid(
            &text,
            &strict(),
            "kubernetes.kubelet_url",
            2,
            16,
            &format!("environment variable {UNSET_VAR} is not set"),
        );
        let err = Config::parse_str(&text, Path::new(FILE)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "config.yaml:2:16: kubernetes.kubelet_url: \"https://${{{UNSET_VAR}}}:10250\": environment variable {UNSET_VAR} is not set"
            )
        );
        assert_invalid(
            "kubernetes:\n  kubelet_url: \"https://${NODE_IP:10250\"\n",
            &strict(),
            "kubernetes.kubelet_url",
            2,
            16,
            "unclosed \"${\"",
        );
    }

    #[test]
    fn kubelet_url_is_checked_after_expansion_and_printed_unexpanded() {
        let text = "kubernetes:\n  kubelet_url: \"https://${NODE_IP}:10250\"\n";
        let cfg = Config::parse_str_unvalidated(text, Path::new(FILE)).unwrap();
        let check = |value: &str| {
            let mut errs = Vec::new();
            let env = |name: &str| (name == "NODE_IP").then(|| value.to_string());
            cfg.validate_kubernetes(&FieldPath::default().key("kubernetes"), env, &mut errs);
            errs
        };
        assert_eq!(check("10.0.0.5"), vec![]);
        let errs = check("10.0.0.5 ");
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "kubernetes.kubelet_url: \"https://${NODE_IP}:10250\" (expanded to \"https://10.0.0.5 :10250\"): URL contains whitespace"
        );
        let errs = check("");
        assert_eq!(
            errs[0].to_string(),
            "kubernetes.kubelet_url: \"https://${NODE_IP}:10250\": environment variable NODE_IP is empty"
        );
        // --check-config prints the config as written, not as expanded.
        assert!(
            cfg.to_yaml()
                .contains("kubelet_url: https://${NODE_IP}:10250"),
            "{}",
            cfg.to_yaml()
        );
    }

    #[test]
    fn env_refs_expand_only_the_braced_form() {
        let env = |name: &str| match name {
            "NODE_IP" => Some("10.0.0.5".to_string()),
            "NODE_NAME" => Some("node-1".to_string()),
            "EMPTY" => Some(String::new()),
            "SELF" => Some("${NODE_IP}".to_string()),
            _ => None,
        };
        let ok = |s: &str| expand_env_refs(s, env).unwrap();
        assert_eq!(ok("https://${NODE_IP}:10250"), "https://10.0.0.5:10250");
        assert_eq!(
            ok("https://${NODE_NAME}.${NODE_IP}/${NODE_IP}"),
            "https://node-1.10.0.0.5/10.0.0.5"
        );
        assert_eq!(ok("https://10.0.0.1:10250"), "https://10.0.0.1:10250");
        assert_eq!(ok(""), "");
        assert_eq!(
            ok("$NODE_IP $ {NODE_IP} $$ $}"),
            "$NODE_IP $ {NODE_IP} $$ $}"
        );
        assert_eq!(ok("$${NODE_IP}"), "$10.0.0.5");
        assert_eq!(ok("${SELF}"), "${NODE_IP}", "values are not expanded again");
        assert_eq!(ok("é${NODE_IP}ü"), "é10.0.0.5ü");

        let err = |s: &str| expand_env_refs(s, env).unwrap_err();
        assert_eq!(
            err("https://${NODE_IPV6}:1"),
            EnvRefError::Unset("NODE_IPV6".into())
        );
        assert_eq!(err("${EMPTY}"), EnvRefError::Empty("EMPTY".into()));
        assert_eq!(err("https://${NODE_IP:10250"), EnvRefError::Unclosed);
        assert_eq!(err("${NODE_IP}${"), EnvRefError::Unclosed);
        assert_eq!(err("${}"), EnvRefError::InvalidName(String::new()));
        assert_eq!(err("${1X}"), EnvRefError::InvalidName("1X".into()));
        assert_eq!(
            err("${NODE-IP}"),
            EnvRefError::InvalidName("NODE-IP".into())
        );
        assert_eq!(
            err("${A${NODE_IP}}"),
            EnvRefError::InvalidName("A${NODE_IP".into())
        );
        assert_eq!(
            EnvRefError::Unset("NODE_IP".into()).to_string(),
            "environment variable NODE_IP is not set"
        );
        assert_eq!(
            EnvRefError::Empty("NODE_IP".into()).to_string(),
            "environment variable NODE_IP is empty"
        );
        assert_eq!(
            EnvRefError::Unclosed.to_string(),
            "unclosed \"${\": expected ${VAR}"
        );
    }

    #[test]
    fn every_problem_is_reported_one_line_each() {
        let text = "cgroups:\n  max_cgroups: 0\nalerting:\n  timeout: 0s\n";
        let err = Config::parse_str(text, Path::new(FILE)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.yaml:2:16: cgroups.max_cgroups: must be at least 1\nconfig.yaml:4:12: alerting.timeout: must be greater than 0"
        );
    }

    #[test]
    fn validate_without_text_has_no_location() {
        let mut cfg = Config::default();
        cfg.alerting.queue_capacity = 0;
        let errors = cfg.validate(&strict()).unwrap_err();
        assert_eq!(errors[0].line, None);
        assert_eq!(
            errors[0].display_in(Path::new(FILE)),
            "config.yaml: alerting.queue_capacity: must be at least 1"
        );
        assert_eq!(Config::default().validate(&strict()), Ok(()));
    }

    #[test]
    fn error_on_an_unwritten_key_points_at_its_parent() {
        let segs = vec![
            PathSegment::Key("psi".into()),
            PathSegment::Key("rules".into()),
            PathSegment::Index(0),
            PathSegment::Key("window".into()),
        ];
        assert_eq!(locate(RULE, &segs), None);
        assert_eq!(locate(RULE, &segs[..3]), Some((3, 7)));
        let mut e = ValidationError::new(&FieldPath(segs), "x".into());
        e.locate_in(RULE);
        assert_eq!((e.line, e.column), (Some(3), Some(7)));
    }

    // === helpers ===

    #[test]
    fn render_template_fills_known_and_keeps_unknown() {
        let vars = [("cgroup", "/kubepods.slice"), ("value", "0.2")];
        assert_eq!(
            render_template("pressure in {{ cgroup }} ({{value}}) {{ node }}", &vars),
            "pressure in /kubepods.slice (0.2) {{ node }}"
        );
        assert_eq!(render_template("no placeholders", &vars), "no placeholders");
        assert_eq!(render_template("tail {{ cgroup", &vars), "tail {{ cgroup");
        assert_eq!(
            render_template("{{cgroup}}{{cgroup}}", &vars),
            "/kubepods.slice/kubepods.slice"
        );
        assert_eq!(render_template("", &vars), "");
        assert_eq!(
            render_template("é {{ cgroup }} ü", &vars),
            "é /kubepods.slice ü"
        );
    }

    #[test]
    fn http_urls_are_parsed() {
        let u = parse_http_url("http://alertmanager:9093").unwrap();
        assert_eq!(
            (u.scheme, u.host, u.port, u.path),
            ("http", "alertmanager", Some(9093), "")
        );
        let u = parse_http_url("HTTPS://[::1]:8443/hook?t=1").unwrap();
        assert_eq!(
            (u.scheme, u.host, u.port, u.path),
            ("https", "::1", Some(8443), "/hook?t=1")
        );
        let u = parse_http_url("https://am.example.com/prefix/").unwrap();
        assert_eq!(
            (u.host, u.port, u.path),
            ("am.example.com", None, "/prefix/")
        );
        for (bad, why) in [
            ("alertmanager:9093", "expected a URL"),
            ("ftp://x", "not http or https"),
            ("http://", "missing host"),
            ("http://:80", "missing host"),
            ("http://a:0", "invalid port"),
            ("http://a:", "invalid port"),
            ("http://a:+80", "invalid port"),
            ("http://a b", "whitespace"),
            ("http://a/#x", "fragments"),
            ("http://u@a", "credentials"),
            ("http://[::1", "unclosed"),
            ("http://[zz]", "invalid IPv6"),
            ("http://[::1]x", "expected \":port\""),
            ("http://a%b", "invalid host"),
        ] {
            let err = parse_http_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn cap_sys_resource_is_read_from_cap_eff() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("self");
        std::fs::create_dir(&status).unwrap();
        let write = |capeff: &str| {
            std::fs::write(
                status.join("status"),
                format!("Name:\tcgroup-psi-exp\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t{capeff}\nCapBnd:\t000001ffffffffff\n"),
            )
            .unwrap();
        };
        write("000001ffffffffff");
        assert!(has_cap_sys_resource(dir.path()));
        write("0000000001000000");
        assert!(has_cap_sys_resource(dir.path()));
        write("00000000a80425fb"); // Docker's default set: no CAP_SYS_RESOURCE
        assert!(!has_cap_sys_resource(dir.path()));
        write("0000000000000000");
        assert!(!has_cap_sys_resource(dir.path()));
        write("garbage");
        assert!(!has_cap_sys_resource(dir.path()));
        assert!(!has_cap_sys_resource(&dir.path().join("missing")));
        write("0000000001000000");
        assert!(ValidationContext::detect(dir.path()).cap_sys_resource);
    }

    #[test]
    fn to_yaml_round_trips_defaults() {
        let cfg = Config::default();
        let yaml = cfg.to_yaml();
        assert!(yaml.contains("timeout: 5s"), "{yaml}");
        assert_eq!(Config::parse_str(&yaml, Path::new(FILE)).unwrap(), cfg);
    }

    #[test]
    fn to_yaml_round_trips_a_full_config() {
        let text = rule_with(
            "      kind: full\n      window: 4s\n      resolve_after: 1m 30s\n      labels: {severity: page}\n      annotations: {summary: \"{{ cgroup }} stalls\"}\ncgroups:\n  include: [\"/kubepods.slice/**\"]\n  exclude: [\"**/*.mount\"]\n  max_depth: 6\nmetrics:\n  disable: [cgroup_memory_stat_bytes]\nalerting:\n  alertmanagers: [\"http://am:9093\"]\n  webhooks: [\"https://hook/x\"]\n  timeout: 1500ms\n  queue_capacity: 10\nkubernetes:\n  kubelet_url: \"https://127.0.0.1:10250\"\n  insecure_skip_verify: true\n",
        );
        let cfg = assert_valid(&text, &strict());
        assert_eq!(cfg.psi.rules[0].resolve_after, Duration::from_secs(90));
        let yaml = cfg.to_yaml();
        assert!(yaml.contains("threshold: 150ms"), "{yaml}");
        assert!(yaml.contains("timeout: 1s 500ms"), "{yaml}");
        let again = assert_valid(&yaml, &strict());
        assert_eq!(again, cfg);
        assert_eq!(again.to_yaml(), yaml);
    }

    #[test]
    fn suggestions_need_a_close_match() {
        assert_eq!(
            suggest("windw", ["window", "kind"].into_iter()),
            Some("window")
        );
        assert_eq!(suggest("zzz", ["window", "kind"].into_iter()), None);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn truncated_and_mangled_example_never_panics() {
        let full = include_str!("../examples/config.yaml");
        let ctx = strict();
        let check = |text: &str| match Config::parse_str_with(text, Path::new(FILE), &ctx) {
            Ok(_) => {}
            Err(ConfigError::Syntax { line, column, .. }) => {
                assert!(line >= 1 && column >= 1, "{text:?}");
                assert!(line <= text.lines().count() + 1, "{text:?}");
            }
            Err(ConfigError::Validation { errors, .. }) => assert!(!errors.is_empty()),
            Err(e) => panic!("unexpected {e}"),
        };
        let cuts: Vec<usize> = full.char_indices().map(|(i, _)| i).step_by(5).collect();
        for &cut in &cuts {
            check(&full[..cut]);
            let mut mangled = full.to_string();
            mangled.insert_str(cut, ": [");
            check(&mangled);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[a-z_:{}\\[\\],\"' \n\t#&*!|>-]{0,80}") {
            let _ = Config::parse_str(&text, Path::new(FILE));
        }
    }
}
