//! Alert building, pure: labels (the rule's, then the agent's own, then
//! the cgroup's identity), annotation templates, and the generator URL
//! from the address the exporter really listens on. The alert book calls
//! these with the moment an alert starts; nothing here reads a clock or a
//! file (the `{{ value }}` reading and the contributors come in).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::alerting::{Alert, Contributor};
use crate::cgroupfs::CgroupPath;
use crate::config::{render_template, PressureLevelRule};

use super::attribution;
use super::metrics::TriggerEventLabels;
use super::oom::LimitCounter;
use super::rules::RuleRt;

/// An OOM-kill alert is a one-shot event: it ends by itself after this.
pub const OOM_ALERT_TTL: Duration = Duration::from_secs(300);

pub const OOM_ALERTNAME: &str = "CgroupOOMKill";
pub const HIGH_ALERTNAME: &str = "CgroupMemoryHigh";
pub const MAX_ALERTNAME: &str = "CgroupMemoryMax";

/// Every alert the agent sends carries `generator="cgroup-psi-exporter"`,
/// so an Alertmanager route can match the agent's alerts (and only them)
/// whatever the rules are called (examples/alertmanager.yml). Config
/// validation refuses a rule label of that name.
pub const GENERATOR_LABEL: (&str, &str) = ("generator", "cgroup-psi-exporter");

/// The exporter's default port, for the generator URL when the agent is
/// not told where the exporter listens.
const DEFAULT_PORT: u16 = 9753;

/// Where the exporter serves (`--web.listen-address`, and whether the web
/// config turns TLS on): alerts' generator URL points there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub port: u16,
    pub https: bool,
}

/// `alerting.external_url`, else the exporter's own address: the node
/// name with the port (and scheme) it really listens on.
pub(crate) fn generator_url(
    external_url: &Option<crate::config::HttpUrl>,
    listen: Option<Listen>,
    node: &str,
) -> String {
    if let Some(url) = external_url {
        return url.as_str().to_string();
    }
    let (scheme, port) = match listen {
        Some(l) => (if l.https { "https" } else { "http" }, l.port),
        None => ("http", DEFAULT_PORT),
    };
    format!("{scheme}://{node}:{port}/")
}

/// What every alert of this agent shares: the node and the generator URL.
#[derive(Debug, Clone)]
pub(crate) struct Builder {
    node: String,
    generator_url: String,
}

impl Builder {
    pub(crate) fn new(
        node: String,
        external_url: &Option<crate::config::HttpUrl>,
        listen: Option<Listen>,
    ) -> Builder {
        Builder {
            generator_url: generator_url(external_url, listen, &node),
            node,
        }
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// `cgroup`, `node`, the Kubernetes/systemd labels the path implies
    /// (also for a cgroup already removed: an OOM-killed container cleaned
    /// up) and `generator`.
    fn identity(&self, labels: &mut BTreeMap<String, String>, path: &CgroupPath) {
        labels.insert("cgroup".into(), path.to_string());
        labels.insert("node".into(), self.node.clone());
        for (k, v) in crate::kubernetes::path::from_path(path).pairs() {
            labels.insert(k.into(), v.into());
        }
        labels.insert(GENERATOR_LABEL.0.into(), GENERATOR_LABEL.1.into());
    }

    fn alert(&self, labels: BTreeMap<String, String>, starts_at: SystemTime) -> Alert {
        Alert {
            labels,
            annotations: BTreeMap::new(),
            starts_at,
            ends_at: None,
            generator_url: self.generator_url.clone(),
            contributors: Vec::new(),
        }
    }

    /// A PSI rule's alert. `value`: the cgroup's own avg10 (%) for the
    /// rule's resource and kind as the alert starts, for `{{ value }}`.
    pub(crate) fn rule_alert(
        &self,
        rule: &RuleRt,
        path: &CgroupPath,
        starts_at: SystemTime,
        value: Option<f64>,
        contributors: Vec<Contributor>,
    ) -> Alert {
        // Alertmanager refuses a whole batch over one bad label name, so
        // such labels are left out (config validation should catch them).
        let mut labels: BTreeMap<String, String> = rule
            .rule
            .labels
            .iter()
            .filter(|(k, _)| valid_label_name(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert("alertname".into(), rule.rule.name.clone());
        labels.insert("resource".into(), rule.rule.resource.name().into());
        labels.insert("kind".into(), rule.rule.kind.name().into());
        self.identity(&mut labels, path);
        let threshold = humantime::format_duration(rule.rule.threshold).to_string();
        let window = humantime::format_duration(rule.rule.window).to_string();
        let value = value.map(|v| format!("{v:.2}")).unwrap_or_default();
        let mut vars: Vec<(&str, &str)> = vec![
            ("value", value.as_str()),
            ("rule", rule.rule.name.as_str()),
            ("resource", rule.rule.resource.name()),
            ("kind", rule.rule.kind.name()),
            ("threshold", threshold.as_str()),
            ("window", window.as_str()),
        ];
        for (k, v) in &labels {
            if !vars.iter().any(|(n, _)| n == k) {
                vars.push((k.as_str(), v.as_str()));
            }
        }
        let mut annotations: BTreeMap<String, String> = rule
            .rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), render_template(v, &vars)))
            .collect();
        if !contributors.is_empty() {
            annotations.insert(
                "top_contributors".into(),
                attribution::annotation(&contributors),
            );
        }
        Alert {
            annotations,
            contributors,
            ..self.alert(labels, starts_at)
        }
    }

