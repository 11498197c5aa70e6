//! Paths → ids: the labels a cgroup's path implies: Kubernetes pod and container identity
//! (both kubelet cgroup drivers) and systemd units. Computed once when a
//! cgroup is discovered, never per scrape.
//!
//! Shapes recognised (the `kubepods` part may sit below another slice, as
//! with kind or k3s):
//! - systemd driver: `kubepods.slice/kubepods-burstable.slice/
//!   kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope`
//!   (also `crio-<id>.scope`, `docker-<id>.scope`; guaranteed pods sit
//!   directly under `kubepods.slice` as `kubepods-pod<uid>.slice`).
//! - cgroupfs driver: `kubepods/burstable/pod<uid>/<id>`,
//!   `kubepods/pod<uid>/<id>` for guaranteed pods.
//! - systemd: the last component ending in `.service`, `.scope` or `.slice`
//!   gives `unit`.

use crate::cgroupfs::CgroupPath;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathLabels {
    pub pod_uid: Option<Box<str>>,
    pub container_id: Option<Box<str>>,
    pub qos_class: Option<&'static str>,
    pub unit: Option<Box<str>>,
}

impl PathLabels {
    pub fn is_empty(&self) -> bool {
        self.pod_uid.is_none()
            && self.container_id.is_none()
            && self.qos_class.is_none()
            && self.unit.is_none()
    }

