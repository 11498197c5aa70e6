//! HTTP basic auth against bcrypt hashes (`basic_auth_users`), with the
//! protections exporter-toolkit has and two it lacks:
//!
//! - An unknown user is checked against a decoy hash of the same cost as
//!   the real ones, so a 401 takes as long for a name that does not exist
//!   as for a wrong password: user names cannot be found by timing.
//! - Verdicts are cached per (user, password) for the loaded config, as
//!   there. A scraper's credentials pay bcrypt once, and a request whose
//!   credentials are already verified never waits for a password check.
//! - bcrypt (tens of ms at cost 10, by design) runs on one dedicated
//!   thread, one check at a time (exporter-toolkit serialises it with a
//!   mutex). A flood of wrong passwords therefore uses at most one core,
//!   never an async worker and never the blocking pool that collects and
//!   encodes scrapes. At most [`QUEUE`] checks wait; beyond that a request
//!   is answered 503 at once instead of queueing without bound.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

/// Password checks that may wait for the bcrypt thread.
pub const QUEUE: usize = 64;

/// The outcome of a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Too many password checks are waiting; try again later.
    Busy,
}

/// The users of one loaded web config and their verdict cache.
pub struct Auth {
    users: BTreeMap<String, String>,
    /// A well-formed hash no password matches, with the highest cost among
    /// the users', checked for unknown users.
    decoy: String,
    cache: Mutex<Cache>,
    verifications: AtomicU64,
}

#[derive(Default)]
struct Cache {
    /// Passed bcrypt. Only a correct password gets in, so an attacker
    /// cannot fill or flush it.
    ok: HashMap<(String, String), ()>,
    /// Failed bcrypt: a scraper stuck on a wrong password costs one
    /// check, not one per request. Cleared when full.
    bad: HashMap<(String, String), ()>,
}

impl Cache {
    const MAX_OK: usize = 64;
    const MAX_BAD: usize = 256;
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hashes.
        f.debug_struct("Auth")
            .field("users", &self.users.len())
            .finish()
    }
}

/// Why a `basic_auth_users` value is not a bcrypt hash. The message names
/// neither the user (the caller does) nor the value (it is a secret).
pub fn check_hash(hash: &str) -> Result<u32, &'static str> {
    let b = hash.as_bytes();
    if !(b.starts_with(b"$2a$")
        || b.starts_with(b"$2b$")
        || b.starts_with(b"$2x$")
        || b.starts_with(b"$2y$"))
    {
        return Err("not a bcrypt hash (it must start with $2a$, $2b$ or $2y$; generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)");
    }
    if b.len() < 60 {
        return Err("bcrypt hash too short: it is cut off");
    }
    if b.len() > 60 {
        return Err("bcrypt hash too long: a bcrypt hash is 60 characters");
    }
    let cost = std::str::from_utf8(&b[4..6])
        .ok()
        .filter(|_| b[6] == b'$')
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or("bcrypt hash without a two-digit cost")?;
    if !(4..=31).contains(&cost) {
        return Err("bcrypt cost out of range (4 to 31)");
    }
    if !b[7..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/'))
    {
        return Err("bcrypt hash with characters outside bcrypt's base64");
    }
    Ok(cost)
}

impl Auth {
    /// `None` when there are no users (no auth). Every hash must have
    /// passed [`check_hash`].
    pub fn new(users: BTreeMap<String, String>) -> Option<Auth> {
        let cost = users.values().filter_map(|h| check_hash(h).ok()).max()?;
        // Salt and digest of zeros in bcrypt's base64 ('.' is 0): valid,
        // so verify runs the full cost, and no password produces it.
        let decoy = format!("$2y${cost:02}${}", ".".repeat(53));
        Some(Auth {
            users,
            decoy,
            cache: Mutex::default(),
            verifications: AtomicU64::new(0),
        })
    }

