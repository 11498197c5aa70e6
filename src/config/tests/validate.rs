//! Semantic validation.

use super::*;

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
fn the_generator_label_is_reserved_in_psi_and_level_rules() {
    let text = rule_with("      labels:\n        generator: mine\n");
    assert_invalid(
        &text,
        &strict(),
        "psi.rules[0].labels.generator",
        8,
        20,
        "\"generator\" is set to \"cgroup-psi-exporter\"",
    );
    assert_invalid(
        &format!("{LEVELS}      labels: {{ generator: x }}\n"),
        &strict(),
        "psi.pressure_levels[0].labels.generator",
        6,
        28,
        "cannot be overridden",
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
    let text = rule_with("      annotations:\n        summary: \"{{ cgroup }} at {{ $value }}\"\n");
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
    let text = "cgroups:\n  include:\n    - \"**\"\n    - \"/a/[b\"\n  exclude: [\"/x/../y\"]\n";
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
fn any_family_of_the_table_may_be_disabled_and_typos_get_a_suggestion() {
    let ctx = ValidationContext {
        cap_sys_resource: false,
        known_families: crate::metrics::ALL.iter().map(|d| d.exported).collect(),
    };
    let text = "metrics:\n  disable: [namespace_info, cgroup_psi_exporter_build_info, process_cpu_seconds_total, psi_trigger_events, psi_alert_queue_length, cgroup_psi_exporter_kubelet_up]\n";
    assert_valid(text, &ctx);
    assert_invalid(
        "metrics:\n  disable: [psi_alerts_fired]\n",
        &ctx,
        "metrics.disable[0]",
        2,
        13,
        "unknown metric family \"psi_alerts_fired\" (did you mean \"psi_alerts_firing\"?)",
    );
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
    // Receiver URLs are typed: a bad one fails as it is deserialized (as a
    // bad duration does), located at its value, in the same one-line form
    // validation uses.
    let text = "alerting:\n  alertmanagers:\n    - http://am:9093\n    - ftp://am\n";
    assert_syntax(
        text,
        4,
        7,
        "alerting.alertmanagers[1]: \"ftp://am\": scheme \"ftp\" is not http or https",
    );
    assert_eq!(
        Config::parse_str(text, Path::new(FILE))
            .unwrap_err()
            .to_string(),
        "config.yaml:4:7: alerting.alertmanagers[1]: \"ftp://am\": scheme \"ftp\" is not http or https"
    );
    assert_syntax(
        "alerting:\n  alertmanagers:\n    - http://am:9093\n    - http://am:99999\n",
        4,
        7,
        "alerting.alertmanagers[1]: \"http://am:99999\": invalid port \"99999\"",
    );
    assert_syntax(
        "alerting:\n  webhooks: [\"https://user:pw@hook/x\"]\n",
        2,
        14,
        "alerting.webhooks[0]: \"https://user:pw@hook/x\": credentials",
    );
    assert_syntax(
        "alerting:\n  external_url: \"exporter:9753\"\n",
        2,
        17,
        "alerting.external_url: \"exporter:9753\": expected a URL",
    );
    let cfg = assert_valid(
        "alerting:\n  alertmanagers: [\"HTTP://am:9093/\"]\n  external_url: \"\"\n",
        &strict(),
    );
    assert_eq!(cfg.alerting.alertmanagers[0].as_str(), "HTTP://am:9093/");
    assert_eq!(cfg.alerting.external_url, None);
}

#[test]
fn kubelet_url_with_a_query_is_refused_at_load() {
    assert_invalid(
        "kubernetes:\n  kubelet_url: \"http://10.0.0.1:10255/?a=b\"\n",
        &strict(),
        "kubernetes.kubelet_url",
        2,
        16,
        "no query string allowed",
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

// === psi.pressure_levels and alerting.memory_events ===

const LEVELS: &str = "psi:
  pressure_levels:
    - name: CgroupMemoryPressureLevel
      cgroups: [\"/kubepods/**\"]
      level: medium
";

#[test]
fn pressure_level_rules_parse_with_defaults() {
    let cfg = assert_valid(LEVELS, &strict());
    let r = &cfg.psi.pressure_levels[0];
    assert_eq!(r.level, PressureLevel::Medium);
    assert_eq!(r.resolve_after, Duration::from_secs(30));
    assert_eq!(r.level.name(), "medium");
}

#[test]
fn pressure_level_must_be_a_kernel_level() {
    let text = LEVELS.replace("level: medium", "level: severe");
    match Config::parse_str_with(&text, Path::new(FILE), &strict()) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("config.yaml:5:14"), "{msg}");
            assert!(msg.contains("low") && msg.contains("critical"), "{msg}");
        }
        Ok(_) => panic!("level: severe accepted"),
    }
}

#[test]
fn pressure_level_rules_are_validated_like_psi_rules() {
    assert_invalid(
        &LEVELS.replace("[\"/kubepods/**\"]", "[]"),
        &strict(),
        "psi.pressure_levels[0].cgroups",
        4,
        16,
        "at least one cgroup glob",
    );
    assert_invalid(
        &format!("{LEVELS}      resolve_after: 0s\n"),
        &strict(),
        "psi.pressure_levels[0].resolve_after",
        6,
        22,
        "at least 1s",
    );
    assert_invalid(
        &format!("{LEVELS}      labels: {{ level: x }}\n"),
        &strict(),
        "psi.pressure_levels[0].labels.level",
        6,
        24,
        "set by the agent",
    );
    assert_invalid(
        &format!("{LEVELS}      annotations: {{ summary: \"{{{{ nope }}}}\" }}\n"),
        &strict(),
        "psi.pressure_levels[0].annotations.summary",
        6,
        31,
        "unknown placeholder",
    );
    assert_valid(
        &format!(
            "{LEVELS}      annotations: {{ summary: \"{{{{ level }}}} in {{{{ cgroup }}}}\" }}\n"
        ),
        &strict(),
    );
}

#[test]
fn pressure_level_rule_names_are_unique_across_both_lists() {
    let text = format!(
        "{RULE}  pressure_levels:\n    - name: mem\n      cgroups: [\"/\"]\n      level: low\n"
    );
    let errors = validation_errors(&text, &strict());
    assert!(
        errors
            .iter()
            .any(|e| e.path == "psi.pressure_levels[0].name"
                && e.message.contains("also psi.rules[0]")),
        "{errors:?}"
    );
}

#[test]
fn memory_events_hold_off_is_bounded() {
    let ok = "alerting:\n  memory_events: { high: true, max: true, hold_off: 10m }\n";
    let cfg = assert_valid(ok, &strict());
    assert!(cfg.alerting.memory_events.high && cfg.alerting.memory_events.max);
    assert_eq!(
        cfg.alerting.memory_events.hold_off,
        Duration::from_secs(600)
    );
    assert_eq!(
        Config::default().alerting.memory_events,
        MemoryEventsConfig {
            high: false,
            max: false,
            hold_off: Duration::from_secs(300)
        }
    );
    assert_invalid(
        "alerting:\n  memory_events:\n    hold_off: 500ms\n",
        &strict(),
        "alerting.memory_events.hold_off",
        3,
        15,
        "between 1s and 24h",
    );
}
