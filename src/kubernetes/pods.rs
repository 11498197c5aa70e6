//! The kubelet's pod list reduced to what labels need: pod UID → pod name,
//! namespace, and container ID → container name. Pure: parsing and lookups,
//! no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

/// The names [`crate::kubernetes::Kubelet::lookup`] adds to a pod's series
/// (`pod`, `namespace`, `container`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNames {
    pub pod: Arc<str>,
    pub namespace: Arc<str>,
    /// `None` for pod-level cgroups and containers the kubelet does not
    /// list (the sandbox).
    pub container: Option<Arc<str>>,
}

/// Names for one pod, keyed in [`PodIndex`] by pod UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub name: Arc<str>,
    pub namespace: Arc<str>,
    /// Container ID (the hex ID without the `containerd://` style scheme,
    /// as it appears in the cgroup path) → container name. Covers regular,
    /// init and ephemeral containers that have started.
    pub containers: HashMap<Box<str>, Arc<str>>,
}

/// The kubelet's pod list reduced to names: pod UID → [`PodInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIndex {
    pods: HashMap<Box<str>, PodInfo>,
}

impl PodIndex {
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn pod(&self, pod_uid: &str) -> Option<&PodInfo> {
        self.pods.get(pod_uid)
    }

    /// The names for a pod UID and, optionally, a
    /// container ID from a cgroup path. `None` when the pod is unknown; the
    /// container is `None` when unknown too (the sandbox/pause container and
    /// CRI-O's conmon have cgroups but no status entry).
    ///
    /// Allocation-free: hash lookups on `&str` and `Arc` clones.
    pub fn lookup(&self, pod_uid: &str, container_id: Option<&str>) -> Option<PodNames> {
        let pod = self.pods.get(pod_uid)?;
        Some(PodNames {
            pod: pod.name.clone(),
            namespace: pod.namespace.clone(),
            container: container_id.and_then(|id| pod.container(id)).cloned(),
        })
    }
}

impl PodInfo {
    pub(super) fn container(&self, id: &str) -> Option<&Arc<str>> {
        if let Some(name) = self.containers.get(id) {
            return Some(name);
        }
        // Runtimes always put the full 64-hex ID in the cgroup name, but a
        // path label may carry a shorter prefix (the labels accept >= 12 hex
        // digits); a pod has few containers, so a scan is cheap.
        if id.len() >= 12 && id.len() < 64 {
            return self
                .containers
                .iter()
                .find(|(k, _)| k.starts_with(id))
                .map(|(_, v)| v);
        }
        None
    }
}

/// Error from [`parse_pod_list`]: the body was not a `PodList`.
#[derive(Debug, thiserror::Error)]
#[error("invalid pod list: {0}")]
pub struct ParseError(#[from] serde_json::Error);

// Only the fields labels need; serde skips the rest of each pod.
#[derive(Deserialize)]
struct PodList {
    // Go encodes an empty (nil) slice as `null`.
    #[serde(default)]
    items: Option<Vec<Pod>>,
}

#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default)]
    init_container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default)]
    ephemeral_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    #[serde(default)]
    name: Option<String>,
    /// `containerd://<id>`, `cri-o://<id>`, `docker://<id>`; absent while
    /// the container waits to be created.
    #[serde(default, rename = "containerID")]
    container_id: Option<String>,
}

/// The ID part of a status `containerID` (`<runtime>://<id>`), lower-cased
/// like the cgroup names. `None` for an empty ID.
fn strip_runtime_scheme(raw: &str) -> Option<&str> {
    let id = raw.split_once("://").map_or(raw, |(_, id)| id).trim();
    (!id.is_empty()).then_some(id)
}

