//! Which cgroups a rule selects, the trigger it asks for, and the small
//! template language of its annotations. Pure.

use crate::cgroupfs::CgroupPath;
use crate::config::PsiRule;
use crate::glob::Glob;

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
    /// The other cgroup globs, compiled once (validated with the config; a
    /// pattern that does not compile matches nothing).
    globs: Vec<Glob>,
}

impl RuleRt {
    pub fn new(rule: PsiRule) -> RuleRt {
        RuleRt {
            spec: TriggerSpec::from_rule(&rule),
            host: rule.cgroups.iter().any(|g| g == HOST),
            globs: compile(&rule.cgroups),
            rule,
        }
    }

    /// Whether this rule arms a trigger on the cgroup `path` of the cgroup2
    /// hierarchy. The hierarchy's root is never matched by a glob: `/`
    /// means the host, armed on `/proc/pressure` instead.
    pub fn matches(&self, path: &CgroupPath) -> bool {
        !path.is_root() && self.globs.iter().any(|g| g.matches(path.as_str()))
    }
}

fn compile(globs: &[String]) -> Vec<Glob> {
    globs
        .iter()
        .filter(|g| g.as_str() != HOST)
        .filter_map(|g| Glob::new(g).ok())
        .collect()
}

/// Whether any of `globs` (other than the host's `/`) selects `path`.
#[cfg(test)]
fn rule_matches(globs: &[String], path: &CgroupPath) -> bool {
    compile(globs).iter().any(|g| g.matches(path.as_str()))
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
}
