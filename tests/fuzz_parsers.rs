//! Fuzzing of the kernel-file parsers (the "Reliability" issue): every
//! parser gets arbitrary strings, lossy-decoded arbitrary bytes, and real or
//! realistic files with mutated numbers, NULs, truncations and CRLF; none
//! may panic and every `Ok` must satisfy the parser's invariants. Round-trip
//! properties check that formatting a random value the kernel's way and
//! parsing it back gives the same value.
//!
//! Each property runs 2000 cases by default so the suite stays fast; set
//! `PROPTEST_CASES` to run more (`PROPTEST_CASES=200000 cargo test --release
//! --test fixture fuzz_parsers::`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cgroup_psi_exporter::cgroupfs::parse::*;
use proptest::prelude::*;

/// 2000 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 2000;
    }
    c
}

/// Values at or above this are v1 "unlimited" (see `parse_limit`).
const V1_UNLIMITED_MIN: u64 = 0x7FFF_FFFF_FFFF_0000;

macro_rules! real {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/kernel-files/linux-6.18-hybrid/",
            $name
        ))
    };
}

/// Mutation seeds: the real files, then hand-written v2 samples after
/// docs.kernel.org for the files a hybrid host does not have.
const SEEDS: &[&str] = &[
    real!("unified.cpu.pressure"),
    real!("unified.io.pressure"),
    real!("unified.memory.pressure"),
    real!("unified.cgroup.pressure"),
    real!("unified.cpu.stat"),
    real!("unified.cpu.stat.local"),
    real!("unified.cgroup.stat"),
    real!("proc.pressure.cpu"),
    real!("proc.partitions"),
    real!("v1.memory.stat"),
    real!("v1.memory.numa_stat"),
    real!("v1.memory.oom_control"),
    real!("v1.memory.limit_in_bytes"),
    real!("v1.blkio.throttle.io_service_bytes"),
    real!("v1.cpu.stat"),
    real!("v1.cpu.cfs_quota_us"),
    real!("v1.cpuacct.stat"),
    real!("v1.cpuset.cpus"),
    // v2, written.
    "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 100\n\
     nr_throttled 7\nthrottled_usec 89000\nnr_bursts 0\nburst_usec 0\n",
    "max 100000\n",
    "50000 100000\n",
    "low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
    "populated 1\nfrozen 0\n",
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=3791044\n",
    "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n",
    "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n7:0 \n\
     8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n",
    "8:16 rbps=2097152 wbps=max riops=max wiops=120\n",
    "default 100\n8:0 200\n",
    "500\n",
    "8:0 Read 4096\n8:0 Write 0\n8:0 Sync 4096\n8:0 Async 0\n8:0 Discard 0\n\
     8:0 Total 4096\nTotal 4096\n",
    "8:0 1048576\n",
    "0-3,8,10-11\n",
    "anon N0=2670592 N1=0\nfile N0=1048576 N1=4096\n",
    "THAWED\n",
    "FROZEN\n",
    "major minor  #blocks  name\n\n   8        0   20971520 sda\n",
];

