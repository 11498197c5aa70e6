//! The annotation template language: `{{ name }}` placeholders filled from
//! the alert's variables. Validation checks templates at load; the PSI
//! agent renders them when an alert fires.

use std::collections::BTreeMap;

/// Placeholders annotation templates may use (see [`render_template`]).
pub const TEMPLATE_PLACEHOLDERS: &[&str] = &[
    "cgroup",
    "rule",
    "resource",
    "kind",
    "value",
    "node",
    "threshold",
    "window",
    // Labels the alert carries when the cgroup path or the kubelet gives them.
    "pod_uid",
    "container_id",
    "qos_class",
    "unit",
    "pod",
    "namespace",
    "container",
];

/// Finds `{{ name }}` placeholders: yields the text before each, the
/// trimmed name and the raw placeholder; for an unclosed `{{`, `Err` with
/// all the remaining text.
fn placeholders(tpl: &str) -> impl Iterator<Item = Result<(&str, &str, &str), &str>> {
    let mut rest = tpl;
    std::iter::from_fn(move || {
        let open = rest.find("{{")?;
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            let bad = rest;
            rest = "";
            return Some(Err(bad));
        };
        let before = &rest[..open];
        let raw = &rest[open..open + 2 + close + 2];
        let name = after[..close].trim();
        rest = &after[close + 2..];
        Some(Ok((before, name, raw)))
    })
}

/// Placeholders are the agent's variables and the rule's own labels.
pub(super) fn check_template(tpl: &str, labels: &BTreeMap<String, String>) -> Result<(), String> {
    for item in placeholders(tpl) {
        match item {
            Err(_) => return Err("unclosed \"{{\" in template".to_string()),
            Ok((_, name, raw))
                if !TEMPLATE_PLACEHOLDERS.contains(&name) && !labels.contains_key(name) =>
            {
                let known = TEMPLATE_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{{ {p} }}}}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(format!("unknown placeholder {raw:?} (known: {known})"));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Fills `{{ name }}` placeholders (spaces inside the braces optional)
/// from `vars`. Placeholders not in `vars` and an unclosed `{{` are kept
/// verbatim, so a template is never lost, only left unfilled.
pub fn render_template(tpl: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(tpl.len() + 32);
    let mut consumed = 0;
    for item in placeholders(tpl) {
        match item {
            Ok((before, name, raw)) => {
                out.push_str(before);
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(raw),
                }
                consumed += before.len() + raw.len();
            }
            Err(bad) => {
                out.push_str(bad);
                consumed = tpl.len();
            }
        }
    }
    out.push_str(&tpl[consumed..]);
    out
}
