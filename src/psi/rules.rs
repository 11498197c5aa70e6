//! Which cgroups a rule selects, the trigger it asks for, and the small
//! template language of its annotations. Pure.

use crate::cgroupfs::CgroupPath;
use crate::config::PsiRule;

use super::trigger::TriggerSpec;

/// The `cgroups:` entry that means the host (`<procfs>/pressure/<resource>`).
pub const HOST: &str = "/";

/// A rule as the agent runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRt {
    pub rule: PsiRule,
    pub spec: TriggerSpec,
    /// `/` is among its cgroups: armed on the host's pressure file.
    pub host: bool,
}

impl RuleRt {
    pub fn new(rule: PsiRule) -> RuleRt {
        RuleRt {
            spec: TriggerSpec::from_rule(&rule),
            host: rule.cgroups.iter().any(|g| g == HOST),
            rule,
        }
    }

    /// Whether this rule arms a trigger on the cgroup `path` of the cgroup2
    /// hierarchy. The hierarchy's root is never matched by a glob: `/`
    /// means the host, armed on `/proc/pressure` instead.
    pub fn matches(&self, path: &CgroupPath) -> bool {
        !path.is_root() && rule_matches(&self.rule.cgroups, path)
    }
}

/// The one place rule globs are matched, so switching to `crate::glob`
/// once it does real `*`/`**` matching is a one-line change.
pub fn rule_matches(globs: &[String], path: &CgroupPath) -> bool {
    globs
        .iter()
        .filter(|g| g.as_str() != HOST)
        .any(|g| glob_match(g, path.as_str()))
}

/// `*` matches within one segment, `**` any number of segments (also none).
/// Private stand-in until `crate::glob::Glob` lands.
fn glob_match(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match_segments(&pat, &segs)
}

fn match_segments(pat: &[&str], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|i| match_segments(rest, &segs[i..])),
        Some((p, rest)) => match segs.split_first() {
            Some((s, srest)) => {
                match_segment(p.as_bytes(), s.as_bytes()) && match_segments(rest, srest)
            }
            None => false,
        },
    }
}

fn match_segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| match_segment(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && match_segment(rest, &s[1..]),
    }
}

/// Replaces `{{ name }}` placeholders with their values; unknown names are
/// left as written so a typo shows in the alert instead of vanishing.
/// Private stand-in until `config::render_template` lands.
pub fn render_template(tpl: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(tpl.len());
    let mut rest = tpl;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        rule_matches(&[p.to_string()], &CgroupPath::new(path))
    }

    #[test]
    fn globs_match_segments() {
        assert!(m("/kubepods.slice/**", "/kubepods.slice/a/b"));
        assert!(m("/kubepods.slice/**", "/kubepods.slice"));
        assert!(!m("/kubepods.slice/**", "/kubepods.slicex/a"));
        assert!(m("/cgpe-*/*", "/cgpe-1/a"));
        assert!(!m("/cgpe-*/*", "/cgpe-1/a/b"));
        assert!(!m("/cgpe-*/*", "/cgpe-1"));
        assert!(m("**", "/a/b"));
        assert!(m("/a/**/c", "/a/c"));
        assert!(m("/a/**/c", "/a/x/y/c"));
        assert!(m("/*.service", "/system.slice.service"));
    }

    #[test]
    fn slash_means_the_host_not_a_glob() {
        assert!(!m("/", "/"));
        assert!(!m("/", "/a"));
        let rule: PsiRule = serde_yaml::from_str(
            "{name: h, cgroups: ['/', '/a/*'], resource: memory, threshold: 150ms}",
        )
        .expect("rule");
        let rt = RuleRt::new(rule);
        assert!(rt.host);
        assert!(!rt.matches(&CgroupPath::root()));
        assert!(rt.matches(&CgroupPath::new("/a/b")));
        assert_eq!(rt.spec.window_us, 2_000_000);
    }

    #[test]
    fn templates_fill_known_names_and_keep_unknown_ones() {
        let vars = [("cgroup", "/a/b"), ("rule", "mem")];
        assert_eq!(
            render_template("memory pressure in {{ cgroup }} ({{rule}})", &vars),
            "memory pressure in /a/b (mem)"
        );
        assert_eq!(render_template("{{ nope }} x", &vars), "{{ nope }} x");
        assert_eq!(render_template("open {{ cgroup", &vars), "open {{ cgroup");
        assert_eq!(render_template("", &vars), "");
    }
}