/// Runs every parser on `text` and checks what each promises when it
/// succeeds. A panic anywhere fails the property.
fn check_all(text: &str) {
    let _ = parse_u64(text);
    if let Ok(Limit::Value(v)) = parse_limit(text) {
        assert!(v < V1_UNLIMITED_MIN, "sentinel {v} not mapped to Max");
    }
    if let Ok(m) = parse_cpu_max(text) {
        assert!(m.period > 0);
    }
    let mut n = 0usize;
    if parse_flat_keyed(text, |k, _| {
        assert!(!k.is_empty() && !k.bytes().any(|b| b.is_ascii_whitespace()));
        n += 1;
    })
    .is_ok()
    {
        assert!(n > 0, "Ok with no line");
    }
    let _ = parse_cpu_stat(text);
    let _ = parse_cpu_stat_v1(text);
    let _ = parse_cpuacct_stat(text);
    let _ = parse_memory_events(text);
    let _ = parse_oom_control(text);
    let _ = parse_cgroup_events(text);
    if let Ok(p) = parse_psi(text) {
        assert!(p.some.is_some() || p.full.is_some());
        for l in p.some.iter().chain(p.full.iter()) {
            for a in [l.avg10, l.avg60, l.avg300] {
                assert!(a.is_finite() && a >= 0.0, "bad average {a}");
            }
        }
    }
    let _ = parse_io_stat(text);
    if let Ok(v) = parse_io_max(text) {
        for e in v {
            for l in [e.rbps, e.wbps, e.riops, e.wiops] {
                if let Limit::Value(v) = l {
                    assert!(v < V1_UNLIMITED_MIN);
                }
            }
        }
    }
    let _ = parse_io_weight(text);
    let _ = parse_blkio_throttle(text);
    let _ = parse_blkio_device_limits(text);
    if let Ok(n) = parse_cpuset_count(text) {
        assert!(n <= 1_000_000, "cpuset count {n} above the cap");
    }
    if let Ok(s) = parse_numa_stat(text) {
        assert!(!s.entries.is_empty());
        for (name, nodes) in &s.entries {
            assert!(!name.is_empty() && !name.starts_with("hierarchical_"));
            assert!(!nodes.is_empty());
        }
    }
    let _ = parse_freezer_state(text);
    for p in parse_partitions(text) {
        assert!(!p.name.is_empty());
    }
    for d in parse_diskstats(text) {
        assert!(!d.name.is_empty());
    }
}

// === structured mutations ===

#[derive(Debug, Clone)]
enum Mutation {
    /// Cut the text at this (wrapped) byte position.
    Truncate(usize),
    /// Insert a byte (NUL, CR, space, a digit, ...) at this position.
    Insert(usize, char),
    /// Replace the n-th (wrapped) run of digits with this text.
    ReplaceNumber(usize, String),
    DeleteLine(usize),
    DuplicateLine(usize),
    Crlf,
    StripTrailingNewline,
}

fn number_replacement() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("999999999999999999999999999999999999".to_owned()),
        Just("9223372036854771712".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("4294967295".to_owned()),
        Just("4294967296".to_owned()),
        Just("-1".to_owned()),
        Just("-0".to_owned()),
        Just(String::new()),
        Just("+1".to_owned()),
        Just("0x10".to_owned()),
        Just("1e309".to_owned()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("max".to_owned()),
        Just("1\u{0}2".to_owned()),
        Just("0.5.5".to_owned()),
        any::<u64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        (0u32..2_000_000).prop_map(|v| v.to_string()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop_oneof![
                Just('\0'),
                Just('\r'),
                Just('\n'),
                Just(' '),
                Just('='),
                Just(':'),
                Just('-'),
                Just(','),
                Just('9'),
                Just('é'),
                any::<char>(),
            ]
        )
            .prop_map(|(p, c)| Mutation::Insert(p, c)),
        (any::<usize>(), number_replacement()).prop_map(|(n, r)| Mutation::ReplaceNumber(n, r)),
        (any::<usize>(), number_replacement()).prop_map(|(n, r)| Mutation::ReplaceNumber(n, r)),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        Just(Mutation::Crlf),
        Just(Mutation::StripTrailingNewline),
    ]
}

fn char_floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, m: &Mutation) {
    match m {
        Mutation::Truncate(p) => {
            let at = char_floor(text, p % (text.len() + 1));
            text.truncate(at);
        }
        Mutation::Insert(p, c) => {
            let at = char_floor(text, p % (text.len() + 1));
            text.insert(at, *c);
        }
        Mutation::ReplaceNumber(n, r) => {
            let runs: Vec<(usize, usize)> = {
                let b = text.as_bytes();
                let mut runs = Vec::new();
                let mut i = 0;
                while i < b.len() {
                    if b[i].is_ascii_digit() {
                        let start = i;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                        runs.push((start, i));
                    } else {
                        i += 1;
                    }
                }
                runs
            };
            if !runs.is_empty() {
                let (s, e) = runs[n % runs.len()];
                text.replace_range(s..e, r);
            }
        }
        Mutation::DeleteLine(n) | Mutation::DuplicateLine(n) => {
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if lines.is_empty() {
                return;
            }
            let i = n % lines.len();
            if matches!(m, Mutation::DeleteLine(_)) {
                lines.remove(i);
            } else {
                lines.insert(i, lines[i]);
            }
            *text = lines.concat();
        }
        Mutation::Crlf => *text = text.replace('\n', "\r\n"),
        Mutation::StripTrailingNewline => {
            while text.ends_with('\n') {
                text.pop();
            }
        }
    }
}

