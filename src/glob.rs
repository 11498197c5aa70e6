//! Globs on cgroup paths, as used by `cgroups.include` / `exclude` and by the
//! `cgroups` of PSI rules.
//!
//! Paths are canonical cgroup paths relative to the hierarchy root: `/` for
//! the root, `/a/b` below it. Patterns are normalised the same way (the
//! leading `/` is optional, a trailing `/` and repeated `/` are ignored), then
//! matched segment by segment:
//!
//! - `*` matches any run of characters within one segment (never `/`),
//! - `?` matches exactly one character,
//! - `[abc]`, `[a-z]`, `[!a-z]` (or `[^a-z]`) match one character of a class;
//!   `[*]` is how to match a literal `*`,
//! - `**` as a whole segment matches zero or more segments, so
//!   `/kubepods.slice/**` matches `/kubepods.slice` itself and everything
//!   below it, and `**` alone matches every path including `/`.
//!
//! There is no backslash escape on purpose: systemd escapes unit names with
//! backslashes (`system-systemd\x2dfsck.slice`), so `\` must stay literal.
//!
//! Patterns are compiled once; matching walks the path in place and never
//! allocates, because it runs for every cgroup on every discovery event.

use std::fmt;

/// Why a pattern was rejected. Carries the pattern so that config
/// validation can quote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    pub pattern: String,
    pub reason: String,
}

impl GlobError {
    fn new(pattern: &str, reason: impl Into<String>) -> GlobError {
        GlobError {
            pattern: pattern.to_string(),
            reason: reason.into(),
        }
    }
}

