//! The agent's own metrics (names are a contract, see DESIGN.md). Counter
//! names are registered without `_total`: the encoder adds it.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use prometheus_client::registry::Registry;

use crate::alerting::AlertingMetrics;
use crate::metrics::{self as m, register, Selection};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TriggerEventLabels {
    pub rule: String,
    pub cgroup: String,
    pub resource: &'static str,
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TriggerErrorLabels {
    pub rule: String,
    pub reason: &'static str,
}

/// Everything the PSI agent and its receivers export.
#[derive(Debug, Default)]
pub struct PsiMetrics {
    /// `psi_trigger_events_total{rule,cgroup,resource,kind}`; a cgroup's
    /// series is removed when the cgroup goes.
    pub trigger_events: Family<TriggerEventLabels, Counter>,
    /// `psi_triggers_armed{rule}`.
    pub triggers_armed: Family<RuleLabels, Gauge>,
    /// `psi_trigger_errors_total{rule,reason}`.
    pub trigger_errors: Family<TriggerErrorLabels, Counter>,
    /// `psi_alerts_firing{rule}`.
    pub alerts_firing: Family<RuleLabels, Gauge>,
    /// `psi_alert_notifications_total`, `psi_alert_queue_length`.
    pub alerting: Arc<AlertingMetrics>,
}

impl PsiMetrics {
    pub fn new() -> Arc<PsiMetrics> {
        Arc::new(PsiMetrics::default())
    }

    /// Registers every family (tests; the exporter uses
    /// [`PsiMetrics::register_selected`]).
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.register_selected(registry, &Selection::all_on());
    }

    /// Registers the families `on` leaves on.
    pub fn register_selected(&self, registry: &mut Registry, on: &Selection) {
        register(
            registry,
            on,
            &m::PSI_TRIGGER_EVENTS,
            self.trigger_events.clone(),
        );
        register(
            registry,
            on,
            &m::PSI_TRIGGERS_ARMED,
            self.triggers_armed.clone(),
        );
        register(
            registry,
            on,
            &m::PSI_TRIGGER_ERRORS,
            self.trigger_errors.clone(),
        );
        register(
            registry,
            on,
            &m::PSI_ALERTS_FIRING,
            self.alerts_firing.clone(),
        );
        self.alerting.register(registry, on);
    }

    pub(crate) fn rule_gauge(family: &Family<RuleLabels, Gauge>, rule: &str, delta: i64) {
        family
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
            })
            .inc_by(delta);
    }

    pub(crate) fn trigger_error(&self, rule: &str, reason: &'static str) {
        self.trigger_errors
            .get_or_create(&TriggerErrorLabels {
                rule: rule.to_string(),
                reason,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One series in every family.
    fn filled() -> Arc<PsiMetrics> {
        let m = PsiMetrics::new();
        m.trigger_events
            .get_or_create(&TriggerEventLabels {
                rule: "r".into(),
                cgroup: "/a".into(),
                resource: "memory",
                kind: "some",
            })
            .inc();
        PsiMetrics::rule_gauge(&m.triggers_armed, "r", 1);
        PsiMetrics::rule_gauge(&m.alerts_firing, "r", 1);
        m.trigger_error("r", "invalid");
        m.alerting.count("http://am", "success", 1);
        m.alerting
            .queue_length
            .get_or_create(&crate::alerting::ReceiverLabels {
                receiver: "http://am".into(),
            })
            .set(2);
        m
    }

    #[test]
    fn exposition_uses_the_contract_names() {
        let m = filled();
        let mut reg = Registry::default();
        m.register_metrics(&mut reg);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        for want in [
            "psi_trigger_events_total{rule=\"r\",cgroup=\"/a\",resource=\"memory\",kind=\"some\"} 1",
            "psi_triggers_armed{rule=\"r\"} 1",
            "psi_trigger_errors_total{rule=\"r\",reason=\"invalid\"} 1",
            "psi_alerts_firing{rule=\"r\"} 1",
            "psi_alert_notifications_total{receiver=\"http://am\",outcome=\"success\"} 1",
        ] {
            assert!(out.contains(want), "missing {want} in\n{out}");
        }
    }

    #[test]
    fn disabled_psi_and_alerting_families_are_not_registered_and_the_others_are() {
        let m = filled();
        let off = Selection::new(
            &[
                "psi_trigger_events_total".into(),
                "psi_alert_queue_length".into(),
            ],
            &[],
        );
        let encode = |on: &Selection| {
            let mut reg = Registry::default();
            m.register_selected(&mut reg, on);
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
            out.lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split(' ').next())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let all = encode(&Selection::all_on());
        assert_eq!(
            all,
            [
                "psi_trigger_events",
                "psi_triggers_armed",
                "psi_trigger_errors",
                "psi_alerts_firing",
                "psi_alert_notifications",
                "psi_alert_queue_length",
            ]
        );
        assert_eq!(
            encode(&off),
            [
                "psi_triggers_armed",
                "psi_trigger_errors",
                "psi_alerts_firing",
                "psi_alert_notifications",
            ]
        );
    }
}