fn mutated_seed() -> impl Strategy<Value = String> {
    (0..SEEDS.len(), proptest::collection::vec(mutation(), 0..6)).prop_map(|(i, ms)| {
        let mut text = SEEDS[i].to_owned();
        for m in &ms {
            apply(&mut text, m);
        }
        text
    })
}

/// The pieces the formats are made of; random sequences of them reach
/// deep into the parsers instead of failing on the first byte.
const TOKENS: &[&str] = &[
    "0",
    "1",
    "7",
    "42",
    "100000",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854771712",
    "4294967296",
    "999999",
    "1000000",
    "max",
    "-1",
    "some",
    "full",
    "avg10=",
    "avg60=",
    "avg300=",
    "total=",
    "N0=",
    "N1=",
    "rbytes=",
    "wbytes=",
    "rios=",
    "wbps=",
    "riops=",
    "default",
    "Read",
    "Write",
    "Total",
    "hierarchical_total=",
    "anon",
    "populated",
    "frozen",
    "usage_usec",
    "nr_periods",
    "oom_kill",
    "user",
    "THAWED",
    "8:0",
    "7:0",
    "sda",
    "major",
    " ",
    " ",
    " ",
    ":",
    "=",
    ",",
    ".",
    "-",
    "\n",
    "\n",
    "\n",
    "\r",
    "\t",
    "\0",
    "é",
];

fn format_alphabet() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        check_all(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_all(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn format_alphabet_strings_never_panic(s in format_alphabet()) {
        check_all(&s);
    }

    #[test]
    fn mutated_kernel_files_never_panic(s in mutated_seed()) {
        check_all(&s);
    }
}

// === round trips ===

fn opt_u64() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(any::<u64>())
}

/// Writes `key value` lines for the present fields, in a shuffled order,
/// with unknown keys mixed in as a newer kernel would add them.
fn flat_text(fields: &[(&str, Option<u64>)], order_seed: u64, extra: &[(String, u64)]) -> String {
    let mut lines: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
        .chain(extra.iter().map(|(k, v)| format!("zz_{k} {v}")))
        .collect();
    // Deterministic shuffle from the seed: rotate and reverse.
    if !lines.is_empty() {
        let r = (order_seed % lines.len() as u64) as usize;
        lines.rotate_left(r);
        if order_seed & 1 == 1 {
            lines.reverse();
        }
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn extra_keys() -> impl Strategy<Value = Vec<(String, u64)>> {
    proptest::collection::vec(("[a-z_]{1,12}", any::<u64>()), 0..4)
}

fn psi_line() -> impl Strategy<Value = (u32, u32, u32, u64)> {
    (0u32..=10_000, 0u32..=10_000, 0u32..=10_000, any::<u64>())
}

fn fmt_avg(hundredths: u32) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        Just(Limit::Max),
        (0..V1_UNLIMITED_MIN).prop_map(Limit::Value),
    ]
}

fn fmt_limit(l: Limit) -> String {
    match l {
        Limit::Max => "max".to_owned(),
        Limit::Value(v) => v.to_string(),
    }
}

fn devs(max: usize) -> impl Strategy<Value = Vec<DevNum>> {
    proptest::collection::btree_set((any::<u32>(), any::<u32>()), 0..max).prop_map(|s| {
        s.into_iter()
            .map(|(major, minor)| DevNum { major, minor })
            .collect()
    })
}