/// A compiled glob.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    segments: Box<[Segment]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// No metacharacters: compared as a string.
    Exact(Box<str>),
    /// `*`, `?` or classes within one segment.
    Wild(Box<[Token]>),
    /// `**`: zero or more whole segments.
    AnyDepth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Box<[(char, char)]>,
    },
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Glob").field(&self.pattern).finish()
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl Glob {
    /// Compiles a pattern. Rejects what would otherwise silently never
    /// match: empty patterns, `**` glued to other characters, `.`/`..`
    /// segments (cgroup paths never contain them) and unclosed classes.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::new(
                pattern,
                "empty pattern (use \"/\" for the root or \"**\" for everything)",
            ));
        }
        let mut segments: Vec<Segment> = Vec::new();
        for raw in pattern.split('/').filter(|s| !s.is_empty()) {
            let seg = compile_segment(pattern, raw)?;
            // `**/**` is the same as `**`; collapsing keeps matching linear.
            if seg == Segment::AnyDepth && segments.last() == Some(&Segment::AnyDepth) {
                continue;
            }
            segments.push(seg);
        }
        Ok(Glob {
            pattern: pattern.to_string(),
            segments: segments.into_boxed_slice(),
        })
    }

    /// The pattern as written in the config.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` (a canonical cgroup path, `/` or `/a/b`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let segs = &self.segments;
        let mut p = 0;
        let mut off = 0;
        // Where to resume after a mismatch: pattern index after the last
        // `**`, and the path offset that `**` has swallowed up to.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let next = next_segment(path, off);
            if p < segs.len() {
                match &segs[p] {
                    Segment::AnyDepth => {
                        resume = Some((p + 1, off));
                        p += 1;
                        continue;
                    }
                    seg => {
                        if let Some((s, after)) = next {
                            if seg.matches(s) {
                                p += 1;
                                off = after;
                                continue;
                            }
                        }
                    }
                }
            } else if next.is_none() {
                return true;
            }
            // Mismatch: let the last `**` swallow one more segment.
            match resume {
                Some((rp, roff)) => match next_segment(path, roff) {
                    Some((_, after)) => {
                        resume = Some((rp, after));
                        p = rp;
                        off = after;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }

    /// Same as [`Glob::matches`], named like [`GlobSet::is_match`].
    pub fn is_match(&self, path: &str) -> bool {
        self.matches(path)
    }

    /// Whether some cgroup strictly below `dir` might match. Discovery uses
    /// it to skip walking subtrees no include pattern can reach; it may
    /// answer `true` when nothing below matches, never `false` when
    /// something does.
    pub fn could_match_below(&self, dir: &str) -> bool {
        self.below(0, dir, 0, false)
    }

    /// Whether every cgroup strictly below `dir` matches, e.g. `dir` is
    /// `/system.slice` and the pattern `/system.slice/**`. Lets discovery
    /// skip a subtree that an exclude pattern removes wholesale.
    pub fn matches_everything_below(&self, dir: &str) -> bool {
        self.below(0, dir, 0, true)
    }

    /// Consumes the segments of `dir` from `off` with the pattern from `p`
    /// and reports whether the rest of the pattern can match at least one
    /// more segment (`all == false`) or any number of segments (`all`).
    fn below(&self, p: usize, dir: &str, off: usize, all: bool) -> bool {
        let segs = &self.segments;
        match next_segment(dir, off) {
            None => {
                if all {
                    p < segs.len() && segs[p..].iter().all(|s| *s == Segment::AnyDepth)
                } else {
                    p < segs.len()
                }
            }
            Some((s, after)) => match segs.get(p) {
                None => false,
                Some(Segment::AnyDepth) => {
                    self.below(p + 1, dir, off, all) || self.below(p, dir, after, all)
                }
                Some(seg) => seg.matches(s) && self.below(p + 1, dir, after, all),
            },
        }
    }
}

impl Segment {
    fn matches(&self, s: &str) -> bool {
        match self {
            Segment::Exact(lit) => **lit == *s,
            Segment::Wild(tokens) => match_tokens(tokens, s),
            Segment::AnyDepth => true,
        }
    }
}

/// The segment starting at or after `off` (skipping `/`), and the offset
/// just past it.
fn next_segment(path: &str, off: usize) -> Option<(&str, usize)> {
    let rest = path.get(off..)?;
    let trimmed = rest.trim_start_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    let start = off + (rest.len() - trimmed.len());
    let len = trimmed.find('/').unwrap_or(trimmed.len());
    Some((&trimmed[..len], start + len))
}

/// Wildcard match within one segment. Every token but `*` matches a fixed
/// number of characters, so remembering only the last `*` is enough.
fn match_tokens(tokens: &[Token], s: &str) -> bool {
    let mut t = 0;
    let mut i = 0;
    let mut resume: Option<(usize, usize)> = None;
    loop {
        if let Some(tok) = tokens.get(t) {
            let rest = &s[i..];
            let step = match tok {
                Token::Star => {
                    resume = Some((t + 1, i));
                    t += 1;
                    continue;
                }
                Token::Literal(lit) => rest.starts_with(&**lit).then_some(lit.len()),
                Token::AnyChar => rest.chars().next().map(char::len_utf8),
                Token::Class { negated, ranges } => rest.chars().next().and_then(|c| {
                    let hit = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    (hit != *negated).then_some(c.len_utf8())
                }),
            };
            if let Some(n) = step {
                i += n;
                t += 1;
                continue;
            }
        } else if i == s.len() {
            return true;
        }
        match resume {
            Some((rt, ri)) => match s[ri..].chars().next() {
                Some(c) => {
                    let ni = ri + c.len_utf8();
                    resume = Some((rt, ni));
                    t = rt;
                    i = ni;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

fn compile_segment(pattern: &str, raw: &str) -> Result<Segment, GlobError> {
    if raw == "**" {
        return Ok(Segment::AnyDepth);
    }
    if raw.contains("**") {
        return Err(GlobError::new(
            pattern,
            format!("\"**\" must be a whole path segment, not part of {raw:?} (use \"*\" within a segment)"),
        ));
    }
    if raw == "." || raw == ".." {
        return Err(GlobError::new(
            pattern,
            format!("{raw:?} is not allowed: cgroup paths are canonical"),
        ));
    }
    if !raw.contains(['*', '?', '[']) {
        return Ok(Segment::Exact(raw.into()));
    }
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        let tok = match c {
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '[' => parse_class(pattern, &mut chars)?,
            c => {
                literal.push(c);
                continue;
            }
        };
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal).into()));
        }
        tokens.push(tok);
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal.into()));
    }
    Ok(Segment::Wild(tokens.into_boxed_slice()))
}

