//! Tests of the config: schema and syntax errors, defaults, semantic
//! validation, helpers.

use super::diagnostics::{locate, suggest, PathSegment};
use super::*;

const FILE: &str = "config.yaml";

/// A valid rule on lines 1-6; tests append keys at line 7 onwards with
/// six spaces of indentation (values of `window:` start at column 15).
const RULE: &str = "psi:\n  rules:\n    - name: mem\n      cgroups: [\"/\"]\n      resource: memory\n      threshold: 150ms\n";

fn rule_with(extra: &str) -> String {
    format!("{RULE}{extra}")
}

fn strict() -> ValidationContext {
    ValidationContext::default()
}

fn privileged() -> ValidationContext {
    ValidationContext {
        cap_sys_resource: true,
        known_families: Vec::new(),
    }
}

/// Asserts a schema/syntax error at exactly `line:column` whose message
/// contains `fragment`.
#[track_caller]
fn assert_syntax(text: &str, line: usize, column: usize, fragment: &str) {
    match Config::parse_str(text, Path::new(FILE)) {
        Err(ConfigError::Syntax {
            file,
            line: l,
            column: c,
            message,
        }) => {
            assert_eq!(file, Path::new(FILE));
            assert_eq!((l, c), (line, column), "location of {message:?}");
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
            assert!(!message.contains('\n'), "not one line: {message:?}");
            assert!(!message.contains(" at line "), "{message:?}");
        }
        other => panic!("expected a syntax error for {text:?}, got {other:?}"),
    }
}

fn validation_errors(text: &str, ctx: &ValidationContext) -> Vec<ValidationError> {
    match Config::parse_str_with(text, Path::new(FILE), ctx) {
        Err(ConfigError::Validation { errors, .. }) => errors,
        other => panic!("expected validation errors for {text:?}, got {other:?}"),
    }
}

/// Asserts that validation reports `path` at `line:column` with a
/// message containing `fragment`.
#[track_caller]
fn assert_invalid(
    text: &str,
    ctx: &ValidationContext,
    path: &str,
    line: usize,
    column: usize,
    fragment: &str,
) {
    let errors = validation_errors(text, ctx);
    let e = errors
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no error at {path} in {errors:?}"));
    assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
    assert!(
        e.message.contains(fragment),
        "{:?} lacks {fragment:?}",
        e.message
    );
}

#[track_caller]
fn assert_valid(text: &str, ctx: &ValidationContext) -> Config {
    match Config::parse_str_with(text, Path::new(FILE), ctx) {
        Ok(cfg) => cfg,
        Err(e) => panic!("{text:?} should be valid: {e}"),
    }
}

// === defaults and tolerated forms ===

#[test]
fn empty_or_comment_only_file_means_defaults() {
    for text in ["", "\n\n", "# nothing here\n", "---\n", "~\n"] {
        assert_eq!(assert_valid(text, &strict()), Config::default(), "{text:?}");
    }
}

#[test]
fn empty_sections_mean_defaults() {
    let cfg = assert_valid(
        "cgroups:\nmetrics:\nnamespaces:\npsi:\n  rules:\nalerting:\nkubernetes:\n",
        &strict(),
    );
    assert_eq!(cfg, Config::default());
    let cfg = assert_valid(&rule_with("      labels:\n      annotations:\n"), &strict());
    assert!(cfg.psi.rules[0].labels.is_empty());
}

#[test]
fn rule_defaults_are_filled_in() {
    let cfg = assert_valid(RULE, &strict());
    let r = &cfg.psi.rules[0];
    assert_eq!(r.kind, PsiKind::Some);
    assert_eq!(r.window, Duration::from_secs(2));
    assert_eq!(r.resolve_after, Duration::from_secs(30));
    assert_eq!(r.threshold, Duration::from_millis(150));
    assert_eq!(r.trigger_line(), "some 150000 2000000");
}

#[test]
fn design_example_parses() {
    let text = r#"
cgroups:
  include: ["**"]
  exclude: []
  max_depth: 10
  max_cgroups: 20000
metrics:
  disable: []
namespaces: { enabled: true }
psi:
  rules:
    - name: memory-pressure
      cgroups: ["/kubepods.slice/**"]
      resource: memory
      kind: some
      threshold: 150ms
      window: 2s
      resolve_after: 30s
      labels: { severity: warning }
      annotations: { summary: "memory pressure in {{ cgroup }}" }
alerting:
  alertmanagers: ["http://alertmanager:9093"]
  webhooks: []
  timeout: 5s
  oom_kills: true
kubernetes:
  kubelet_url: ""
"#;
    let cfg = assert_valid(text, &strict());
    assert_eq!(cfg.psi.rules[0].name, "memory-pressure");
    assert_eq!(cfg.alerting.alertmanagers, ["http://alertmanager:9093"]);
}

mod helpers;
mod syntax;
mod validate;
