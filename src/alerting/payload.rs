//! The JSON bodies receivers get, and the RFC 3339 timestamps in them.
//!
//! - Alertmanager v2 (`POST /api/v2/alerts`): a JSON array of
//!   `{labels, annotations, startsAt, endsAt?, generatorURL}`
//!   (<https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml>).
//!   A firing alert has no `endsAt`, so Alertmanager keeps it for its
//!   `resolve_timeout`; we re-send well before that.
//! - Generic webhook: `{"version":"1","status":"firing|resolved","alerts":[...]}`
//!   shaped like Alertmanager's own webhook, plus `contributors` per alert.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::{Alert, AlertStatus};

/// The Alertmanager v2 body for a batch.
pub fn alertmanager_body(alerts: &[Alert]) -> Value {
    Value::Array(alerts.iter().map(alertmanager_alert).collect())
}

fn alertmanager_alert(a: &Alert) -> Value {
    let mut m = Map::new();
    m.insert("labels".into(), json!(a.labels));
    m.insert("annotations".into(), json!(a.annotations));
    m.insert("startsAt".into(), Value::String(rfc3339(a.starts_at)));
    if let Some(end) = a.ends_at {
        m.insert("endsAt".into(), Value::String(rfc3339(end)));
    }
    m.insert(
        "generatorURL".into(),
        Value::String(a.generator_url.clone()),
    );
    Value::Object(m)
}

/// The webhook body for a batch: `status` is `firing` when any alert in it
/// fires (as Alertmanager's webhook does for a group).
pub fn webhook_body(alerts: &[Alert]) -> Value {
    let status = if alerts.iter().any(|a| a.status() == AlertStatus::Firing) {
        "firing"
    } else {
        "resolved"
    };
    let list: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let contributors: Vec<Value> = a
                .contributors
                .iter()
                .map(|c| json!({"cgroup": c.cgroup, "share": c.share}))
                .collect();
            json!({
                "status": a.status().name(),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": a.ends_at.map(rfc3339),
                "generatorURL": a.generator_url,
                "fingerprint": fingerprint(&a.labels),
                "contributors": contributors,
            })
        })
        .collect();
    json!({"version": "1", "status": status, "alerts": list})
}

/// Alertmanager's fingerprint of a label set (its `model.Fingerprint`):
/// FNV-1a 64 over each label name and value in name order, each followed
/// by the separator byte 0xff, as 16 hex digits. The same labels get the
/// same id here and in Alertmanager's API.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const SEPARATOR: u8 = 0xff;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[SEPARATOR]);
        add(value.as_bytes());
        add(&[SEPARATOR]);
    }
    format!("{h:016x}")
}

/// `2026-11-29T04:05:06.123Z`. Times before 1970 print as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t.max(UNIX_EPOCH)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::Contributor;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_250); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.250Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_910_400 + 3_723); // 2026-11-29 01:02:03
        assert_eq!(rfc3339(t), "2026-11-29T01:02:03.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31 23:59:59
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn fingerprint_is_alertmanagers() {
        // The empty set is FNV-1a's offset basis, as in prometheus/common.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        // Names and values are separated (0xff), so moving a character
        // across the boundary changes the id.
        let l = |n: &str, v: &str| BTreeMap::from([(n.to_string(), v.to_string())]);
        assert_ne!(fingerprint(&l("ab", "c")), fingerprint(&l("a", "bc")));
        // tests/e2e_alertmanager.rs compares it with a real Alertmanager's.
    }

    fn sample(resolved: bool) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "mem".to_string());
        labels.insert("cgroup".to_string(), "/a".to_string());
        let mut annotations = BTreeMap::new();
        annotations.insert("top_contributors".to_string(), "/a/b 71%".to_string());
        Alert {
            labels,
            annotations,
            starts_at: UNIX_EPOCH,
            ends_at: resolved.then_some(UNIX_EPOCH + Duration::from_secs(60)),
            generator_url: "http://node:9753/".to_string(),
            contributors: vec![Contributor {
                cgroup: "/a/b".to_string(),
                share: 0.71,
            }],
        }
    }

    #[test]
    fn alertmanager_body_is_an_array_of_postable_alerts() {
        let v = alertmanager_body(&[sample(false), sample(true)]);
        let arr = v.as_array().expect("array");
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[0]["labels"]["alertname"], "mem");
        assert_eq!(arr[0]["annotations"]["top_contributors"], "/a/b 71%");
        assert_eq!(arr[0]["startsAt"], "1970-01-01T00:00:00.000Z");
        assert!(arr[0].get("endsAt").is_none(), "firing: no endsAt");
        assert_eq!(arr[1]["endsAt"], "1970-01-01T00:01:00.000Z");
        assert_eq!(arr[0]["generatorURL"], "http://node:9753/");
        let keys: Vec<&String> = arr[0].as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn webhook_body_has_version_status_and_contributors() {
        let v = webhook_body(&[sample(true)]);
        assert_eq!(v["version"], "1");
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["alerts"][0]["status"], "resolved");
        assert_eq!(v["alerts"][0]["contributors"][0]["cgroup"], "/a/b");
        assert_eq!(v["alerts"][0]["contributors"][0]["share"], 0.71);
        let v = webhook_body(&[sample(true), sample(false)]);
        assert_eq!(v["status"], "firing");
        assert_eq!(v["alerts"][1]["endsAt"], Value::Null);
    }
}