/// Parses a class after its `[`. A `]` right after the opening (or after
/// `!`/`^`) is a literal, as in shell globs.
fn parse_class(
    pattern: &str,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Token, GlobError> {
    let unclosed = || GlobError::new(pattern, "unclosed \"[\" (use \"[[]\" for a literal \"[\")");
    let negated = matches!(chars.peek(), Some('!' | '^'));
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or_else(unclosed)?;
        if c == ']' && !first {
            break;
        }
        first = false;
        let mut lookahead = chars.clone();
        if lookahead.next() == Some('-') {
            if let Some(hi) = lookahead.next().filter(|&h| h != ']') {
                if hi < c {
                    return Err(GlobError::new(
                        pattern,
                        format!("class range {c}-{hi} is reversed"),
                    ));
                }
                chars.next();
                chars.next();
                ranges.push((c, hi));
                continue;
            }
        }
        ranges.push((c, c));
    }
    Ok(Token::Class {
        negated,
        ranges: ranges.into_boxed_slice(),
    })
}

/// Several globs; a path matches the set when it matches any of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobSet {
    globs: Vec<Glob>,
}

impl GlobSet {
    /// Compiles every pattern; the first invalid one is the error.
    pub fn new(patterns: &[String]) -> Result<GlobSet, GlobError> {
        let globs = patterns
            .iter()
            .map(|p| Glob::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GlobSet { globs })
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    pub fn globs(&self) -> &[Glob] {
        &self.globs
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.globs.iter().any(|g| g.matches(path))
    }

    /// See [`Glob::could_match_below`].
    pub fn could_match_below(&self, dir: &str) -> bool {
        self.globs.iter().any(|g| g.could_match_below(dir))
    }

    /// See [`Glob::matches_everything_below`].
    pub fn matches_everything_below(&self, dir: &str) -> bool {
        self.globs.iter().any(|g| g.matches_everything_below(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn matches_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool)] = &[
            // root and everything
            ("**", "/", true),
            ("**", "/a", true),
            ("**", "/a/b/c", true),
            ("/**", "/", true),
            ("/**", "/a/b", true),
            ("/", "/", true),
            ("/", "/a", false),
            ("//", "/", true),
            // exact
            ("/a/b", "/a/b", true),
            ("a/b", "/a/b", true),
            ("/a/b/", "/a/b", true),
            ("/a//b", "/a/b", true),
            ("/a/b", "/a/b/c", false),
            ("/a/b", "/a", false),
            ("/a/b", "/a/bc", false),
            ("/a", "/", false),
            // star within a segment
            ("/*", "/a", true),
            ("/*", "/", false),
            ("/*", "/a/b", false),
            ("/*.slice", "/user.slice", true),
            ("/*.slice", "/user.scope", false),
            ("/*.slice", "/.slice", true),
            ("/a*b*c", "/abc", true),
            ("/a*b*c", "/axxbyyc", true),
            ("/a*b*c", "/axxbyyca", false),
            ("/a*b*c", "/acb", false),
            ("/*/*", "/a/b", true),
            ("/*/*", "/a", false),
            ("*", "/x", true),
            // question mark and unicode
            ("/a?c", "/abc", true),
            ("/a?c", "/ac", false),
            ("/a?c", "/a/c", false),
            ("/a?c", "/aéc", true),
            ("/é*", "/éa", true),
            // classes
            ("/[ab]x", "/ax", true),
            ("/[ab]x", "/cx", false),
            ("/[a-c]", "/b", true),
            ("/[!a-c]", "/b", false),
            ("/[^a-c]", "/d", true),
            ("/[*]", "/*", true),
            ("/[*]", "/a", false),
            ("/[]]", "/]", true),
            ("/[a-]", "/-", true),
            // backslash is literal (systemd escapes)
            ("/system.slice/system-systemd\\x2dfsck.slice", "/system.slice/system-systemd\\x2dfsck.slice", true),
            // double star
            ("/kubepods.slice/**", "/kubepods.slice", true),
            ("/kubepods.slice/**", "/kubepods.slice/a", true),
            ("/kubepods.slice/**", "/kubepods.slice/a/b/c", true),
            ("/kubepods.slice/**", "/kubepods", false),
            ("/kubepods.slice/**", "/kubepods.slicex", false),
            ("/kubepods.slice/**", "/", false),
            ("**/*.scope", "/a.scope", true),
            ("**/*.scope", "/x/y/a.scope", true),
            ("**/*.scope", "/x/y/a.slice", false),
            ("/a/**/b", "/a/b", true),
            ("/a/**/b", "/a/x/b", true),
            ("/a/**/b", "/a/x/y/b", true),
            ("/a/**/b", "/a/x/y/b/c", false),
            ("/a/**/b/**", "/a/x/b/c", true),
            ("/a/**/b/c", "/a/b/x/b/c", true),
            ("/a/**/b/c", "/a/b/c/b/d", false),
            ("/**/**/x", "/x", true),
            ("/**/a/**/a", "/a/a/a/a/b", false),
            ("/**/a/**/a", "/a/b/a", true),
            ("/kubepods.slice/**/*.scope", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope", true),
            // lenient about the path
            ("/a", "a", true),
            ("/a", "/a/", true),
            ("/", "", true),
        ];
        for &(pat, path, want) in cases {
            assert_eq!(g(pat).matches(path), want, "pattern {pat:?} path {path:?}");
        }
    }

    #[test]
    fn invalid_patterns_are_rejected_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty pattern"),
            ("/a**", "whole path segment"),
            ("/**b/c", "whole path segment"),
            ("/a/../b", "not allowed"),
            ("./a", "not allowed"),
            ("/a[bc", "unclosed"),
            ("/[", "unclosed"),
            ("/[!", "unclosed"),
            ("/[z-a]", "reversed"),
        ];
        for &(pat, frag) in cases {
            let err = Glob::new(pat).unwrap_err();
            assert_eq!(err.pattern, pat);
            assert!(
                err.to_string().contains(frag),
                "pattern {pat:?}: {err} lacks {frag:?}"
            );
        }
    }

