//! Schema and syntax errors: located at file:line:column.

use super::*;

#[test]
fn unknown_resource_names_the_variant_and_choices() {
    let text = RULE.replace("resource: memory", "resource: gpu");
    assert_syntax(
        &text,
        5,
        17,
        "psi.rules[0].resource: unknown variant \"gpu\", expected one of cpu, memory, io, irq",
    );
    let err = Config::parse_str(&text, Path::new(FILE)).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("config.yaml:5:17: psi.rules[0].resource: unknown variant \"gpu\""));
}

#[test]
fn misspelt_resource_gets_a_suggestion() {
    let text = RULE.replace("resource: memory", "resource: memroy");
    assert_syntax(&text, 5, 17, "(did you mean \"memory\"?)");
}

#[test]
fn unknown_kind_is_located_at_its_value() {
    assert_syntax(
        &rule_with("      kind: smoe\n"),
        7,
        13,
        "psi.rules[0].kind: unknown variant \"smoe\", expected \"some\" or \"full\"",
    );
}

#[test]
fn bad_duration_unit_is_located_at_its_value() {
    let text = RULE.replace("threshold: 150ms", "threshold: 2x");
    assert_syntax(
        &text,
        6,
        18,
        "psi.rules[0].threshold: invalid duration \"2x\": unknown unit \"x\"",
    );
}

#[test]
fn duration_without_unit_asks_for_one() {
    assert_syntax(
        &rule_with("      window: 3\n"),
        7,
        15,
        "psi.rules[0].window: invalid duration \"3\": a unit is needed, e.g. 3s or 3ms",
    );
}

#[test]
fn duration_of_wrong_type_is_located() {
    assert_syntax(
            &rule_with("      resolve_after: [1s]\n"),
            7,
            22,
            "psi.rules[0].resolve_after: invalid type: sequence, expected a duration such as 150ms or 2s",
        );
}

#[test]
fn alerting_timeout_duration_is_checked() {
    assert_syntax(
        "alerting:\n  timeout: soon\n",
        2,
        12,
        "alerting.timeout: invalid duration \"soon\"",
    );
}

#[test]
fn unknown_rule_key_is_located_at_the_key_with_suggestion() {
    assert_syntax(
            &rule_with("      windw: 2s\n"),
            7,
            7,
            "psi.rules[0]: unknown field \"windw\", expected one of name, cgroups, resource, kind, threshold, window, resolve_after, labels, annotations (did you mean \"window\"?)",
        );
}

#[test]
fn unknown_top_level_key_is_reported() {
    assert_syntax(
            "cgroup:\n  include: []\n",
            1,
            1,
            "unknown field \"cgroup\", expected one of cgroups, metrics, namespaces, psi, alerting, kubernetes (did you mean \"cgroups\"?)",
        );
}

#[test]
fn unknown_key_after_known_ones_is_located_at_itself() {
    assert_syntax(
        "cgroups:\n  include: []\n  inclde: []\n",
        3,
        3,
        "cgroups: unknown field \"inclde\"",
    );
}

#[test]
fn unknown_key_in_flow_mapping_is_located() {
    assert_syntax(
            "psi:\n  rules:\n    - {name: a, cgroups: [\"/\"], resource: cpu, threshold: 1s, bogus: 1}\n",
            3,
            63,
            "psi.rules[0]: unknown field \"bogus\"",
        );
}

#[test]
fn string_for_integer_is_a_type_error() {
    assert_syntax(
        "cgroups:\n  max_depth: abc\n",
        2,
        14,
        "cgroups.max_depth: invalid type: string \"abc\", expected a non-negative integer",
    );
}

#[test]
fn negative_depth_is_a_type_error() {
    assert_syntax(
        "cgroups:\n  max_depth: -1\n",
        2,
        14,
        "cgroups.max_depth: invalid type: integer -1, expected a non-negative integer",
    );
}

#[test]
fn float_for_integer_is_a_type_error() {
    assert_syntax(
            "alerting:\n  queue_capacity: 1.5\n",
            2,
            19,
            "alerting.queue_capacity: invalid type: floating point 1.5, expected a non-negative integer",
        );
}

#[test]
fn huge_integer_is_a_type_error() {
    assert_syntax(
            "cgroups:\n  max_cgroups: 99999999999999999999999\n",
            2,
            16,
            "cgroups.max_cgroups: invalid type: integer 99999999999999999999999, expected a non-negative integer",
        );
}

