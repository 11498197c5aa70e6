//! Receiver and kubelet URLs, parsed once when the config is loaded into
//! what the HTTP client needs, so nothing parses them again at run time.

use std::fmt;
use std::sync::Arc;

use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::Uri;

/// Longest URL accepted. `http` caps a URI at 65,534 bytes; staying a
/// little below leaves room for [`HttpUrl::join`]'s segment, so joining
/// cannot overflow.
const MAX_LEN: usize = 65_000;
/// Longest segment [`HttpUrl::join`] appends (keeps [`MAX_LEN`]'s margin).
const MAX_SEGMENT: usize = 64;

/// An `http(s)://host[:port][/path][?query]` URL, checked. It keeps the
/// text as written (receiver names, `--check-config` output, equality) and
/// the [`Uri`] hyper sends to, with the scheme lowercased and an empty path
/// made `/`.
#[derive(Clone)]
pub struct HttpUrl {
    text: Arc<str>,
    uri: Uri,
    https: bool,
    port: u16,
}

impl HttpUrl {
    /// Checks a receiver or kubelet URL. Deliberately small (no `url`
    /// crate): scheme, host, optional port, optional path and query.
    /// Credentials and fragments are rejected because nothing would send
    /// them. The error is the reason alone; callers add the text.
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| "expected a URL such as http://host:port/path".to_string())?;
        let https = if scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.eq_ignore_ascii_case("https") {
            true
        } else {
            return Err(format!("scheme {scheme:?} is not http or https"));
        };
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("URL contains whitespace".to_string());
        }
        if s.contains('#') {
            return Err("URL fragments (#...) are not allowed".to_string());
        }
        if s.len() > MAX_LEN {
            return Err(format!("URL longer than {MAX_LEN} bytes"));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".to_string());
        }
        let (host, port) = split_authority(authority)?;
        if host.is_empty() {
            return Err("missing host".to_string());
        }
        if !authority.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(format!("invalid host {host:?}"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Some(n),
                _ => return Err(format!("invalid port {p:?} (1-65535)")),
            },
        };
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        let authority = Authority::try_from(authority).map_err(|e| e.to_string())?;
        let path = PathAndQuery::try_from(path).map_err(|e| e.to_string())?;
        let uri = Uri::builder()
            .scheme(if https { Scheme::HTTPS } else { Scheme::HTTP })
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpUrl {
            text: s.into(),
            uri,
            https,
            port: port.unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What hyper sends the request to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Host name, IPv4 address, or IPv6 address in brackets.
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or_default()
    }

    /// The port written, else the scheme's (80, 443).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL with `/segment` added to its path (one `/` between them,
    /// however the path ends); a query stays at the end. Infallible: the
    /// parts were checked at parse, `segment` is a short literal of path
    /// characters, and [`MAX_LEN`] leaves room for it.
    pub fn join(&self, segment: &'static str) -> Uri {
        debug_assert!(
            segment.len() <= MAX_SEGMENT
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.')),
            "{segment:?}"
        );
        let path = self.uri.path().trim_end_matches('/');
        let joined = match self.uri.query() {
            Some(q) => format!("{path}/{segment}?{q}"),
            None => format!("{path}/{segment}"),
        };
        let mut parts = self.uri.clone().into_parts();
        parts.path_and_query = Some(
            PathAndQuery::try_from(joined).expect("a checked path plus a literal segment is valid"),
        );
        Uri::from_parts(parts).expect("scheme and authority are unchanged")
    }
}

/// `host[:port]` or `[v6][:port]`, not yet checked.
fn split_authority(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| "unclosed \"[\" in IPv6 host".to_string())?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("invalid IPv6 address {addr:?}"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| "expected \":port\" after \"]\"".to_string())?,
            ),
        };
        return Ok((addr, port));
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.text)
    }
}

/// Two URLs are the same setting when written the same.
impl PartialEq for HttpUrl {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for HttpUrl {}

impl PartialEq<&str> for HttpUrl {
    fn eq(&self, other: &&str) -> bool {
        &*self.text == *other
    }
}

impl serde::Serialize for HttpUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

// A visitor, as for durations: an error raised inside it is stamped by
// serde_norway with the scalar's own line, column and key path.
impl<'de> serde::Deserialize<'de> for HttpUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(UrlVisitor)
    }
}