    #[test]
    fn could_match_below_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool)] = &[
            ("**", "/", true),
            ("**", "/a/b", true),
            ("/", "/", false),
            ("/a", "/", true),
            ("/a", "/a", false),
            ("/a", "/b", false),
            ("/a/b", "/a", true),
            ("/a/b", "/c", false),
            ("/kubepods.slice/**", "/", true),
            ("/kubepods.slice/**", "/kubepods.slice", true),
            ("/kubepods.slice/**", "/kubepods.slice/x/y", true),
            ("/kubepods.slice/**", "/system.slice", false),
            ("/*/x", "/any", true),
            ("/*/x", "/any/x", false),
            ("**/*.scope", "/a/b", true),
            ("/a/**/b", "/a/q/r", true),
        ];
        for &(pat, dir, want) in cases {
            assert_eq!(
                g(pat).could_match_below(dir),
                want,
                "pattern {pat:?} dir {dir:?}"
            );
        }
    }

    #[test]
    fn matches_everything_below_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool)] = &[
            ("**", "/", true),
            ("/system.slice/**", "/system.slice", true),
            ("/system.slice/**", "/system.slice/a", true),
            ("/system.slice/**", "/", false),
            ("/system.slice/*", "/system.slice", false),
            ("/*/**", "/a", true),
            ("/a", "/", false),
        ];
        for &(pat, dir, want) in cases {
            assert_eq!(
                g(pat).matches_everything_below(dir),
                want,
                "pattern {pat:?} dir {dir:?}"
            );
        }
    }

    #[test]
    fn below_is_consistent_with_matching_children() {
        // Whatever matches a child of dir must be announced by could_match_below.
        let pats = [
            "**", "/", "/a", "/a/*", "/a/**", "**/b", "/*/b/**", "/a/**/c", "/[ab]/?",
        ];
        let paths = [
            "/", "/a", "/b", "/a/b", "/a/c", "/b/b", "/a/b/c", "/a/x/c", "/b/b/b",
        ];
        for pat in pats {
            let glob = g(pat);
            for dir in paths {
                for child in paths {
                    let under = if dir == "/" {
                        child != "/"
                    } else {
                        child.starts_with(dir) && child[dir.len()..].starts_with('/')
                    };
                    if under && glob.matches(child) {
                        assert!(glob.could_match_below(dir), "{pat} {dir} {child}");
                    }
                    if under && glob.matches_everything_below(dir) {
                        assert!(glob.matches(child), "{pat} {dir} {child}");
                    }
                }
            }
        }
    }

    #[test]
    fn globset_matches_any_and_reports_first_error() {
        let set = GlobSet::new(&["/a/**".to_string(), "/b".to_string()]).unwrap();
        assert!(set.is_match("/a/x"));
        assert!(set.is_match("/b"));
        assert!(!set.is_match("/c"));
        assert!(set.could_match_below("/a"));
        assert!(!set.could_match_below("/b"));
        assert!(set.matches_everything_below("/a"));
        assert_eq!(set.globs().len(), 2);
        let empty = GlobSet::new(&[]).unwrap();
        assert!(empty.is_empty());
        assert!(!empty.is_match("/"));
        let err = GlobSet::new(&["/ok".to_string(), "/x**".to_string()]).unwrap_err();
        assert_eq!(err.pattern, "/x**");
    }

    #[test]
    fn glob_keeps_its_pattern_text() {
        let glob = g("kubepods.slice/**/");
        assert_eq!(glob.as_str(), "kubepods.slice/**/");
        assert_eq!(glob.to_string(), "kubepods.slice/**/");
        assert_eq!(format!("{glob:?}"), "Glob(\"kubepods.slice/**/\")");
        assert_eq!(g("/a/**/**/b"), g("/a/**/**/b"));
        assert!(g("/a/**/**/b").matches("/a/b"));
    }

    /// Obviously-correct exponential matcher to check the fast one against.
    fn naive(pat: &[&str], path: &[&str]) -> bool {
        match pat.split_first() {
            None => path.is_empty(),
            Some((&"**", rest)) => (0..=path.len()).any(|k| naive(rest, &path[k..])),
            Some((seg, rest)) => match path.split_first() {
                Some((p, prest)) => naive_seg(seg.as_bytes(), p.as_bytes()) && naive(rest, prest),
                None => false,
            },
        }
    }

    fn naive_seg(pat: &[u8], s: &[u8]) -> bool {
        match pat.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|k| naive_seg(rest, &s[k..])),
            Some((b'?', rest)) => !s.is_empty() && naive_seg(rest, &s[1..]),
            Some((b'[', _)) => {
                // Only "[ab]" is generated.
                !s.is_empty() && (s[0] == b'a' || s[0] == b'b') && naive_seg(&pat[4..], &s[1..])
            }
            Some((c, rest)) => s.first() == Some(c) && naive_seg(rest, &s[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_matcher_agrees_with_naive(
            pat in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "*", "?", "**", "a*", "*b", "[ab]", "a?b", "*a*"]),
                0..5,
            ),
            path in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "ab", "ba", "aab", "bab"]),
                0..6,
            ),
        ) {
            let pattern = format!("/{}", pat.join("/"));
            let joined = format!("/{}", path.join("/"));
            let glob = Glob::new(&pattern).unwrap();
            proptest::prop_assert_eq!(glob.matches(&joined), naive(&pat, &path), "{} {}", pattern, joined);
            // could_match_below must never miss a matching descendant.
            for cut in 0..path.len() {
                let dir = format!("/{}", path[..cut].join("/"));
                if glob.matches(&joined) {
                    proptest::prop_assert!(glob.could_match_below(&dir), "{} {} {}", pattern, dir, joined);
                }
                if glob.matches_everything_below(&dir) {
                    proptest::prop_assert!(glob.matches(&joined), "{} {} {}", pattern, dir, joined);
                }
            }
        }
    }
}
