//! serde_norway's errors turned into one located line, and the machinery
//! that finds where a key path is written in the text (serde_norway keeps
//! no positions in `Value`). Shared by `--config.file` and
//! `--web.config.file`, so both report errors alike.
//!
//! The rewriting leans on serde_norway's wording (for example "invalid
//! type: map,"): the tests in `config::tests::syntax` pin that wording, so a
//! change in the dependency shows up as a failing test, not a worse message.

use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PathSegment {
    Key(String),
    Index(usize),
}

/// A key path into the config, built while validating.
#[derive(Debug, Clone, Default)]
pub(super) struct FieldPath(pub(super) Vec<PathSegment>);

impl FieldPath {
    pub(super) fn key(&self, k: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(k.to_string()));
        p
    }

    pub(super) fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(i));
        p
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Key(k) if i == 0 => f.write_str(k)?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

// === YAML error messages ===

/// Turns a serde_norway error into one located line (also used for
/// `--web.config.file`, so both files report errors alike). serde_norway stamps
/// schema errors (wrong type, unknown key, enum value, our durations) with
/// the position and key path of the node, so only wording is fixed here.
pub(crate) fn yaml_error(file: &Path, text: &str, e: &serde_yaml::Error) -> ConfigError {
    let raw = e.to_string();
    let (line, column) = match e.location() {
        Some(l) => duplicate_key_location(text, &raw, l.line(), l.column())
            .unwrap_or((l.line(), l.column())),
        None => fallback_location(text, &raw),
    };
    ConfigError::Syntax {
        file: file.to_path_buf(),
        line,
        column,
        message: tidy_message(&raw),
    }
}

/// Errors serde_norway reports without a position: a second document is
/// pointed at its `---`, anything else at the start of the file.
fn fallback_location(text: &str, message: &str) -> (usize, usize) {
    if message.contains("more than one document") {
        let starts: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("---"))
            .map(|(i, _)| i + 1)
            .collect();
        let content_before_first = text
            .lines()
            .take(starts.first().map_or(0, |s| s - 1))
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let idx = if content_before_first { 0 } else { 1 };
        if let Some(line) = starts.get(idx) {
            return (*line, 1);
        }
    }
    (1, 1)
}

/// serde_norway reports a duplicate key at the start of its mapping; the
/// second occurrence of the key (same indentation, further down) is where
/// the user has to look. Block mappings only; `None` leaves the mapping's
/// position.
fn duplicate_key_location(
    text: &str,
    message: &str,
    line: usize,
    column: usize,
) -> Option<(usize, usize)> {
    let key = ["duplicate entry with key \"", "duplicate field `"]
        .iter()
        .find_map(|m| message.split_once(m))
        .and_then(|(_, rest)| rest.split(['"', '`']).next())?;
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (i, l) in text.lines().enumerate().skip(line.checked_sub(1)?) {
        let content = l.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        // Only the mapping's first line may start before its column (the
        // `- ` of a sequence item); anything else that does ends it.
        let Some((prefix, rest)) = l.split_at_checked(indent) else {
            break;
        };
        let item_start = i + 1 == line && prefix.trim() == "-";
        if !(prefix.chars().all(|c| c == ' ') || item_start) {
            break;
        }
        let is_key = rest
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with(':'));
        if is_key {
            seen += 1;
            if seen == 2 {
                return Some((i + 1, column));
            }
        }
    }
    None
}