    /// A pressure-level rule's alert: `alertname`, `cgroup`,
    /// `resource="memory"`, `level`, `node`, the path's labels,
    /// `generator`, the rule's labels; annotations rendered with the same
    /// placeholders as PSI rules plus `{{ level }}`.
    pub(crate) fn level_alert(
        &self,
        rule: &PressureLevelRule,
        path: &CgroupPath,
        starts_at: SystemTime,
    ) -> Alert {
        let mut labels: BTreeMap<String, String> = rule.labels.clone();
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("resource".into(), "memory".into());
        labels.insert("level".into(), rule.level.name().into());
        self.identity(&mut labels, path);
        let mut vars: Vec<(&str, &str)> = vec![("rule", rule.name.as_str())];
        for (k, v) in &labels {
            vars.push((k.as_str(), v.as_str()));
        }
        let annotations = rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), render_template(v, &vars)))
            .collect();
        Alert {
            annotations,
            ..self.alert(labels, starts_at)
        }
    }

    /// `CgroupMemoryHigh` / `CgroupMemoryMax`: `memory.events` `counter`
    /// grew to `count`.
    pub(crate) fn limit_alert(
        &self,
        counter: LimitCounter,
        path: &CgroupPath,
        count: u64,
        starts_at: SystemTime,
    ) -> Alert {
        let mut labels = BTreeMap::new();
        self.identity(&mut labels, path);
        labels.insert("alertname".into(), limit_alertname(counter).into());
        labels.insert("resource".into(), "memory".into());
        let file = match counter {
            LimitCounter::High => "memory.high",
            LimitCounter::Max => "memory.max",
        };
        let mut annotations = BTreeMap::new();
        annotations.insert(counter.name().to_string(), count.to_string());
        annotations.insert(
            "summary".to_string(),
            format!(
                "cgroup {path} reached its {file} (memory.events {} = {count})",
                counter.name()
            ),
        );
        Alert {
            annotations,
            ..self.alert(labels, starts_at)
        }
    }

    /// `CgroupOOMKill` for `path`, starting `now`; it ends by itself after
    /// [`OOM_ALERT_TTL`].
    pub(crate) fn oom_alert(
        &self,
        path: &CgroupPath,
        count: u64,
        delta: u64,
        removed: bool,
        now: SystemTime,
    ) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), OOM_ALERTNAME.to_string());
        self.identity(&mut labels, path);
        let node = &self.node;
        let mut annotations = BTreeMap::new();
        annotations.insert("oom_kill".to_string(), count.to_string());
        let summary = if removed {
            annotations.insert("cgroup_removed".to_string(), "true".to_string());
            format!(
                "OOM kill in cgroup {path} on {node} ({delta} new; the cgroup was removed right after)"
            )
        } else {
            format!("OOM kill in cgroup {path} on {node} ({delta} new, {count} in total)")
        };
        annotations.insert("summary".to_string(), summary);
        Alert {
            annotations,
            ends_at: Some(now + OOM_ALERT_TTL),
            ..self.alert(labels, now)
        }
    }
}

pub(crate) fn limit_alertname(c: LimitCounter) -> &'static str {
    match c {
        LimitCounter::High => HIGH_ALERTNAME,
        LimitCounter::Max => MAX_ALERTNAME,
    }
}