    /// bcrypt checks run so far, for tests and the log.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    fn cached(&self, key: &(String, String)) -> Option<bool> {
        let c = self.cache.lock();
        if c.ok.contains_key(key) {
            Some(true)
        } else if c.bad.contains_key(key) {
            Some(false)
        } else {
            None
        }
    }

    fn remember(&self, key: (String, String), ok: bool) {
        let mut c = self.cache.lock();
        let (map, max) = if ok {
            (&mut c.ok, Cache::MAX_OK)
        } else {
            (&mut c.bad, Cache::MAX_BAD)
        };
        if map.len() >= max {
            map.clear();
        }
        map.insert(key, ());
    }

    /// The verdict on an `Authorization` header value. Cheap unless the
    /// credentials are new: then it waits (asynchronously) for the bcrypt
    /// thread.
    pub async fn check(&self, header: Option<&str>) -> Verdict {
        let Some(key) = header.and_then(parse_basic) else {
            return Verdict::Deny;
        };
        if let Some(ok) = self.cached(&key) {
            return if ok { Verdict::Allow } else { Verdict::Deny };
        }
        let (hash, known) = match self.users.get(&key.0) {
            Some(h) => (h.clone(), true),
            None => (self.decoy.clone(), false),
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let good = match bcrypt_check(key.1.clone(), hash).await {
            Some(good) => good,
            None => return Verdict::Busy,
        };
        let ok = good && known;
        self.remember(key, ok);
        if ok {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }
}

/// `Basic <base64(user:pass)>`, the scheme matched case-insensitively
/// (RFC 7235 section 2.1).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(rest.trim())?;
    let pair = String::from_utf8(raw).ok()?;
    let (user, pass) = pair.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// A password check for the bcrypt thread; the answer goes back on
/// `reply`.
struct Job {
    password: String,
    hash: String,
    reply: oneshot::Sender<bool>,
}

/// The queue to the bcrypt thread, started on first use. `None` when the
/// thread could not be started (reported once).
fn bcrypt_queue() -> Option<&'static mpsc::Sender<Job>> {
    static QUEUE_TX: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE_TX
        .get_or_init(|| {
            let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
            let started = std::thread::Builder::new()
                .name("cgpe-bcrypt".into())
                .spawn(move || {
                    while let Some(job) = rx.blocking_recv() {
                        // The client gave up (its connection closed): the
                        // check would be wasted work.
                        if job.reply.is_closed() {
                            continue;
                        }
                        #[allow(
                            clippy::disallowed_methods,
                            reason = "the one place bcrypt runs: its own thread"
                        )]
                        let good = bcrypt::verify(&job.password, &job.hash).unwrap_or(false);
                        let _ = job.reply.send(good);
                    }
                });
            match started {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the bcrypt thread: basic auth refuses everyone");
                    None
                }
            }
        })
        .as_ref()
}

/// Runs bcrypt on the bcrypt thread. `None` when the queue is full (or
/// the thread is gone): the caller answers 503 rather than wait.
async fn bcrypt_check(password: String, hash: String) -> Option<bool> {
    let queue = bcrypt_queue()?;
    let (reply, answer) = oneshot::channel();
    queue
        .try_send(Job {
            password,
            hash,
            reply,
        })
        .ok()?;
    answer.await.ok()
}