    /// The labels as (name, value) pairs, in exposition order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("container_id", self.container_id.as_deref()),
            ("pod_uid", self.pod_uid.as_deref()),
            ("qos_class", self.qos_class),
            ("unit", self.unit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

/// Derives the labels a cgroup path implies.
pub fn from_path(path: &CgroupPath) -> PathLabels {
    let parts: Vec<&str> = path
        .relative()
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    if let Some(k) = kubernetes(&parts) {
        return k;
    }
    let mut labels = PathLabels::default();
    if let Some(last) = parts.last() {
        // A container outside Kubernetes: `system.slice/docker-<id>.scope`
        // (systemd driver) or `docker/<id>` (cgroupfs driver).
        let bare_id = parts.len() >= 2
            && matches!(
                parts[parts.len() - 2],
                "docker" | "containerd" | "libpod_parent"
            );
        if last.ends_with(".scope") || bare_id {
            labels.container_id = container_id(last).map(Into::into);
        }
        if last.ends_with(".service") || last.ends_with(".scope") || last.ends_with(".slice") {
            labels.unit = Some((*last).into());
        }
    }
    labels
}

fn kubernetes(parts: &[&str]) -> Option<PathLabels> {
    let start = parts.iter().position(|p| {
        *p == "kubepods" || *p == "kubepods.slice" || p.ends_with("-kubepods.slice")
    })?;
    let rest = &parts[start + 1..];
    let mut labels = PathLabels::default();
    let mut i = 0;
    // QoS level: absent for guaranteed pods.
    if let Some(q) = rest.first().and_then(|p| qos_of(p)) {
        labels.qos_class = Some(q);
        i = 1;
    }
    let pod = rest.get(i)?;
    let uid = pod_uid(pod)?;
    labels.pod_uid = Some(uid.into());
    if labels.qos_class.is_none() {
        labels.qos_class = Some("guaranteed");
    }
    if let Some(c) = rest.get(i + 1) {
        labels.container_id = container_id(c).map(Into::into);
        // Deeper cgroups (a container's own children) keep the container's labels.
    }
    Some(labels)
}

fn qos_of(part: &str) -> Option<&'static str> {
    match part {
        "burstable" | "kubepods-burstable.slice" => Some("burstable"),
        "besteffort" | "kubepods-besteffort.slice" => Some("besteffort"),
        _ if part.ends_with("-kubepods-burstable.slice") => Some("burstable"),
        _ if part.ends_with("-kubepods-besteffort.slice") => Some("besteffort"),
        _ => None,
    }
}

/// `pod<uid>` (cgroupfs driver) or `kubepods[-qos]-pod<uid_with_underscores>.slice`.
fn pod_uid(part: &str) -> Option<String> {
    let raw = if let Some(s) = part.strip_suffix(".slice") {
        let i = s.rfind("-pod")?;
        &s[i + 4..]
    } else {
        part.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    if uid.len() >= 8 && uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        Some(uid)
    } else {
        None
    }
}

/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`,
/// `cri-dockerd-<id>.scope`, or a bare 64-hex id (cgroupfs driver).
/// `crio-conmon-<id>.scope` is CRI-O's monitor, not the container.
fn container_id(part: &str) -> Option<String> {
    let id = match part.strip_suffix(".scope") {
        Some(s) => {
            if s.starts_with("crio-conmon-") {
                return None;
            }
            ["cri-containerd-", "crio-", "docker-", "cri-dockerd-"]
                .iter()
                .find_map(|p| s.strip_prefix(p))?
        }
        None => part,
    };
    if id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        Some(id.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(p: &str) -> PathLabels {
        from_path(&CgroupPath::new(p))
    }

    const UID: &str = "0d4e1f2a-3b5c-4d6e-8f90-a1b2c3d4e5f6";
    const UIDU: &str = "0d4e1f2a_3b5c_4d6e_8f90_a1b2c3d4e5f6";
    const CID: &str = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";

    #[test]
    fn systemd_driver_burstable_container() {
        let x = l(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UIDU}.slice/cri-containerd-{CID}.scope"
        ));
        assert_eq!(x.pod_uid.as_deref(), Some(UID));
        assert_eq!(x.container_id.as_deref(), Some(CID));
        assert_eq!(x.qos_class, Some("burstable"));
        assert_eq!(x.unit, None);
    }

    #[test]
    fn systemd_driver_guaranteed_pod_and_crio_docker() {
        let pod = l(&format!("/kubepods.slice/kubepods-pod{UIDU}.slice"));
        assert_eq!(pod.pod_uid.as_deref(), Some(UID));
        assert_eq!(pod.qos_class, Some("guaranteed"));
        assert_eq!(pod.container_id, None);
        for rt in ["crio", "docker"] {
            let c = l(&format!(
                "/kubepods.slice/kubepods-pod{UIDU}.slice/{rt}-{CID}.scope"
            ));
            assert_eq!(c.container_id.as_deref(), Some(CID), "{rt}");
        }
        let conmon = l(&format!(
            "/kubepods.slice/kubepods-pod{UIDU}.slice/crio-conmon-{CID}.scope"
        ));
        assert_eq!(conmon.container_id, None);
        assert_eq!(conmon.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn cgroupfs_driver_shapes() {
        let c = l(&format!("/kubepods/besteffort/pod{UID}/{CID}"));
        assert_eq!(c.qos_class, Some("besteffort"));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        assert_eq!(c.container_id.as_deref(), Some(CID));
        let g = l(&format!("/kubepods/pod{UID}/{CID}"));
        assert_eq!(g.qos_class, Some("guaranteed"));
        let q = l("/kubepods/burstable");
        assert!(q.is_empty(), "a QoS-level cgroup is not a pod: {q:?}");
    }

    #[test]
    fn nested_kubepods_slice_is_found() {
        let c = l(&format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UIDU}.slice"
        ));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        assert_eq!(c.qos_class, Some("besteffort"));
    }

    #[test]
    fn containers_outside_kubernetes() {
        let d = l(&format!("/system.slice/docker-{CID}.scope"));
        assert_eq!(d.container_id.as_deref(), Some(CID));
        assert_eq!(
            d.unit.as_deref(),
            Some(format!("docker-{CID}.scope").as_str())
        );
        assert_eq!(
            l(&format!("/docker/{CID}")).container_id.as_deref(),
            Some(CID)
        );
        assert_eq!(l("/docker/notanid").container_id, None);
        assert_eq!(
            l(&format!("/mine/{CID}")).container_id,
            None,
            "a bare id only under a runtime's folder"
        );
    }

    #[test]
    fn systemd_units_and_lookalikes() {
        assert_eq!(
            l("/system.slice/nginx.service").unit.as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            l("/user.slice/user-1000.slice/session-4.scope")
                .unit
                .as_deref(),
            Some("session-4.scope")
        );
        assert_eq!(l("/system.slice").unit.as_deref(), Some("system.slice"));
        assert!(l("/").is_empty());
        assert!(l("/mygroup/pod123").is_empty());
        assert!(
            l("/kubepods.slice/kubepods-burstable.slice/podnothex.slice")
                .pod_uid
                .is_none()
        );
        assert!(l("/kubepodsx/pod0d4e1f2a-3b5c").is_empty());
        assert!(l(&format!("/kubepods/pod{UID}/not-a-container"))
            .container_id
            .is_none());
    }
}