/// Parses a kubelet `/pods` body (a `v1.PodList`) into [`PodIndex`].
/// Pods without a UID or name are skipped: they cannot be matched or named.
/// Namespace strings are shared between pods of a namespace.
pub fn parse_pod_list(body: &[u8]) -> Result<PodIndex, ParseError> {
    let list: PodList = serde_json::from_slice(body)?;
    let mut namespaces: HashMap<String, Arc<str>> = HashMap::new();
    let items = list.items.unwrap_or_default();
    let mut pods = HashMap::with_capacity(items.len());
    for pod in items {
        let Metadata {
            name,
            namespace,
            uid,
        } = pod.metadata.unwrap_or_default();
        let (Some(name), Some(uid)) = (name, uid) else {
            continue;
        };
        if uid.is_empty() || name.is_empty() {
            continue;
        }
        let namespace = namespace.unwrap_or_default();
        let namespace = match namespaces.get(&namespace) {
            Some(ns) => ns.clone(),
            None => {
                let ns: Arc<str> = namespace.as_str().into();
                namespaces.insert(namespace, ns.clone());
                ns
            }
        };
        let mut containers = HashMap::new();
        if let Some(status) = pod.status {
            let all = [
                status.init_container_statuses,
                status.container_statuses,
                status.ephemeral_container_statuses,
            ];
            for c in all.into_iter().flatten().flatten() {
                let Some(id) = c.container_id.as_deref().and_then(strip_runtime_scheme) else {
                    continue;
                };
                let Some(name) = c.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                containers.insert(id.to_ascii_lowercase().into(), name.into());
            }
        }
        pods.insert(
            uid.into_boxed_str(),
            PodInfo {
                name: name.into(),
                namespace,
                containers,
            },
        );
    }
    Ok(PodIndex { pods })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const UID_A: &str = "0d4e1f2a-3b5c-4d6e-8f90-a1b2c3d4e5f6";
    pub(crate) const UID_B: &str = "7c1e9a52-6f0d-4b3e-9a8c-2d5f7e9b1c34";
    pub(crate) const UID_C: &str = "b3a1c9e8-52d4-47f1-8e6a-0f9c2d7b4e81";
    pub(crate) const CID_APP: &str =
        "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";
    pub(crate) const CID_SIDECAR: &str =
        "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
    pub(crate) const CID_INIT: &str =
        "1111aaaa2222bbbb3333cccc4444dddd5555eeee6666ffff7777000088889999";
    pub(crate) const CID_CRIO: &str =
        "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    pub(crate) const CID_DEBUG: &str =
        "dededededededededededededededededededededededededededededededede";

    /// Shaped like a real kubelet `/pods` answer (trimmed of the spec and
    /// most status fields, which the parser must skip anyway).
    pub(crate) fn sample() -> String {
        format!(
            r#"{{
  "kind": "PodList",
  "apiVersion": "v1",
  "metadata": {{}},
  "items": [
    {{
      "metadata": {{
        "name": "web-7d9f8b6c5-x2x9q",
        "generateName": "web-7d9f8b6c5-",
        "namespace": "shop",
        "uid": "{UID_A}",
        "resourceVersion": "912345",
        "creationTimestamp": "2026-11-20T08:15:02Z",
        "labels": {{"app": "web", "pod-template-hash": "7d9f8b6c5"}},
        "annotations": {{"kubernetes.io/config.seen": "2026-11-20T08:15:02.113Z"}},
        "ownerReferences": [{{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5", "uid": "aa", "controller": true}}]
      }},
      "spec": {{
        "containers": [{{"name": "app", "image": "nginx:1.27", "resources": {{"limits": {{"memory": "256Mi"}}}}}}],
        "nodeName": "node-1"
      }},
      "status": {{
        "phase": "Running",
        "conditions": [{{"type": "Ready", "status": "True"}}],
        "hostIP": "10.0.0.11",
        "podIP": "10.244.1.17",
        "qosClass": "Burstable",
        "initContainerStatuses": [
          {{"name": "migrate", "state": {{"terminated": {{"exitCode": 0, "reason": "Completed"}}}},
            "ready": true, "restartCount": 0, "image": "busybox:1.36",
            "containerID": "containerd://{CID_INIT}"}}
        ],
        "containerStatuses": [
          {{"name": "app", "state": {{"running": {{"startedAt": "2026-11-20T08:15:09Z"}}}},
            "ready": true, "restartCount": 1, "image": "docker.io/library/nginx:1.27",
            "imageID": "docker.io/library/nginx@sha256:abc",
            "containerID": "containerd://{CID_APP}", "started": true}},
          {{"name": "sidecar", "state": {{"running": {{}}}}, "ready": true, "restartCount": 0,
            "containerID": "containerd://{CID_SIDECAR}"}},
          {{"name": "pending", "state": {{"waiting": {{"reason": "ContainerCreating"}}}},
            "ready": false, "restartCount": 0, "image": "redis:7"}}
        ],
        "ephemeralContainerStatuses": [
          {{"name": "debugger-abc12", "state": {{"running": {{}}}}, "containerID": "containerd://{CID_DEBUG}"}}
        ]
      }}
    }},
    {{
      "metadata": {{"name": "coredns-5d78c9869d-4kq7z", "namespace": "kube-system", "uid": "{UID_B}"}},
      "spec": {{"containers": [{{"name": "coredns"}}]}},
      "status": {{
        "phase": "Running",
        "containerStatuses": [
          {{"name": "coredns", "containerID": "cri-o://{CID_CRIO}", "ready": true, "restartCount": 0}}
        ]
      }}
    }},
    {{
      "metadata": {{"name": "batch-job-q8x2m", "namespace": "shop", "uid": "{UID_C}"}},
      "spec": {{"containers": [{{"name": "job"}}]}},
      "status": {{"phase": "Pending", "qosClass": "BestEffort"}}
    }}
  ]
}}"#
        )
    }

    #[test]
    fn kubelet_pod_list_parses_to_names() {
        let names = parse_pod_list(sample().as_bytes()).expect("sample parses");
        assert_eq!(names.len(), 3);

        let a = names.pod(UID_A).expect("pod A");
        assert_eq!(&*a.name, "web-7d9f8b6c5-x2x9q");
        assert_eq!(&*a.namespace, "shop");
        // app, sidecar, init, ephemeral; the waiting container has no ID yet.
        assert_eq!(a.containers.len(), 4, "{:?}", a.containers);
        assert_eq!(a.containers.get(CID_APP).map(|s| &**s), Some("app"));
        assert_eq!(a.containers.get(CID_INIT).map(|s| &**s), Some("migrate"));
        assert_eq!(
            a.containers.get(CID_DEBUG).map(|s| &**s),
            Some("debugger-abc12")
        );

        let b = names.pod(UID_B).expect("pod B");
        assert_eq!(&*b.namespace, "kube-system");
        assert_eq!(b.containers.get(CID_CRIO).map(|s| &**s), Some("coredns"));

        let c = names.pod(UID_C).expect("pod without statuses");
        assert_eq!(&*c.name, "batch-job-q8x2m");
        assert!(c.containers.is_empty());
        // Pods of one namespace share the string.
        assert!(Arc::ptr_eq(&a.namespace, &c.namespace));
    }

    #[test]
    fn lookup_gives_pod_namespace_and_container() {
        let names = parse_pod_list(sample().as_bytes()).expect("sample parses");
        let found = names.lookup(UID_A, Some(CID_SIDECAR)).expect("known");
        assert_eq!(
            (&*found.pod, &*found.namespace),
            ("web-7d9f8b6c5-x2x9q", "shop")
        );
        assert_eq!(found.container.as_deref(), Some("sidecar"));

        // Pod-level cgroup, and the sandbox container (no status entry).
        assert_eq!(names.lookup(UID_A, None).expect("pod").container, None);
        let sandbox = "ab".repeat(32);
        assert_eq!(
            names.lookup(UID_A, Some(&sandbox)).expect("pod").container,
            None
        );
        // A shorter ID from a path label matches by prefix.
        assert_eq!(
            names
                .lookup(UID_B, Some(&CID_CRIO[..12]))
                .expect("pod")
                .container
                .as_deref(),
            Some("coredns")
        );
        assert!(names
            .lookup("00000000-0000-0000-0000-000000000000", None)
            .is_none());
    }

    #[test]
    fn odd_pod_lists_are_handled() {
        assert!(parse_pod_list(br#"{"kind":"PodList","items":null}"#)
            .expect("null items")
            .is_empty());
        assert!(parse_pod_list(br#"{"items":{}}"#).is_err());
        assert!(parse_pod_list(br#"{"kind":"PodList"}"#)
            .expect("no items")
            .is_empty());
        assert!(parse_pod_list(b"<html>").is_err());
        assert!(parse_pod_list(br#"{"items":[{"metadata":{"name":"x"}}]}"#)
            .expect("pod without uid skipped")
            .is_empty());
        let names = parse_pod_list(
            br#"{"items":[{"metadata":{"name":"x","namespace":"n","uid":"u1"},
            "status":{"containerStatuses":[{"name":"c","containerID":""},
            {"name":"d","containerID":"docker://ABCDEF0123456789"}],"initContainerStatuses":null}}]}"#,
        )
        .expect("parses");
        let pod = names.pod("u1").expect("u1");
        assert_eq!(pod.containers.len(), 1);
        assert_eq!(
            pod.containers.get("abcdef0123456789").map(|s| &**s),
            Some("d")
        );
    }

    #[test]
    fn runtime_scheme_is_stripped() {
        assert_eq!(strip_runtime_scheme("containerd://abc"), Some("abc"));
        assert_eq!(strip_runtime_scheme("cri-o://abc"), Some("abc"));
        assert_eq!(strip_runtime_scheme("abc"), Some("abc"));
        assert_eq!(strip_runtime_scheme("docker://"), None);
    }
}
