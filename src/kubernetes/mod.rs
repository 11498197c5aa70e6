//! Kubernetes: ids from cgroup paths ([`path`]), and `pod`, `namespace` and
//! `container` names for the series whose path gave a `pod_uid` (and
//! `container_id`), from the kubelet ([`client`], [`pods`]).
//!
//! The cgroup path only carries identifiers; the names live in the kubelet's
//! pod list (`GET <kubelet_url>/pods`, a `v1.PodList`). This module keeps a
//! copy of that list reduced to what labels need, in a [`PodIndex`] snapshot
//! behind an `RwLock<Arc<_>>`, so a scrape pays one read lock and a few `Arc`
//! clones per lookup and never waits on the network.
//!
//! Refreshes happen in one background task ([`Kubelet::spawn`]): at start,
//! every [`RefreshIntervals::period`], when the registry's watcher sees a new
//! pod cgroup ([`Kubelet::request_refresh`]), and when a lookup misses a pod
//! UID (rate limited). When the kubelet is unreachable the last names are
//! kept, `cgroup_psi_exporter_kubelet_up` drops to 0, and the outage is
//! logged once (`warn!`) with its recovery (`info!`), not once per attempt.
//!
//! The kubelet authorizes `GET /pods` as verb `get` on the `nodes/pods`
//! subresource (fine-grained kubelet authorization, on by default since
//! Kubernetes 1.33) and falls back to `nodes/proxy`, the only subresource
//! older kubelets check; see `docs/kubernetes.md`.

pub mod client;
pub mod path;
pub mod pods;

pub use client::{
    Kubelet, KubeletError, KubeletOptions, RefreshIntervals, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT, SERVICE_ACCOUNT_CA, SERVICE_ACCOUNT_TOKEN,
};
pub use path::PathLabels;
pub use pods::{parse_pod_list, ParseError, PodIndex, PodInfo, PodNames};
