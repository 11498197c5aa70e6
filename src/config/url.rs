//! Receiver and kubelet URLs, checked at load.

/// The parts of an `http(s)://host[:port][/path]` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpUrl<'a> {
    /// `http` or `https`, lowercase.
    pub scheme: &'static str,
    /// Host name, IPv4 address, or IPv6 address without brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Path and query as written (`""` when absent).
    pub path: &'a str,
}

/// Checks a receiver or kubelet URL. Deliberately small (no `url` crate):
/// scheme, host, optional port, optional path and query. Credentials and
/// fragments are rejected because nothing would send them.
pub fn parse_http_url(s: &str) -> Result<HttpUrl<'_>, String> {
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| "expected a URL such as http://host:port/path".to_string())?;
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        return Err(format!("scheme {scheme:?} is not http or https"));
    };
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("URL contains whitespace".to_string());
    }
    if s.contains('#') {
        return Err("URL fragments (#...) are not allowed".to_string());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".to_string());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
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
        (addr, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
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
    Ok(HttpUrl {
        scheme,
        host,
        port,
        path,
    })
}
