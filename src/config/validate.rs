//! Semantic checks the schema cannot express: globs, kernel limits on PSI
//! triggers, label names, templates, URLs. Each problem names its key path
//! and, when the config came from text, the line and column of its value.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::diagnostics::{locate, suggest, FieldPath, PathSegment};
use super::template::check_template;
use super::{process_env, Config, KubeletUrlError, PressureLevelRule, PsiKind, PsiRule, Resource};
use super::{SpecProblem, TriggerSpec};
use crate::glob::Glob;

/// What validation may assume about the host the config will run on.
///
/// `Default` is the strict, kernel-independent context: no
/// `CAP_SYS_RESOURCE` (the hardened DaemonSet case), and no family list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationContext {
    /// Whether the process may arm PSI triggers with any window (not only
    /// multiples of 2s). See [`has_cap_sys_resource`].
    pub cap_sys_resource: bool,
    /// Metric family names `metrics.disable`/`enable` may name (the
    /// exported names of the one table); empty skips the check.
    pub known_families: Vec<&'static str>,
}

impl ValidationContext {
    /// The context of this process: its capabilities read from
    /// `<procfs>/self/status`, and every family of [`crate::metrics::ALL`].
    pub fn detect(procfs: &Path) -> ValidationContext {
        ValidationContext {
            cap_sys_resource: has_cap_sys_resource(procfs),
            known_families: crate::metrics::ALL.iter().map(|d| d.exported).collect(),
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
    pub(super) fn new(path: &FieldPath, message: String) -> ValidationError {
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
    pub(super) fn locate_in(&mut self, text: &str) {
        for len in (1..=self.segments.len()).rev() {
            if let Some((line, column)) = locate(text, &self.segments[..len]) {
                self.line = Some(line);
                self.column = Some(column);
                return;
            }
        }
    }
}

impl Config {
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
        let levels = root.key("psi").key("pressure_levels");
        for (i, rule) in self.psi.pressure_levels.iter().enumerate() {
            let path = levels.index(i);
            if let Some(first) = seen.get(rule.name.as_str()) {
                errs.push(ValidationError::new(
                    &path.key("name"),
                    format!(
                        "duplicate rule name {:?} (also psi.rules[{first}]): it is the alertname, so it must be unique",
                        rule.name
                    ),
                ));
            } else if let Some(j) = self.psi.pressure_levels[..i]
                .iter()
                .position(|r| r.name == rule.name)
            {
                errs.push(ValidationError::new(
                    &path.key("name"),
                    format!(
                        "duplicate rule name {:?} (also psi.pressure_levels[{j}]): it is the alertname, so it must be unique",
                        rule.name
                    ),
                ));
            }
            rule.validate(&path, &mut errs);
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
    pub(super) fn validate_kubernetes(
        &self,
        path: &FieldPath,
        env: impl Fn(&str) -> Option<String>,
        errs: &mut Vec<ValidationError>,
    ) {
        let kubelet = &self.kubernetes.kubelet_url;
        let message = match self.kubernetes.kubelet_url(env) {
            Ok(_) => return,
            Err(KubeletUrlError::Env(why)) => format!("{kubelet:?}: {why}"),
            Err(KubeletUrlError::Url { expanded, why }) if expanded == *kubelet => {
                format!("{kubelet:?}: {why}")
            }
            Err(KubeletUrlError::Url { expanded, why }) => {
                format!("{kubelet:?} (expanded to {expanded:?}): {why}")
            }
        };
        errs.push(ValidationError::new(&path.key("kubelet_url"), message));
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
        let hold_off = a.memory_events.hold_off;
        if hold_off < Duration::from_secs(1) || hold_off > Duration::from_secs(86_400) {
            errs.push(ValidationError::new(
                &path.key("memory_events").key("hold_off"),
                format!(
                    "{}: must be between 1s and 24h",
                    humantime::format_duration(hold_off)
                ),
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

impl PsiRule {
    fn validate(&self, path: &FieldPath, ctx: &ValidationContext, errs: &mut Vec<ValidationError>) {
        validate_name_and_globs(&self.name, &self.cgroups, path, errs);
        let mut err = |p: FieldPath, msg: String| errs.push(ValidationError::new(&p, msg));
        if self.resource == Resource::Irq && self.kind == PsiKind::Some {
            err(
                path.key("kind"),
                "resource irq has only \"full\" pressure: use kind: full".to_string(),
            );
        }

        // The kernel's rules (and ours) on the numbers live in one place,
        // shared with arming.
        let problems = TriggerSpec::from_rule(self).problems(ctx.cap_sys_resource);
        let window = self.window;
        let wp = path.key("window");
        let w = fmt_duration(window);
        if problems.contains(&SpecProblem::WindowRange) {
            err(
                wp,
                format!(
                    "{w}: must be between 500ms and 10s (kernel limits on a PSI trigger window)"
                ),
            );
        } else if window.subsec_nanos() % 1000 != 0 {
            err(wp, format!("{w}: must be a whole number of microseconds"));
        } else if problems.contains(&SpecProblem::WindowStep) {
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
        } else if problems.contains(&SpecProblem::ThresholdNotBelowWindow) {
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

        validate_labels(&self.labels, &self.annotations, &self.labels, path, errs);
    }
}

/// The checks `psi.rules` and `psi.pressure_levels` share: a rule name
/// that can be an alertname, at least one valid glob.
fn validate_name_and_globs(
    name: &str,
    cgroups: &[String],
    path: &FieldPath,
    errs: &mut Vec<ValidationError>,
) {
    let mut err = |p: FieldPath, msg: String| errs.push(ValidationError::new(&p, msg));
    if name.is_empty() {
        err(
            path.key("name"),
            "must not be empty: it becomes the alert's alertname".to_string(),
        );
    } else if !is_rule_name(name) {
        err(
            path.key("name"),
            format!(
                "{name:?}: use letters, digits, '_', ':', '.' and '-', starting with a letter or '_' (it becomes the alertname)"
            ),
        );
    }
    if cgroups.is_empty() {
        err(
            path.key("cgroups"),
            "needs at least one cgroup glob (\"/\" alone is the host)".to_string(),
        );
    }
    for (i, g) in cgroups.iter().enumerate() {
        if let Err(e) = Glob::new(g) {
            err(path.key("cgroups").index(i), e.to_string());
        }
    }
}

/// A rule's `labels` (not the agent's own, valid names) and `annotations`
/// (valid names, templates naming only known placeholders or `known`
/// labels).
fn validate_labels(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    known: &BTreeMap<String, String>,
    path: &FieldPath,
    errs: &mut Vec<ValidationError>,
) {
    let mut err = |p: FieldPath, msg: String| errs.push(ValidationError::new(&p, msg));
    for key in labels.keys() {
        let p = path.key("labels").key(key);
        if key == "alertname" {
            err(
                p,
                "alertname is set from the rule name: rename the rule instead".to_string(),
            );
        } else if key == "generator" {
            err(
                p,
                "\"generator\" is set to \"cgroup-psi-exporter\" on every alert the agent sends (it marks them for an Alertmanager route) and cannot be overridden".to_string(),
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
    for (key, tpl) in annotations {
        let p = path.key("annotations").key(key);
        if !is_label_name(key) {
            err(
                p,
                format!("{key:?} is not a valid annotation name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            );
        } else if let Err(why) = check_template(tpl, known) {
            err(p, why);
        }
    }
}

impl PressureLevelRule {
    fn validate(&self, path: &FieldPath, errs: &mut Vec<ValidationError>) {
        validate_name_and_globs(&self.name, &self.cgroups, path, errs);
        if self.resolve_after < Duration::from_secs(1) {
            errs.push(ValidationError::new(
                &path.key("resolve_after"),
                format!("{}: must be at least 1s", fmt_duration(self.resolve_after)),
            ));
        }
        if self.labels.contains_key("level") {
            errs.push(ValidationError::new(
                &path.key("labels").key("level"),
                "\"level\" is set by the agent on every alert and cannot be overridden".to_string(),
            ));
        }
        let mut known = self.labels.clone();
        known.insert("level".into(), String::new());
        validate_labels(&self.labels, &self.annotations, &known, path, errs);
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
