//! The label set of every per-cgroup series: `cgroup`, the ids its path
//! implies ([`crate::kubernetes::path`]), and the kubelet's names when
//! enrichment is on. Shared by the cgroup and namespace collectors.

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};

use crate::cgroupfs::CgroupPath;
use crate::kubernetes::{PathLabels, PodNames};

/// The label set of every per-cgroup series: `cgroup` first, then the
/// labels its path implies, then the kubelet's names when enrichment is on.
#[derive(Debug, Clone, Copy)]
pub struct CgroupLabels<'a> {
    pub path: &'a CgroupPath,
    pub labels: &'a PathLabels,
    pub pod: Option<&'a PodNames>,
}

impl<'a> CgroupLabels<'a> {
    pub fn new(path: &'a CgroupPath, labels: &'a PathLabels) -> Self {
        CgroupLabels {
            path,
            labels,
            pod: None,
        }
    }
}

impl EncodeLabelSet for CgroupLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("cgroup", self.path.as_str()).encode(encoder.encode_label())?;
        for pair in self.labels.pairs() {
            pair.encode(encoder.encode_label())?;
        }
        if let Some(names) = self.pod {
            if let Some(c) = &names.container {
                ("container", &**c).encode(encoder.encode_label())?;
            }
            ("namespace", &*names.namespace).encode(encoder.encode_label())?;
            ("pod", &*names.pod).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}
