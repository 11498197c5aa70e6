//! Pieces of alert building that need no agent state: the `node` label,
//! label-name checks and the one-shot OOM-kill alert.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::alerting::Alert;
use crate::cgroupfs::CgroupPath;

use super::agent::OOM_ALERT_TTL;
use super::metrics::TriggerEventLabels;
use super::rules::RuleRt;

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

/// `CgroupOOMKill` for `path`: `labels` are its identity labels (with
/// `alertname`); it ends by itself after [`OOM_ALERT_TTL`]. The caller
/// sets the generator URL.
pub(crate) fn oom_alert(
    path: &CgroupPath,
    labels: BTreeMap<String, String>,
    node: &str,
    count: u64,
    delta: u64,
    removed: bool,
) -> Alert {
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
    let now = SystemTime::now();
    Alert {
        labels,
        annotations,
        starts_at: now,
        ends_at: Some(now + OOM_ALERT_TTL),
        generator_url: String::new(),
        contributors: Vec::new(),
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
/// DaemonSet), else the host's name from procfs.
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