pub(crate) fn event_labels(rule: &RuleRt, path: &CgroupPath) -> TriggerEventLabels {
    TriggerEventLabels {
        rule: rule.rule.name.clone(),
        cgroup: path.to_string(),
        resource: rule.rule.resource.name(),
        kind: rule.rule.kind.name(),
    }
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `node` label: `NODE_NAME` (set from the downward API in the
/// DaemonSet), else the host's name from procfs. Blocking: the agent
/// calls it once, on the blocking pool.
#[allow(
    clippy::disallowed_methods,
    reason = "one file read at start, called inside spawn_blocking"
)]
pub(crate) fn node_name(procfs: &Path) -> String {
    if let Ok(n) = std::env::var("NODE_NAME") {
        if !n.trim().is_empty() {
            return n.trim().to_string();
        }
    }
    std::fs::read_to_string(procfs.join("sys/kernel/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level_rule() -> PressureLevelRule {
        PressureLevelRule {
            name: "Lvl".into(),
            cgroups: vec!["/kubepods/**".into()],
            level: crate::config::PressureLevel::Critical,
            resolve_after: Duration::from_secs(30),
            labels: [("severity".to_string(), "page".to_string())].into(),
            annotations: [(
                "summary".to_string(),
                "{{ level }} in {{ cgroup }} ({{ pod_uid }})".to_string(),
            )]
            .into(),
        }
    }

    #[test]
    fn level_alert_carries_level_path_labels_and_generator() {
        let p = CgroupPath::new("/kubepods/burstable/pod0d4e1f2a-3b5c/c1");
        let b = Builder::new("n1".into(), &None, None);
        let a = b.level_alert(&level_rule(), &p, SystemTime::UNIX_EPOCH);
        assert_eq!(a.labels["alertname"], "Lvl");
        assert_eq!(a.labels["level"], "critical");
        assert_eq!(a.labels["resource"], "memory");
        assert_eq!(a.labels["node"], "n1");
        assert_eq!(a.labels["pod_uid"], "0d4e1f2a-3b5c");
        assert_eq!(a.labels["severity"], "page");
        assert_eq!(a.labels[GENERATOR_LABEL.0], GENERATOR_LABEL.1);
        assert_eq!(
            a.annotations["summary"],
            format!("critical in {p} (0d4e1f2a-3b5c)")
        );
        assert_eq!(a.generator_url, "http://n1:9753/");
    }

    #[test]
    fn rule_alert_fills_templates_and_points_at_the_real_listen_address() {
        let rule: crate::config::PsiRule = serde_yaml::from_str(
            "{name: Mem, cgroups: ['/a/*'], resource: memory, threshold: 150ms, labels: {severity: warn}, annotations: {summary: '{{ value }}% {{ kind }} over {{ threshold }}/{{ window }} in {{ cgroup }}'}}",
        )
        .expect("rule");
        let rule = RuleRt::new(rule);
        let listen = Some(Listen {
            port: 9999,
            https: true,
        });
        let b = Builder::new("n1".into(), &None, listen);
        let top = vec![Contributor {
            cgroup: "/a/b/c".into(),
            share: 1.0,
        }];
        let p = CgroupPath::new("/a/b");
        let a = b.rule_alert(&rule, &p, SystemTime::UNIX_EPOCH, Some(12.345), top);
        assert_eq!(a.generator_url, "https://n1:9999/");
        assert_eq!(
            a.annotations["summary"],
            "12.35% some over 150ms/2s in /a/b"
        );
        assert_eq!(a.annotations["top_contributors"], "/a/b/c 100%");
        for (k, v) in [
            ("alertname", "Mem"),
            ("resource", "memory"),
            ("kind", "some"),
            ("cgroup", "/a/b"),
            ("severity", "warn"),
            ("generator", "cgroup-psi-exporter"),
        ] {
            assert_eq!(a.labels[k], v, "{k}");
        }
        let url = crate::config::HttpUrl::parse("https://am.example/x").expect("url");
        let b = Builder::new("n1".into(), &Some(url), listen);
        let a = b.limit_alert(LimitCounter::Max, &p, 3, SystemTime::UNIX_EPOCH);
        assert_eq!(a.generator_url, "https://am.example/x");
        assert_eq!(a.labels["alertname"], MAX_ALERTNAME);
        assert_eq!(a.annotations["max"], "3");
    }

    #[test]
    fn label_names_follow_prometheus_rules() {
        assert!(valid_label_name("severity"));
        assert!(valid_label_name("_x1"));
        assert!(!valid_label_name("1x"));
        assert!(!valid_label_name("team-name"));
        assert!(!valid_label_name(""));
    }

    #[test]
    fn node_name_comes_from_procfs_hostname() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("sys/kernel")).expect("mkdir");
        std::fs::write(d.path().join("sys/kernel/hostname"), "node-7\n").expect("write");
        if std::env::var("NODE_NAME").is_err() {
            assert_eq!(node_name(d.path()), "node-7");
            assert_eq!(node_name(&d.path().join("nope")), "unknown");
        }
    }
}
