//! Just enough DER to read two facts from a client certificate: its
//! subject alternative names (for `client_allowed_sans`) and whether it
//! says `CA:TRUE` (to explain a refused handshake). rustls verifies the
//! chain; this only reads fields, and bad input gives `None`, never a
//! panic (the certificate comes from the network).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a certificate says about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// DNS names, e-mail addresses, IP addresses and URIs, in the text
    /// forms Go's `crypto/x509` gives them (exporter-toolkit compares
    /// those strings exactly).
    pub sans: Vec<String>,
    /// `basicConstraints` with `cA` true.
    pub is_ca: bool,
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT Extensions` in a TBSCertificate.
const EXTENSIONS: u8 = 0xa3;
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

/// One DER element: tag, contents, and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        // Multi-byte tags do not occur in the fields read here.
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((tag, value, rest))
}

/// The element if it has `tag`.
fn expect(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (t, value, rest) if t == tag => Some((value, rest)),
        _ => None,
    }
}

/// The facts of a DER certificate, or `None` when it does not parse.
pub fn facts(der: &[u8]) -> Option<Facts> {
    let (cert, _) = expect(SEQUENCE, der)?;
    let (mut tbs, _) = expect(SEQUENCE, cert)?;
    let mut facts = Facts::default();
    while !tbs.is_empty() {
        let (tag, value, rest) = tlv(tbs)?;
        tbs = rest;
        if tag != EXTENSIONS {
            continue;
        }
        let (mut exts, _) = expect(SEQUENCE, value)?;
        while !exts.is_empty() {
            let (ext, rest) = expect(SEQUENCE, exts)?;
            exts = rest;
            let (oid, ext) = expect(OID, ext)?;
            let (mut tag, mut value, rest) = tlv(ext)?;
            if tag == BOOLEAN {
                // `critical`, present only when true.
                (tag, value, _) = tlv(rest)?;
            }
            if tag != OCTET_STRING {
                return None;
            }
            match oid {
                OID_SUBJECT_ALT_NAME => facts.sans = general_names(value)?,
                OID_BASIC_CONSTRAINTS => facts.is_ca = ca_flag(value)?,
                _ => {}
            }
        }
    }
    Some(facts)
}

/// `SubjectAltName ::= GeneralNames`: the four kinds Go collects
/// (`DNSNames`, `EmailAddresses`, `IPAddresses`, `URIs`); others are
/// skipped, as there.
fn general_names(der: &[u8]) -> Option<Vec<String>> {
    let (mut names, _) = expect(SEQUENCE, der)?;
    let mut out = Vec::new();
    while !names.is_empty() {
        let (tag, value, rest) = tlv(names)?;
        names = rest;
        match tag {
            // rfc822Name, dNSName, uniformResourceIdentifier: IA5String.
            0x81 | 0x82 | 0x86 => out.push(String::from_utf8_lossy(value).into_owned()),
            // iPAddress: 4 or 16 bytes, printed as Go's net.IP does
            // (an IPv4-mapped IPv6 address as IPv4).
            0x87 => {
                let ip = match value.len() {
                    4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(value).ok()?)),
                    16 => {
                        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(value).ok()?)).to_canonical()
                    }
                    _ => continue,
                };
                out.push(ip.to_string());
            }
            _ => {}
        }
    }
    Some(out)
}

/// `BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, ... }`.
fn ca_flag(der: &[u8]) -> Option<bool> {
    let (inner, _) = expect(SEQUENCE, der)?;
    Some(match tlv(inner) {
        Some((BOOLEAN, v, _)) => v.first().is_some_and(|b| *b != 0),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of `tag` around `content`.
    fn el(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    fn cert_with(extensions: &[Vec<u8>]) -> Vec<u8> {
        let exts = el(EXTENSIONS, &el(SEQUENCE, &extensions.concat()));
        // version, serial, then the extensions; the fields in between are
        // skipped the same way whatever they hold.
        let tbs = el(
            SEQUENCE,
            &[el(0xa0, &el(0x02, &[2])), el(0x02, &[1]), exts].concat(),
        );
        el(SEQUENCE, &[tbs, el(SEQUENCE, &[]), el(0x03, &[0])].concat())
    }

    fn ext(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
        let mut body = el(OID, oid);
        if critical {
            body.extend(el(BOOLEAN, &[0xff]));
        }
        body.extend(el(OCTET_STRING, value));
        el(SEQUENCE, &body)
    }

    #[test]
    fn sans_of_every_kind_go_collects_and_the_ca_flag() {
        let names = el(
            SEQUENCE,
            &[
                el(0x82, b"scraper.example"),
                el(0x81, b"ops@example.com"),
                el(0x87, &[10, 0, 0, 7]),
                el(
                    0x87,
                    &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1],
                ),
                el(
                    0x87,
                    &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ),
                el(0x86, b"spiffe://cluster/ns/monitoring/sa/prometheus"),
                // A directoryName: skipped, as in Go.
                el(0xa4, &el(SEQUENCE, &[])),
            ]
            .concat(),
        );
        let der = cert_with(&[
            ext(
                OID_BASIC_CONSTRAINTS,
                true,
                &el(SEQUENCE, &el(BOOLEAN, &[0xff])),
            ),
            ext(OID_SUBJECT_ALT_NAME, false, &names),
        ]);
        let f = facts(&der).expect("parses");
        assert!(f.is_ca);
        assert_eq!(
            f.sans,
            [
                "scraper.example",
                "ops@example.com",
                "10.0.0.7",
                "192.0.2.1",
                "2001:db8::1",
                "spiffe://cluster/ns/monitoring/sa/prometheus"
            ]
        );
        let leaf = cert_with(&[ext(OID_BASIC_CONSTRAINTS, true, &el(SEQUENCE, &[]))]);
        assert_eq!(facts(&leaf), Some(Facts::default()));
    }

    #[test]
    fn truncated_or_junk_input_is_none_not_a_panic() {
        let der = cert_with(&[ext(
            OID_SUBJECT_ALT_NAME,
            false,
            &el(SEQUENCE, &el(0x82, b"a")),
        )]);
        for n in 0..der.len() {
            let _ = facts(&der[..n]);
        }
        assert_eq!(facts(&[]), None);
        assert_eq!(facts(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(facts(&[0x1f, 0x01, 0x00]), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = facts(&bytes);
        }
    }
}