/// The kernel's CPU list format: sorted, runs merged into `a-b`. With
/// `merge` false every CPU is written alone, which is also valid.
fn fmt_cpu_list(set: &BTreeSet<u32>, merge: bool) -> String {
    let mut out = String::new();
    let mut it = set.iter().copied().peekable();
    while let Some(lo) = it.next() {
        let mut hi = lo;
        while merge && it.peek() == Some(&(hi + 1)) {
            hi += 1;
            it.next();
        }
        if !out.is_empty() {
            out.push(',');
        }
        if hi == lo {
            write!(out, "{lo}").expect("String write");
        } else {
            write!(out, "{lo}-{hi}").expect("String write");
        }
    }
    out.push('\n');
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn u64_round_trips(v in any::<u64>(), crlf in any::<bool>()) {
        let text = if crlf { format!("{v}\r\n") } else { format!("{v}\n") };
        prop_assert_eq!(parse_u64(&text), Ok(v));
    }

    #[test]
    fn limit_round_trips_and_sentinels_are_max(v in any::<u64>()) {
        let want = if v >= V1_UNLIMITED_MIN { Limit::Max } else { Limit::Value(v) };
        prop_assert_eq!(parse_limit(&format!("{v}\n")), Ok(want));
    }

    #[test]
    fn cpu_max_round_trips(quota in limit(), period in 1u64..=u64::MAX) {
        let text = format!("{} {period}\n", fmt_limit(quota));
        prop_assert_eq!(parse_cpu_max(&text), Ok(CpuMax { quota, period }));
    }

    #[test]
    fn cpu_stat_round_trips(
        f in (opt_u64(), opt_u64(), opt_u64(), opt_u64(), opt_u64(), opt_u64()),
        order in any::<u64>(),
        extra in extra_keys(),
    ) {
        let want = CpuStat {
            usage_usec: f.0, user_usec: f.1, system_usec: f.2,
            nr_periods: f.3, nr_throttled: f.4, throttled_usec: f.5,
        };
        let text = flat_text(&[
            ("usage_usec", f.0), ("user_usec", f.1), ("system_usec", f.2),
            ("nr_periods", f.3), ("nr_throttled", f.4), ("throttled_usec", f.5),
        ], order, &extra);
        let got = parse_cpu_stat(&text);
        if want == CpuStat::default() {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(want));
        }
    }

    #[test]
    fn cpu_stat_v1_round_trips(
        f in (opt_u64(), opt_u64(), opt_u64()),
        order in any::<u64>(),
        extra in extra_keys(),
    ) {
        let want = CpuStatV1 { nr_periods: f.0, nr_throttled: f.1, throttled_time: f.2 };
        let text = flat_text(&[
            ("nr_periods", f.0), ("nr_throttled", f.1), ("throttled_time", f.2),
        ], order, &extra);
        let got = parse_cpu_stat_v1(&text);
        if want == CpuStatV1::default() {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(want));
        }
    }

    #[test]
    fn memory_events_and_oom_control_round_trip(
        f in (opt_u64(), opt_u64(), opt_u64(), opt_u64(), opt_u64(), opt_u64()),
        order in any::<u64>(),
        extra in extra_keys(),
    ) {
        let want = MemoryEvents {
            low: f.0, high: f.1, max: f.2, oom: f.3, oom_kill: f.4, oom_group_kill: f.5,
        };
        let text = flat_text(&[
            ("low", f.0), ("high", f.1), ("max", f.2), ("oom", f.3),
            ("oom_kill", f.4), ("oom_group_kill", f.5),
        ], order, &extra);
        let got = parse_memory_events(&text);
        if want == MemoryEvents::default() {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(want));
        }

        let want = OomControl { oom_kill_disable: f.0, under_oom: f.1, oom_kill: f.2 };
        let text = flat_text(&[
            ("oom_kill_disable", f.0), ("under_oom", f.1), ("oom_kill", f.2),
        ], order, &extra);
        let got = parse_oom_control(&text);
        if want == OomControl::default() {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(want));
        }

        let want = CpuacctStat { user: f.3, system: f.4 };
        let text = flat_text(&[("user", f.3), ("system", f.4)], order, &extra);
        let got = parse_cpuacct_stat(&text);
        if want == CpuacctStat::default() {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(want));
        }
    }

    #[test]
    fn cgroup_events_round_trip(p in proptest::option::of(any::<bool>()), fr in proptest::option::of(any::<bool>())) {
        let mut text = String::new();
        if let Some(p) = p { writeln!(text, "populated {}", u8::from(p)).expect("String write"); }
        if let Some(f) = fr { writeln!(text, "frozen {}", u8::from(f)).expect("String write"); }
        let got = parse_cgroup_events(&text);
        if p.is_none() && fr.is_none() {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(CgroupEvents { populated: p, frozen: fr }));
        }
    }

    #[test]
    fn flat_keyed_sees_every_pair_in_order(
        pairs in proptest::collection::vec(("[a-z_][a-z_0-9.]{0,20}", any::<u64>()), 1..30),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let text: String = pairs.iter().map(|(k, v)| format!("{k} {v}{nl}")).collect();
        let mut seen = Vec::new();
        parse_flat_keyed(&text, |k, v| seen.push((k.to_owned(), v))).expect("valid");
        prop_assert_eq!(seen, pairs);
    }

    #[test]
    fn psi_round_trips(
        some in proptest::option::of(psi_line()),
        full in proptest::option::of(psi_line()),
    ) {
        let mut text = String::new();
        let mut want = Psi::default();
        for (name, line, slot) in [("some", some, &mut want.some), ("full", full, &mut want.full)] {
            if let Some((a, b, c, t)) = line {
                let (a, b, c) = (fmt_avg(a), fmt_avg(b), fmt_avg(c));
                writeln!(text, "{name} avg10={a} avg60={b} avg300={c} total={t}").expect("String write");
                *slot = Some(PsiLine {
                    avg10: a.parse().expect("f64"),
                    avg60: b.parse().expect("f64"),
                    avg300: c.parse().expect("f64"),
                    total: t,
                });
            }
        }
        let got = parse_psi(&text);
        if some.is_none() && full.is_none() {
            prop_assert!(got.is_err());
        } else {
            prop_assert_eq!(got, Ok(want));
        }
    }

    #[test]
    fn io_stat_round_trips(
        devs in devs(8),
        vals in proptest::collection::vec(
            (opt_u64(), opt_u64(), opt_u64(), opt_u64(), opt_u64(), opt_u64()), 8),
    ) {
        let mut text = String::new();
        let mut want = Vec::new();
        for (dev, f) in devs.iter().zip(&vals) {
            let e = IoStatEntry {
                dev: *dev, rbytes: f.0, wbytes: f.1, rios: f.2, wios: f.3, dbytes: f.4, dios: f.5,
            };
            write!(text, "{dev} ").expect("String write");
            for (k, v) in [("rbytes", f.0), ("wbytes", f.1), ("rios", f.2),
                           ("wios", f.3), ("dbytes", f.4), ("dios", f.5)] {
                if let Some(v) = v {
                    write!(text, "{k}={v} ").expect("String write");
                }
            }
            text.push('\n');
            want.push(e);
        }
        prop_assert_eq!(parse_io_stat(&text), Ok(want));
    }

    #[test]
    fn io_max_round_trips(
        devs in devs(8),
        vals in proptest::collection::vec((limit(), limit(), limit(), limit()), 8),
    ) {
        let mut text = String::new();
        let mut want = Vec::new();
        for (dev, l) in devs.iter().zip(&vals) {
            writeln!(text, "{dev} rbps={} wbps={} riops={} wiops={}",
                fmt_limit(l.0), fmt_limit(l.1), fmt_limit(l.2), fmt_limit(l.3)).expect("String write");
            want.push(IoMaxEntry { dev: *dev, rbps: l.0, wbps: l.1, riops: l.2, wiops: l.3 });
        }
        prop_assert_eq!(parse_io_max(&text), Ok(want));
    }

    #[test]
    fn io_weight_round_trips(
        default in any::<u64>(),
        devs in devs(8),
        weights in proptest::collection::vec(any::<u64>(), 8),
        v1 in any::<bool>(),
    ) {
        if v1 {
            prop_assert_eq!(
                parse_io_weight(&format!("{default}\n")),
                Ok(IoWeight { default: Some(default), devices: vec![] })
            );
        } else {
            let mut text = format!("default {default}\n");
            let devices: Vec<_> = devs.into_iter().zip(weights).collect();
            for (d, w) in &devices {
                writeln!(text, "{d} {w}").expect("String write");
            }
            prop_assert_eq!(parse_io_weight(&text), Ok(IoWeight { default: Some(default), devices }));
        }
    }

    #[test]
    fn blkio_throttle_round_trips(
        devs in devs(8),
        vals in proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 8),
    ) {
        let mut text = String::new();
        let mut want = Vec::new();
        let mut total: u64 = 0;
        for (dev, (r, w, d)) in devs.iter().zip(&vals) {
            let sum = r.wrapping_add(*w);
            total = total.wrapping_add(sum);
            write!(text, "{dev} Read {r}\n{dev} Write {w}\n{dev} Sync {sum}\n{dev} Async 0\n\
                          {dev} Discard {d}\n{dev} Total {sum}\n").expect("String write");
            want.push(BlkioEntry { dev: *dev, read: Some(*r), write: Some(*w) });
        }
        writeln!(text, "Total {total}").expect("String write");
        prop_assert_eq!(parse_blkio_throttle(&text), Ok(want));
    }

    #[test]
    fn blkio_device_limits_round_trip(
        devs in devs(8),
        vals in proptest::collection::vec(any::<u64>(), 8),
    ) {
        let want: Vec<_> = devs.into_iter().zip(vals).collect();
        let text: String = want.iter().map(|(d, v)| format!("{d} {v}\n")).collect();
        prop_assert_eq!(parse_blkio_device_limits(&text), Ok(want));
    }

    #[test]
    fn cpuset_count_equals_set_size(
        set in proptest::collection::btree_set(0u32..4096, 0..300),
        merge in any::<bool>(),
    ) {
        let text = fmt_cpu_list(&set, merge);
        prop_assert_eq!(parse_cpuset_count(&text), Ok(set.len() as u32));
    }

    #[test]
    fn cpuset_wide_ranges_count_exactly(lo in 0u32..999_999, len in 0u32..1_000_000) {
        let hi = (lo + len).min(999_999);
        prop_assert_eq!(parse_cpuset_count(&format!("{lo}-{hi}\n")), Ok(hi - lo + 1));
    }

    #[test]
    fn numa_stat_round_trips(
        stats in proptest::collection::btree_map(
            "[a-z][a-z_]{0,15}",
            proptest::collection::btree_map(0u32..64, any::<u64>(), 1..5),
            1..10,
        ),
        v1 in any::<bool>(),
    ) {
        let stats: BTreeMap<String, BTreeMap<u32, u64>> = stats
            .into_iter()
            .filter(|(k, _)| !k.starts_with("hierarchical_"))
            .collect();
        let mut text = String::new();
        for (name, nodes) in &stats {
            if v1 {
                let sum = nodes.values().fold(0u64, |a, v| a.wrapping_add(*v));
                write!(text, "{name}={sum}").expect("String write");
            } else {
                text.push_str(name);
            }
            for (n, v) in nodes {
                write!(text, " N{n}={v}").expect("String write");
            }
            text.push('\n');
            if v1 {
                // The v1 file repeats every stat as hierarchical_*: ignored.
                writeln!(text, "hierarchical_{name}=1 N0=1").expect("String write");
            }
        }
        let got = parse_numa_stat(&text);
        if stats.is_empty() {
            prop_assert!(got.is_err());
        } else {
            let got = got.expect("valid numa_stat");
            let got: Vec<(String, Vec<(u32, u64)>)> = got
                .entries
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect();
            let want: Vec<(String, Vec<(u32, u64)>)> = stats
                .into_iter()
                .map(|(n, v)| (n, v.into_iter().collect()))
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn partitions_round_trip(
        rows in proptest::collection::vec(
            (any::<u32>(), any::<u32>(), any::<u64>(), "[a-z][a-z0-9]{0,11}"), 0..10),
    ) {
        let mut text = String::from("major minor  #blocks  name\n\n");
        for (ma, mi, b, n) in &rows {
            writeln!(text, "{ma:>4} {mi:>7} {b:>10} {n}").expect("String write");
        }
        let want: Vec<Partition> = rows
            .into_iter()
            .map(|(major, minor, _, name)| Partition { dev: DevNum { major, minor }, name })
            .collect();
        prop_assert_eq!(parse_partitions(&text), want);
    }
}