struct UrlVisitor;

impl serde::de::Visitor<'_> for UrlVisitor {
    type Value = HttpUrl;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a URL such as http://host:port/path")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HttpUrl, E> {
        HttpUrl::parse(s).map_err(|why| E::custom(format!("{s:?}: {why}")))
    }
}

/// `Option<HttpUrl>` written as a string, where `""` means unset (as the
/// config has always read it).
pub mod optional {
    use super::HttpUrl;
    use serde::de::Visitor;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(u: &Option<HttpUrl>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.as_ref().map_or("", HttpUrl::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HttpUrl>, D::Error> {
        d.deserialize_str(OptionalVisitor)
    }

    struct OptionalVisitor;

    impl Visitor<'_> for OptionalVisitor {
        type Value = Option<HttpUrl>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a URL such as http://host:port/path, or \"\"")
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Option<HttpUrl>, E> {
            if s.is_empty() {
                return Ok(None);
            }
            super::UrlVisitor.visit_str(s).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_are_parsed_into_what_hyper_needs() {
        let u = HttpUrl::parse("http://alertmanager:9093").unwrap();
        assert_eq!(
            (
                u.is_https(),
                u.host(),
                u.port(),
                u.uri().to_string().as_str()
            ),
            (false, "alertmanager", 9093, "http://alertmanager:9093/")
        );
        let u = HttpUrl::parse("HTTPS://[::1]:8443/hook?t=1").unwrap();
        assert_eq!(
            (
                u.is_https(),
                u.host(),
                u.port(),
                u.uri().path_and_query().unwrap().as_str()
            ),
            (true, "[::1]", 8443, "/hook?t=1")
        );
        assert_eq!(
            u.uri().scheme(),
            Some(&Scheme::HTTPS),
            "lowercased for hyper"
        );
        assert_eq!(u.as_str(), "HTTPS://[::1]:8443/hook?t=1", "kept as written");
        let u = HttpUrl::parse("https://am.example.com/prefix/").unwrap();
        assert_eq!(
            (u.host(), u.port(), u.uri().path()),
            ("am.example.com", 443, "/prefix/")
        );
        assert_eq!(
            HttpUrl::parse("http://a?x=1").unwrap().uri().to_string(),
            "http://a/?x=1"
        );
    }

    #[test]
    fn bad_urls_say_why() {
        for (bad, why) in [
            ("alertmanager:9093", "expected a URL"),
            ("ftp://x", "not http or https"),
            ("http://", "missing host"),
            ("http://:80", "missing host"),
            ("http://a:0", "invalid port"),
            ("http://a:", "invalid port"),
            ("http://a:+80", "invalid port"),
            ("http://a b", "whitespace"),
            ("http://a/#x", "fragments"),
            ("http://u@a", "credentials"),
            ("http://[::1", "unclosed"),
            ("http://[zz]", "invalid IPv6"),
            ("http://[::1]x", "expected \":port\""),
            ("http://a%b", "invalid host"),
            ("http://a/<x>", "invalid uri character"),
        ] {
            let err = HttpUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!("http://a/{}", "x".repeat(MAX_LEN));
        assert!(HttpUrl::parse(&long).unwrap_err().contains("longer than"));
    }

    #[test]
    fn join_adds_one_segment_before_the_query() {
        let j = |s: &str, seg| HttpUrl::parse(s).unwrap().join(seg).to_string();
        assert_eq!(
            j("http://am:9093", "api/v2/alerts"),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            j("http://am:9093/", "api/v2/alerts"),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            j("https://h/am//", "api/v2/alerts"),
            "https://h/am/api/v2/alerts"
        );
        assert_eq!(
            j("http://10.0.0.1:10255/", "pods"),
            "http://10.0.0.1:10255/pods"
        );
        assert_eq!(j("http://h/x?a=b", "pods"), "http://h/x/pods?a=b");
        let longest = format!("http://a/{}", "x".repeat(MAX_LEN - 9));
        assert_eq!(
            HttpUrl::parse(&longest).unwrap().join("pods").path().len(),
            MAX_LEN - 3
        );
    }
}