#[test]
fn string_for_list_is_a_type_error() {
    assert_syntax(
        "cgroups:\n  include: \"/a\"\n",
        2,
        12,
        "cgroups.include: invalid type: string \"/a\", expected a list",
    );
}

#[test]
fn list_for_section_is_a_type_error() {
    assert_syntax(
        "cgroups: []\n",
        1,
        10,
        "cgroups: invalid type: sequence, expected a mapping",
    );
}

#[test]
fn mapping_for_rules_is_a_type_error() {
    assert_syntax(
        "psi:\n  rules:\n    name: a\n",
        3,
        5,
        "psi.rules: invalid type: mapping, expected a list",
    );
}

#[test]
fn yes_is_not_a_boolean() {
    assert_syntax(
        "namespaces:\n  enabled: yes\n",
        2,
        12,
        "namespaces.enabled: invalid type: string \"yes\", expected a boolean",
    );
}

#[test]
fn integer_is_not_a_boolean() {
    assert_syntax(
        "alerting:\n  oom_kills: 1\n",
        2,
        14,
        "alerting.oom_kills: invalid type: integer 1, expected a boolean",
    );
}

#[test]
fn nested_list_in_string_list_is_a_type_error() {
    assert_syntax(
        "metrics:\n  disable: [a, [b]]\n",
        2,
        16,
        "metrics.disable[1]: invalid type: sequence, expected a string",
    );
}

#[test]
fn label_value_must_be_a_string() {
    assert_syntax(
        &rule_with("      labels: {team: [a]}\n"),
        7,
        22,
        "psi.rules[0].labels.team: invalid type: sequence, expected a string",
    );
}

#[test]
fn missing_required_rule_field_is_located_at_the_rule() {
    let text = RULE.replace("      resource: memory\n", "");
    assert_syntax(&text, 3, 7, "psi.rules[0]: missing field \"resource\"");
}

#[test]
fn top_level_list_is_a_type_error() {
    assert_syntax("- 1\n", 1, 1, "invalid type: sequence, expected a mapping");
}

#[test]
fn unclosed_flow_sequence_is_a_syntax_error() {
    assert_syntax(
        "cgroups:\n  include: [\"/a\"\n",
        3,
        1,
        "did not find expected ',' or ']'",
    );
}

#[test]
fn tab_indentation_is_a_syntax_error() {
    assert_syntax(
        "cgroups:\n\tinclude: []\n",
        2,
        1,
        "found character that cannot start any token",
    );
}

#[test]
fn bad_indentation_is_a_syntax_error() {
    assert_syntax(
        "psi:\n  rules:\n    - name: a\n   cgroups: []\n",
        4,
        4,
        "did not find expected key",
    );
}

#[test]
fn unclosed_quote_is_a_syntax_error() {
    assert_syntax(
        "kubernetes:\n  kubelet_url: \"http://x\n",
        3,
        1,
        "found unexpected end of stream",
    );
}

#[test]
fn duplicate_key_points_at_the_second_occurrence() {
    assert_syntax(
        "cgroups:\n  max_depth: 1\n  include: []\n  max_depth: 2\n",
        4,
        3,
        "cgroups: duplicate entry with key \"max_depth\"",
    );
}

#[test]
fn duplicate_key_in_a_rule_points_at_the_second_occurrence() {
    assert_syntax(
        &rule_with("      # again\n      threshold: 1s\n"),
        8,
        7,
        "duplicate entry with key \"threshold\"",
    );
}

#[test]
fn unknown_alias_is_a_syntax_error() {
    assert_syntax("cgroups: &a {}\nmetrics: *b\n", 2, 10, "unknown anchor");
}

#[test]
fn second_document_is_rejected_at_its_marker() {
    assert_syntax(
        "cgroups: {}\n---\nmetrics: {}\n",
        2,
        1,
        "more than one document",
    );
}

#[test]
fn syntax_error_display_is_one_line_with_file_line_column() {
    let err =
        Config::parse_str("cgroups:\n  max_depth: abc\n", Path::new("/etc/cgpe.yaml")).unwrap_err();
    assert_eq!(
            err.to_string(),
            "/etc/cgpe.yaml:2:14: cgroups.max_depth: invalid type: string \"abc\", expected a non-negative integer"
        );
}