fn tidy_message(raw: &str) -> String {
    let mut m = strip_positions(raw);
    // Numbers read better unquoted: `integer 1`, not `integer "1"`.
    for kind in ["integer `", "floating point `"] {
        if let Some(i) = m.find(kind) {
            let open = i + kind.len() - 1;
            if let Some(len) = m[open + 1..].find('`') {
                m.replace_range(open + 1 + len..open + 2 + len, "");
                m.replace_range(open..open + 1, "");
            }
        }
    }
    for (from, to) in [
        ("invalid type: map,", "invalid type: mapping,"),
        (" as u128", ""),
        (" as i128", ""),
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected a list"),
        ("unit value", "null"),
    ] {
        m = m.replace(from, to);
    }
    m = m
        .replace("expected a mapping", "\u{1}")
        .replace("expected a map", "\u{1}")
        .replace('\u{1}', "expected a mapping");
    while let Some(i) = m.find("expected struct ") {
        let rest = &m[i + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        m = format!("{}expected a mapping{}", &m[..i], &rest[end..]);
    }
    let hint = did_you_mean(&m);
    let mut m = match m.find("expected one of ") {
        Some(i) => format!("{}{}", m[..i].replace('`', "\""), m[i..].replace('`', "")),
        None => m.replace('`', "\""),
    };
    m.push_str(&hint);
    m
}

/// Removes serde_norway's " at line N column M" / " at position N": the
/// location is already in front of the message.
fn strip_positions(msg: &str) -> String {
    let mut out = msg.to_string();
    for marker in [" at line ", " at position "] {
        while let Some(i) = out.find(marker) {
            let after = &out[i + marker.len()..];
            let mut end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if marker == " at line " {
                if let Some(col) = after[end..].strip_prefix(" column ") {
                    let n = col.find(|c: char| !c.is_ascii_digit()).unwrap_or(col.len());
                    end += " column ".len() + n;
                }
            }
            if end == 0 {
                break;
            }
            out.replace_range(i..i + marker.len() + end, "");
        }
    }
    out
}

/// For "unknown field/variant `x`, expected one of `a`, `b`": the closest
/// expected name, as ` (did you mean "a"?)`.
fn did_you_mean(msg: &str) -> String {
    let Some(i) = msg
        .find("unknown field `")
        .or_else(|| msg.find("unknown variant `"))
    else {
        return String::new();
    };
    let ticked: Vec<&str> = msg[i..].split('`').skip(1).step_by(2).collect();
    let Some((given, expected)) = ticked.split_first() else {
        return String::new();
    };
    suggest(given, expected.iter().copied())
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

/// The candidate within edit distance 2 (or a third of the length) of
/// `given`, if any.
pub(super) fn suggest<'a>(
    given: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(2);
    candidates
        .map(|c| (strsim::levenshtein(given, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

// === Locating a key path in the text ===
//
// serde_norway keeps no positions in `Value`, but it stamps any error raised
// while deserializing a node with that node's line and column. So to find
// where `psi.rules[1].window` is written, deserialize the text with a seed
// that walks down that path and raises a marker error at the target node.

const LOCATE_MARKER: &str = "cgpe-locate-marker";

pub(super) fn locate(text: &str, path: &[PathSegment]) -> Option<(usize, usize)> {
    use serde::de::DeserializeSeed;
    let de = serde_yaml::Deserializer::from_str(text);
    match Locate(path).deserialize(de) {
        Err(e) if e.to_string().contains(LOCATE_MARKER) => {
            e.location().map(|l| (l.line(), l.column()))
        }
        _ => None,
    }
}

struct Locate<'a>(&'a [PathSegment]);

impl<'de> serde::de::DeserializeSeed<'de> for Locate<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Locate<'_> {
    fn leaf<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(LOCATE_MARKER))
        } else {
            Ok(())
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Locate<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::IgnoredAny;
        let want = match self.0.split_first() {
            None => return Err(serde::de::Error::custom(LOCATE_MARKER)),
            Some((PathSegment::Index(n), rest)) => Some((*n, rest)),
            Some(_) => None,
        };
        let mut i = 0;
        loop {
            let more = match want {
                Some((n, rest)) if n == i => seq.next_element_seed(Locate(rest))?.is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::IgnoredAny;
        let want = match self.0.split_first() {
            None => return Err(serde::de::Error::custom(LOCATE_MARKER)),
            Some((PathSegment::Key(k), rest)) => Some((k.as_str(), rest)),
            Some(_) => None,
        };
        while let Some(key) = map.next_key::<KeyText>()? {
            match want {
                Some((k, rest)) if key.0.as_deref() == Some(k) => {
                    map.next_value_seed(Locate(rest))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A mapping key as text when it is a scalar.
struct KeyText(Option<String>);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<KeyText, E> {
                Ok(KeyText(Some(s.to_string())))
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<KeyText, E> {
                Ok(KeyText(Some(b.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<KeyText, E> {
                Ok(KeyText(Some(n.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<KeyText, E> {
                Ok(KeyText(Some(n.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<KeyText, E> {
                Ok(KeyText(Some(n.to_string())))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<KeyText, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(KeyText(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<KeyText, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(KeyText(None))
            }
        }
        d.deserialize_any(V)
    }
}