/// Standard base64 with padding, as HTTP Basic uses. `None` on bad input.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 != 0 || s.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() * 3 / 4);
    for chunk in b.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = chunk.len();
        out.push((acc >> 16) as u8);
        if n > 2 {
            out.push((acc >> 8) as u8);
        }
        if n > 3 {
            out.push(acc as u8);
        }
        if n == 1 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn auth(cost: u32) -> Auth {
        let hash = bcrypt::hash("s3cret", cost).expect("bcrypt");
        Auth::new([("alice".to_string(), hash)].into_iter().collect()).expect("users")
    }

    #[tokio::test]
    async fn verdicts_are_cached_and_unknown_users_pay_a_decoy_check() {
        let a = auth(4);
        let basic = |cred: &str| format!("Basic {}", b64(cred));
        for _ in 0..3 {
            assert_eq!(a.check(Some(&basic("alice:s3cret"))).await, Verdict::Allow);
        }
        assert_eq!(a.verifications(), 1, "good credentials pay bcrypt once");
        assert_eq!(a.check(Some(&basic("alice:wrong"))).await, Verdict::Deny);
        assert_eq!(a.check(Some(&basic("alice:wrong"))).await, Verdict::Deny);
        assert_eq!(a.verifications(), 2, "a repeated wrong password once too");
        assert_eq!(a.check(Some(&basic("alice:other"))).await, Verdict::Deny);
        assert_eq!(a.verifications(), 3, "each new guess pays in full");
        // An unknown user runs bcrypt on the decoy, like a known one.
        assert_eq!(a.check(Some(&basic("mallory:s3cret"))).await, Verdict::Deny);
        assert_eq!(a.verifications(), 4);
        // No header, or not Basic: refused without a check.
        assert_eq!(a.check(None).await, Verdict::Deny);
        assert_eq!(a.check(Some("Bearer x")).await, Verdict::Deny);
        assert_eq!(a.verifications(), 4);
    }

    /// Past [`QUEUE`] waiting checks a request is answered Busy at once
    /// instead of queueing without bound; the queued ones still get their
    /// verdict.
    #[tokio::test]
    async fn a_full_queue_answers_busy_instead_of_waiting() {
        let a = std::sync::Arc::new(auth(5));
        let good = format!("Basic {}", b64("alice:s3cret"));
        assert_eq!(a.check(Some(&good)).await, Verdict::Allow);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..QUEUE * 2 {
            let a = a.clone();
            let h = format!("Basic {}", b64(&format!("alice:guess-{i}")));
            set.spawn(async move { a.check(Some(&h)).await });
        }
        // Every guess has been queued or refused (one scheduler round)...
        tokio::task::yield_now().await;
        // ...and a verified scraper is not behind them: its cached verdict
        // needs no check (with the queue full, a check would be Busy).
        let before = a.verifications();
        assert_eq!(a.check(Some(&good)).await, Verdict::Allow);
        assert_eq!(a.verifications(), before);
        let (mut busy, mut denied) = (0, 0);
        while let Some(v) = set.join_next().await {
            match v.expect("task") {
                Verdict::Busy => busy += 1,
                Verdict::Deny => denied += 1,
                Verdict::Allow => panic!("a guess got in"),
            }
        }
        assert!(busy >= QUEUE - 1, "busy {busy}, denied {denied}");
        assert!(denied >= 1, "busy {busy}, denied {denied}");
    }

    #[tokio::test]
    async fn the_basic_scheme_is_case_insensitive() {
        let a = auth(4);
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            let h = format!("{scheme} {}", b64("alice:s3cret"));
            assert_eq!(a.check(Some(&h)).await, Verdict::Allow, "{scheme}");
        }
    }

    #[test]
    fn the_decoy_is_well_formed_at_the_users_cost_and_matches_nothing() {
        let low = bcrypt::hash("x", 4).expect("bcrypt");
        let high = bcrypt::hash("y", 6).expect("bcrypt");
        let a = Auth::new(
            [("a".to_string(), low), ("b".to_string(), high)]
                .into_iter()
                .collect(),
        )
        .expect("users");
        assert_eq!(check_hash(&a.decoy), Ok(6), "the highest cost");
        for p in ["", "x", "y", "fakepassword"] {
            assert_eq!(bcrypt::verify(p, &a.decoy).ok(), Some(false), "{p}");
        }
        assert!(Auth::new(BTreeMap::new()).is_none());
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_reason_that_quotes_nothing() {
        let good = bcrypt::hash("x", 4).expect("bcrypt");
        assert_eq!(check_hash(&good), Ok(4));
        for bad in [
            "plaintext",
            "$2y$10$tooshort",
            &good[..59],
            &format!("{good}x"),
            &format!("$2y$99${}", &good[7..]),
            &format!("$2y$1x${}", &good[7..]),
            &format!("{}!", &good[..59]),
        ] {
            let e = check_hash(bad).expect_err(bad);
            assert!(!e.contains(bad), "{e}");
        }
    }

    #[test]
    fn base64_round_trips_basic_credentials() {
        assert_eq!(
            base64_decode("dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("!!!!"), None);
        assert_eq!(base64_decode("abc"), None);
    }
}
