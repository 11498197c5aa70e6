//! Pure parsers, one per kernel file format. No I/O here: every function
//! takes the file's text and returns typed values, so each is tested on real
//! file contents and fuzzed.
//!
//! Conventions: fields are named after the kernel's keys; unknown keys and
//! unknown lines are ignored (new kernels add them); a value the kernel does
//! not give is `None` (an absent series), never `0` or `-1`.
//!
//! Errors: an empty file, or one with no usable line, is a `ParseError`,
//! except where the kernel itself writes an empty file for "nothing here"
//! (`io.stat`, `io.max`, `blkio.weight_device`, the
//! `blkio.throttle.*_device` files, an empty cpuset), which give an empty
//! value. Nothing here panics or allocates per line beyond the returned
//! values: these run for every cgroup on every scrape, and are fuzzed with
//! arbitrary input in `tests/fuzz_parsers.rs`.
//!
//! Formats: <https://docs.kernel.org/admin-guide/cgroup-v2.html#interface-files>

use std::fmt;

/// Why a file did not parse. `line` is 1-based; 0 when the file as a whole
/// is wrong (empty, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
}

impl ParseError {
    pub fn new(line: usize, reason: &'static str) -> Self {
        ParseError { line, reason }
    }
}

/// A limit file's value: `max` (or v1's "unlimited" sentinels) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Max,
    Value(u64),
}

impl Limit {
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Max => None,
            Limit::Value(v) => Some(v),
        }
    }
}

/// A block device as `io.stat` and `blkio.*` name it. The default, `0:0`,
/// only fills `IoStatEntry::default()`; no real device has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One line of a PSI file. Averages are percentages, `total` is µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// A `*.pressure` file or `/proc/pressure/*`. `full` is absent in
/// `cpu.pressure` before Linux 5.13; `some` is absent in `irq.pressure`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    pub some: Option<PsiLine>,
    pub full: Option<PsiLine>,
}

/// v2 `cpu.stat` (and the unified `cpu.stat` in hybrid mode). µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStat {
    pub usage_usec: Option<u64>,
    pub user_usec: Option<u64>,
    pub system_usec: Option<u64>,
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_usec: Option<u64>,
}

/// v1 `cpu.stat` of the cpu controller; `throttled_time` is ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStatV1 {
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_time: Option<u64>,
}

/// v2 `cpu.max`: `$MAX $PERIOD`, `$MAX` may be `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    pub quota: Limit,
    pub period: u64,
}

/// v1 `cpuacct.stat`: `user` and `system` in USER_HZ ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuacctStat {
    pub user: Option<u64>,
    pub system: Option<u64>,
}

/// v2 `memory.events` (and `.local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEvents {
    pub low: Option<u64>,
    pub high: Option<u64>,
    pub max: Option<u64>,
    pub oom: Option<u64>,
    pub oom_kill: Option<u64>,
    pub oom_group_kill: Option<u64>,
}

/// v1 `memory.oom_control`. `oom_kill` exists since Linux 4.13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OomControl {
    pub oom_kill_disable: Option<u64>,
    pub under_oom: Option<u64>,
    pub oom_kill: Option<u64>,
}

/// `cgroup.events` (v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupEvents {
    pub populated: Option<bool>,
    pub frozen: Option<bool>,
}

/// One device line of v2 `io.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoStatEntry {
    pub dev: DevNum,
    pub rbytes: Option<u64>,
    pub wbytes: Option<u64>,
    pub rios: Option<u64>,
    pub wios: Option<u64>,
    pub dbytes: Option<u64>,
    pub dios: Option<u64>,
}

/// One device line of v2 `io.max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoMaxEntry {
    pub dev: DevNum,
    pub rbps: Limit,
    pub wbps: Limit,
    pub riops: Limit,
    pub wiops: Limit,
}

/// v2 `io.weight` / v1 `blkio.weight_device`-style: a default and overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IoWeight {
    pub default: Option<u64>,
    pub devices: Vec<(DevNum, u64)>,
}

/// v1 `blkio.throttle.io_service_bytes` / `io_serviced` (and the
/// `_recursive` variants): per device, the Read and Write rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlkioEntry {
    pub dev: DevNum,
    pub read: Option<u64>,
    pub write: Option<u64>,
}

/// `memory.numa_stat`: per stat, per node (`N0=…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumaStat<'a> {
    pub entries: Vec<(&'a str, Vec<(u32, u64)>)>,
}

/// One line of `/proc/partitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub dev: DevNum,
    pub name: String,
}

/// One whole disk of `/proc/diskstats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStat {
    pub dev: DevNum,
    pub name: String,
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub write_bytes: u64,
}

/// `freezer.state` (v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    Freezing,
    Frozen,
}

// === helpers ===

/// Strict decimal: ASCII digits only, no sign, no whitespace, no overflow.
/// `u64::from_str` would also take a leading `+`, which no kernel writes and
/// which would let garbage through.
fn dec_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

fn dec_u32(s: &str) -> Option<u32> {
    dec_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// `MAJ:MIN` as `io.stat`, `io.max` and `blkio.*` print it.
fn parse_dev(s: &str) -> Option<DevNum> {
    let (major, minor) = s.split_once(':')?;
    Some(DevNum {
        major: dec_u32(major)?,
        minor: dec_u32(minor)?,
    })
}

/// The smallest value v1 prints for "no limit".
///
/// Kernel quirk: v1 `memory.limit_in_bytes` (and `memsw`, `soft_limit`,
/// `kmem`) print `PAGE_COUNTER_MAX * PAGE_SIZE`, i.e. `LONG_MAX` rounded
/// down to the page size: 9223372036854771712 with 4 KiB pages,
/// 9223372036854710272 with 64 KiB pages (arm64, ppc64le). Older kernels
/// printed `LONG_MAX` itself. Everything from `LONG_MAX` rounded down to
/// 64 KiB upwards is therefore "unlimited"; no real limit is that close to
/// 8 EiB.
const V1_UNLIMITED_MIN: u64 = 0x7FFF_FFFF_FFFF_0000;

/// One limit token: `max`, v1's `-1`, the v1 sentinel, or a number.
fn limit_token(s: &str) -> Option<Limit> {
    match s {
        "max" => Some(Limit::Max),
        // Kernel quirk: v1 `cpu.cfs_quota_us` and `memory.memsw.*` write
        // `-1` for "no limit".
        "-1" => Some(Limit::Max),
        _ => {
            let v = dec_u64(s)?;
            Some(if v >= V1_UNLIMITED_MIN {
                Limit::Max
            } else {
                Limit::Value(v)
            })
        }
    }
}

/// The one token of a single-value file, or why there is not exactly one.
fn single_token(text: &str) -> Result<&str, ParseError> {
    let mut it = text.split_ascii_whitespace();
    let tok = it.next().ok_or(ParseError::new(0, "empty file"))?;
    if it.next().is_some() {
        return Err(ParseError::new(1, "more than one value"));
    }
    Ok(tok)
}

/// A PSI average: `12.34`. Digits and one dot only, so `inf`, `NaN`,
/// exponents and signs (all accepted by `f64::from_str`) are rejected.
fn psi_avg(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut dots = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {}
            b'.' => dots += 1,
            _ => return None,
        }
    }
    if dots > 1 || b.first().is_none_or(|&c| c == b'.') {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The error for a file with lines but none we could use: empty files get
/// line 0, others the first line that did not parse.
fn nothing_usable(text: &str, first_bad: usize) -> ParseError {
    if text.trim_ascii().is_empty() {
        ParseError::new(0, "empty file")
    } else {
        ParseError::new(first_bad.max(1), "no well-formed line")
    }
}

/// Runs a flat keyed parse for a file whose keys the caller knows. `f`
/// gets each key with its value (`None` when the value is not a u64) and
/// says whether it knows the key. Fails when none of the known keys was
/// present (a file with only foreign keys is the wrong file, not a cgroup
/// with no data), and when a known key's value does not parse: that is a
/// broken read, to be counted as a parse error, not a series quietly gone.
fn flat_keyed_known<'a>(
    text: &'a str,
    mut f: impl FnMut(&'a str, Option<u64>) -> bool,
) -> Result<(), ParseError> {
    let mut known = false;
    let mut bad_known = 0;
    flat_keyed_lines(text, |line, k, v| {
        let k_known = f(k, v);
        known |= k_known;
        if k_known && v.is_none() && bad_known == 0 {
            bad_known = line;
        }
    })?;
    if bad_known != 0 {
        return Err(ParseError::new(bad_known, "bad value of a known key"));
    }
    if known {
        Ok(())
    } else {
        Err(ParseError::new(0, "no known key"))
    }
}

// === single values ===

/// A single unsigned integer (`memory.current`, `pids.current`, ...).
pub fn parse_u64(text: &str) -> Result<u64, ParseError> {
    dec_u64(single_token(text)?).ok_or(ParseError::new(1, "not an unsigned integer"))
}

/// A single value that may be `max` (`memory.max`, `pids.max`, ...). v1's
/// "unlimited" (`memory.limit_in_bytes` near `i64::MAX` rounded down to a
/// page, `cpu.cfs_quota_us` = `-1`) is also `Limit::Max`.
pub fn parse_limit(text: &str) -> Result<Limit, ParseError> {
    limit_token(single_token(text)?).ok_or(ParseError::new(1, "not a limit (max or integer)"))
}

/// `cpu.max`. A zero period is rejected: the collector divides by it.
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, ParseError> {
    let mut it = text.split_ascii_whitespace();
    let quota = it.next().ok_or(ParseError::new(0, "empty file"))?;
    let period = it.next().ok_or(ParseError::new(1, "missing period"))?;
    if it.next().is_some() {
        return Err(ParseError::new(1, "more than two values"));
    }
    let quota = limit_token(quota).ok_or(ParseError::new(1, "bad quota"))?;
    let period = dec_u64(period)
        .filter(|&p| p > 0)
        .ok_or(ParseError::new(1, "bad period"))?;
    Ok(CpuMax { quota, period })
}

// === flat keyed ===

/// Flat keyed files (`key value` per line): an iterator-free helper that
/// calls `f(key, value)` per well-formed line and skips lines whose value is
/// not a u64. Errors only on a file with no well-formed line at all.
///
/// Well-formed means exactly two fields; a line with more is some other
/// format (a nested keyed line, say) and is skipped rather than misread.
/// Skipping instead of failing keeps a file usable when a new kernel adds a
/// key with a non-integer value, or a stat goes transiently negative.
pub fn parse_flat_keyed<'a>(
    text: &'a str,
    mut f: impl FnMut(&'a str, u64),
) -> Result<(), ParseError> {
    flat_keyed_lines(text, |_, k, v| {
        if let Some(v) = v {
            f(k, v)
        }
    })
}

/// The loop of [`parse_flat_keyed`]: `f(line_no, key, value)` for every
/// two-field line, the value `None` when it is not a u64. Errors only on a
/// file with no well-formed line at all.
fn flat_keyed_lines<'a>(
    text: &'a str,
    mut f: impl FnMut(usize, &'a str, Option<u64>),
) -> Result<(), ParseError> {
    let mut any = false;
    let mut first_bad = 0;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let parsed = match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) => {
                let v = dec_u64(v);
                f(i + 1, k, v);
                v.map(|_| ())
            }
            (None, _, _) => continue,
            _ => None,
        };
        match parsed {
            Some(()) => any = true,
            None if first_bad == 0 => first_bad = i + 1,
            None => {}
        }
    }
    if any {
        Ok(())
    } else {
        Err(nothing_usable(text, first_bad))
    }
}

/// Only the keys the exporter uses are kept; a file with none of them is
/// an error (the wrong file, not an idle cgroup: the kernel always writes
/// the usage keys).
pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, ParseError> {
    let mut s = CpuStat::default();
    flat_keyed_known(text, |k, v| {
        let slot = match k {
            "usage_usec" => &mut s.usage_usec,
            "user_usec" => &mut s.user_usec,
            "system_usec" => &mut s.system_usec,
            "nr_periods" => &mut s.nr_periods,
            "nr_throttled" => &mut s.nr_throttled,
            "throttled_usec" => &mut s.throttled_usec,
            _ => return false,
        };
        *slot = v;
        true
    })?;
    Ok(s)
}

/// Newer kernels (5.14+) add `nr_bursts` and `burst_time`: ignored.
pub fn parse_cpu_stat_v1(text: &str) -> Result<CpuStatV1, ParseError> {
    let mut s = CpuStatV1::default();
    flat_keyed_known(text, |k, v| {
        let slot = match k {
            "nr_periods" => &mut s.nr_periods,
            "nr_throttled" => &mut s.nr_throttled,
            "throttled_time" => &mut s.throttled_time,
            _ => return false,
        };
        *slot = v;
        true
    })?;
    Ok(s)
}

/// Ticks are USER_HZ (`sysconf(_SC_CLK_TCK)`), not jiffies: the caller
/// converts.
pub fn parse_cpuacct_stat(text: &str) -> Result<CpuacctStat, ParseError> {
    let mut s = CpuacctStat::default();
    flat_keyed_known(text, |k, v| {
        let slot = match k {
            "user" => &mut s.user,
            "system" => &mut s.system,
            _ => return false,
        };
        *slot = v;
        true
    })?;
    Ok(s)
}

/// Also `memory.events.local`, which has the same keys.
pub fn parse_memory_events(text: &str) -> Result<MemoryEvents, ParseError> {
    let mut s = MemoryEvents::default();
    flat_keyed_known(text, |k, v| {
        let slot = match k {
            "low" => &mut s.low,
            "high" => &mut s.high,
            "max" => &mut s.max,
            "oom" => &mut s.oom,
            "oom_kill" => &mut s.oom_kill,
            // Kernel quirk: only since Linux 5.17.
            "oom_group_kill" => &mut s.oom_group_kill,
            _ => return false,
        };
        *slot = v;
        true
    })?;
    Ok(s)
}

/// `oom_kill` is a counter; `under_oom` and `oom_kill_disable` are 0/1
/// flags kept as numbers as the kernel writes them.
pub fn parse_oom_control(text: &str) -> Result<OomControl, ParseError> {
    let mut s = OomControl::default();
    flat_keyed_known(text, |k, v| {
        let slot = match k {
            "oom_kill_disable" => &mut s.oom_kill_disable,
            "under_oom" => &mut s.under_oom,
            "oom_kill" => &mut s.oom_kill,
            _ => return false,
        };
        *slot = v;
        true
    })?;
    Ok(s)
}

/// Values other than 0 and 1 leave the field `None`: the kernel writes
/// only those, so anything else is not a state we can report.
pub fn parse_cgroup_events(text: &str) -> Result<CgroupEvents, ParseError> {
    let mut s = CgroupEvents::default();
    flat_keyed_known(text, |k, v| {
        let slot = match k {
            "populated" => &mut s.populated,
            // Kernel quirk: `frozen` only since Linux 5.2.
            "frozen" => &mut s.frozen,
            _ => return false,
        };
        *slot = match v {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        };
        true
    })?;
    Ok(s)
}

// === PSI ===

/// PSI files. Unknown line prefixes are ignored; a file with neither `some`
/// nor `full` is an error.
///
/// A `some`/`full` line missing one of its four fields is an error (with its
/// line number) rather than skipped: it means a truncated read, and
/// reporting half the file as if the other half were absent would lie.
/// Unknown `key=value` fields are ignored.
pub fn parse_psi(text: &str) -> Result<Psi, ParseError> {
    let mut psi = Psi::default();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let slot = match it.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
        for field in it {
            let Some((k, v)) = field.split_once('=') else {
                return Err(ParseError::new(i + 1, "PSI field without '='"));
            };
            let ok = match k {
                "avg10" => psi_avg(v).map(|x| avg10 = Some(x)),
                "avg60" => psi_avg(v).map(|x| avg60 = Some(x)),
                "avg300" => psi_avg(v).map(|x| avg300 = Some(x)),
                "total" => dec_u64(v).map(|x| total = Some(x)),
                _ => Some(()),
            };
            if ok.is_none() {
                return Err(ParseError::new(i + 1, "bad PSI value"));
            }
        }
        match (avg10, avg60, avg300, total) {
            (Some(avg10), Some(avg60), Some(avg300), Some(total)) => {
                *slot = Some(PsiLine {
                    avg10,
                    avg60,
                    avg300,
                    total,
                });
            }
            _ => return Err(ParseError::new(i + 1, "PSI line missing a field")),
        }
    }
    if psi.some.is_none() && psi.full.is_none() {
        return Err(if text.trim_ascii().is_empty() {
            ParseError::new(0, "empty file")
        } else {
            ParseError::new(0, "no some or full line")
        });
    }
    Ok(psi)
}

// === nested keyed (io.*) ===

/// Shared loop of the per-device files: calls `f(line_no, dev, rest)` for
/// each line that starts with a device number and collects what it keeps.
/// Kernel quirk: an idle cgroup's `io.stat`, and `io.max` or the
/// `blkio.throttle.*_device` files with no limit set, are empty; so an empty
/// file is an empty list, while a non-empty file with no usable line is an
/// error.
fn per_device<'a, T>(
    text: &'a str,
    mut f: impl FnMut(DevNum, std::str::SplitAsciiWhitespace<'a>) -> Option<T>,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::new();
    let mut first_bad = 0;
    let mut nonblank = false;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(first) = it.next() else { continue };
        nonblank = true;
        match parse_dev(first).and_then(|dev| f(dev, it)) {
            Some(t) => out.push(t),
            None if first_bad == 0 => first_bad = i + 1,
            None => {}
        }
    }
    if out.is_empty() && nonblank {
        return Err(ParseError::new(
            first_bad.max(1),
            "no well-formed device line",
        ));
    }
    Ok(out)
}

/// v2 `io.stat` (nested keyed). Lines with no keys (`7:0 ` for an idle
/// loop device) give an entry with all fields `None`.
///
/// A known key whose value is not a u64 leaves that field `None`; unknown
/// keys (`cost.*` with iocost, `rlat`…) are ignored.
pub fn parse_io_stat(text: &str) -> Result<Vec<IoStatEntry>, ParseError> {
    per_device(text, |dev, fields| {
        let mut e = IoStatEntry {
            dev,
            ..IoStatEntry::default()
        };
        for field in fields {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            let slot = match k {
                "rbytes" => &mut e.rbytes,
                "wbytes" => &mut e.wbytes,
                "rios" => &mut e.rios,
                "wios" => &mut e.wios,
                "dbytes" => &mut e.dbytes,
                "dios" => &mut e.dios,
                _ => continue,
            };
            *slot = dec_u64(v);
        }
        Some(e)
    })
}

/// v2 `io.max`. A key the line lacks is `Max` (the kernel prints all four);
/// a line with a bad value is skipped whole, since half a limit set is not
/// what the kernel enforces.
pub fn parse_io_max(text: &str) -> Result<Vec<IoMaxEntry>, ParseError> {
    per_device(text, |dev, fields| {
        let mut e = IoMaxEntry {
            dev,
            rbps: Limit::Max,
            wbps: Limit::Max,
            riops: Limit::Max,
            wiops: Limit::Max,
        };
        for field in fields {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            let slot = match k {
                "rbps" => &mut e.rbps,
                "wbps" => &mut e.wbps,
                "riops" => &mut e.riops,
                "wiops" => &mut e.wiops,
                _ => continue,
            };
            *slot = limit_token(v)?;
        }
        Some(e)
    })
}

/// v2 `io.weight` (`default 100` then `8:0 200` lines) and v1
/// `blkio.weight` (a bare number, returned as the default).
///
/// Also takes v1 `blkio.weight_device`, which is empty when no device has
/// an override: an empty file is an empty `IoWeight`.
pub fn parse_io_weight(text: &str) -> Result<IoWeight, ParseError> {
    let mut w = IoWeight::default();
    let mut any = false;
    let mut first_bad = 0;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let ok = match (it.next(), it.next(), it.next()) {
            (None, _, _) => continue,
            (Some("default"), Some(v), None) | (Some(v), None, None) => {
                dec_u64(v).map(|v| w.default = Some(v))
            }
            (Some(dev), Some(v), None) => parse_dev(dev)
                .zip(dec_u64(v))
                .map(|entry| w.devices.push(entry)),
            _ => None,
        };
        match ok {
            Some(()) => any = true,
            None if first_bad == 0 => first_bad = i + 1,
            None => {}
        }
    }
    if !any && first_bad != 0 {
        return Err(ParseError::new(first_bad, "no well-formed weight line"));
    }
    Ok(w)
}

/// v1 `blkio.throttle.io_service_bytes` and `blkio.throttle.io_serviced`
/// (`8:0 Read 123` rows; `Total` rows and the final `Total N` ignored).
///
/// Devices come out in the order the kernel lists them. The file always
/// ends in `Total N`, even with no device, so an empty file is an error.
pub fn parse_blkio_throttle(text: &str) -> Result<Vec<BlkioEntry>, ParseError> {
    let mut out: Vec<BlkioEntry> = Vec::new();
    let mut any = false;
    let mut first_bad = 0;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let ok = match (it.next(), it.next(), it.next(), it.next()) {
            (None, ..) => continue,
            (Some("Total"), Some(v), None, None) => dec_u64(v).map(|_| ()),
            (Some(dev), Some(op), Some(v), None) => {
                parse_dev(dev).zip(dec_u64(v)).map(|(dev, v)| {
                    // Rows of one device are consecutive: look at the last
                    // entry first, then fall back to a scan.
                    let idx = match out.last() {
                        Some(e) if e.dev == dev => Some(out.len() - 1),
                        _ => out.iter().position(|e| e.dev == dev),
                    };
                    let e = match idx {
                        Some(i) => out.get_mut(i),
                        None => {
                            out.push(BlkioEntry {
                                dev,
                                read: None,
                                write: None,
                            });
                            out.last_mut()
                        }
                    };
                    let Some(e) = e else { return };
                    match op {
                        "Read" => e.read = Some(v),
                        "Write" => e.write = Some(v),
                        // Sync, Async, Discard, Total and future rows.
                        _ => {}
                    }
                })
            }
            _ => None,
        };
        match ok {
            Some(()) => any = true,
            None if first_bad == 0 => first_bad = i + 1,
            None => {}
        }
    }
    if !any {
        return Err(nothing_usable(text, first_bad));
    }
    Ok(out)
}

/// v1 `blkio.throttle.{read,write}_{bps,iops}_device`: `8:0 1048576` per
/// line; an empty file means no limits.
pub fn parse_blkio_device_limits(text: &str) -> Result<Vec<(DevNum, u64)>, ParseError> {
    per_device(text, |dev, mut fields| {
        match (fields.next(), fields.next()) {
            (Some(v), None) => dec_u64(v).map(|v| (dev, v)),
            _ => None,
        }
    })
}

// === cpuset ===

/// CPU numbers at or above this are garbage, not a machine: Linux caps
/// `NR_CPUS` at 8192 today. The cap also bounds the count we return.
const MAX_CPU_ID: u32 = 1_000_000;

/// `cpuset.cpus.effective` / `cpuset.cpus`: a CPU list (`0-3,8,10-11`),
/// returned as the count of CPUs. Empty means none (0).
///
/// The kernel prints ranges sorted and disjoint; anything else (reversed,
/// overlapping, out of order, strided `0-7:2`) is an error rather than a
/// count that could double-count CPUs.
pub fn parse_cpuset_count(text: &str) -> Result<u32, ParseError> {
    let list = text.trim_ascii();
    if list.is_empty() {
        return Ok(0);
    }
    let mut count: u32 = 0;
    let mut next_min: u32 = 0;
    for part in list.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (dec_u32(a), dec_u32(b)),
            None => {
                let v = dec_u32(part);
                (v, v)
            }
        };
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Err(ParseError::new(1, "bad CPU list entry"));
        };
        if lo > hi {
            return Err(ParseError::new(1, "reversed CPU range"));
        }
        if hi >= MAX_CPU_ID {
            return Err(ParseError::new(1, "CPU number out of range"));
        }
        if lo < next_min {
            return Err(ParseError::new(1, "CPU ranges overlap or out of order"));
        }
        next_min = hi + 1;
        count += hi - lo + 1;
    }
    Ok(count)
}

// === numa_stat ===

/// v2 `memory.numa_stat` (`anon N0=1 N1=2`) and v1 (`total=3 N0=1 N1=2`,
/// `hierarchical_*` lines ignored).
///
/// Kernel quirk: v2 values are bytes (the `workingset_*` rows are event
/// counts), v1 values are pages; the caller knows which hierarchy it read.
/// v1's own total after `=` is dropped: it is the sum of the nodes. A line
/// with a malformed node field is skipped whole.
pub fn parse_numa_stat(text: &str) -> Result<NumaStat<'_>, ParseError> {
    let mut entries = Vec::new();
    let mut first_bad = 0;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(head) = it.next() else { continue };
        let name = match head.split_once('=') {
            Some((name, total)) if dec_u64(total).is_some() => name,
            Some(_) => "",
            None => head,
        };
        if name.starts_with("hierarchical_") {
            continue;
        }
        let mut nodes = Vec::new();
        let mut ok = !name.is_empty();
        for field in it {
            let parsed = field
                .strip_prefix('N')
                .and_then(|f| f.split_once('='))
                .and_then(|(n, v)| dec_u32(n).zip(dec_u64(v)));
            match parsed {
                Some(nv) => nodes.push(nv),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && !nodes.is_empty() {
            entries.push((name, nodes));
        } else if first_bad == 0 {
            first_bad = i + 1;
        }
    }
    if entries.is_empty() {
        return Err(nothing_usable(text, first_bad));
    }
    Ok(NumaStat { entries })
}

// === misc ===

/// The v1 freezer's state; v2 reports freezing in `cgroup.events`.
pub fn parse_freezer_state(text: &str) -> Result<FreezerState, ParseError> {
    match single_token(text)? {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        _ => Err(ParseError::new(1, "unknown freezer state")),
    }
}

/// `/proc/partitions`: maps device numbers to names for the `device` label.
///
/// Infallible because a missing name only costs a label: the header, blank
/// lines and malformed rows are skipped.
pub fn parse_partitions(text: &str) -> Vec<Partition> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        if let (Some(major), Some(minor), Some(blocks), Some(name), None) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        {
            if let (Some(major), Some(minor), Some(_)) =
                (dec_u32(major), dec_u32(minor), dec_u64(blocks))
            {
                out.push(Partition {
                    dev: DevNum { major, minor },
                    name: name.to_owned(),
                });
            }
        }
    }
    out
}

/// `/proc/diskstats`, whole disks only: the host's IO for `cgroup="/"`, as
/// v2's root `io.stat` reports it (the kernel fills that from the same
/// per-disk counters, skipping partitions).
///
/// Kernel facts: sectors here are always 512 bytes, whatever the device's
/// sector size; the file has no partition flag, so a partition is told by
/// its name: a disk's name plus a number (`sda1`), or plus `p` and a number
/// when the disk's name ends in a digit (`nvme0n1p1`, `mmcblk0p1`).
/// Infallible: malformed rows are skipped.
pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let (Some(major), Some(minor)) = (dec_u32(f[0]), dec_u32(f[1])) else {
            continue;
        };
        let (Some(reads), Some(rsect), Some(writes), Some(wsect)) =
            (dec_u64(f[3]), dec_u64(f[5]), dec_u64(f[7]), dec_u64(f[9]))
        else {
            continue;
        };
        rows.push(DiskStat {
            dev: DevNum { major, minor },
            name: f[2].to_owned(),
            reads,
            read_bytes: rsect.saturating_mul(512),
            writes,
            write_bytes: wsect.saturating_mul(512),
        });
    }
    let names: std::collections::HashSet<String> = rows.iter().map(|r| r.name.clone()).collect();
    rows.retain(|r| !is_partition(&r.name, &names));
    rows
}

fn is_partition(name: &str, disks: &std::collections::HashSet<String>) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == name.len() || base.is_empty() {
        return false;
    }
    if disks.contains(base) {
        return true;
    }
    base.strip_suffix('p')
        .is_some_and(|d| d.ends_with(|c: char| c.is_ascii_digit()) && disks.contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskstats_keeps_whole_disks_in_bytes() {
        let text = "\
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 2367395 165670 2082098082 8408694 148448 284617 217178360 1179378 0 942552 9632041 179835 50 186138944 43754 2575 214
 254       1 vda1 2367000 165000 2082000000 8408000 148000 284000 217178000 1179000 0 942000 9632000
   8       0 sda 10 0 80 1 20 0 160 2 0 3 3
   8      16 sdb 1 0 8 1 0 0 0 0 0 1 1
   8      17 sdb1 1 0 8 1 0 0 0 0 0 1 1
 259       0 nvme0n1 5 0 40 0 6 0 48 0 0 0 0
 259       1 nvme0n1p1 5 0 40 0 6 0 48 0 0 0 0
 179       0 mmcblk0 1 0 8 0 0 0 0 0 0 0 0
 179       1 mmcblk0p2 1 0 8 0 0 0 0 0 0 0 0
 253       0 dm-0 3 0 24 0 0 0 0 0 0 0 0
   9     127 md127 1 0 8 0 0 0 0 0 0 0 0
 garbage line
   8       0 short 1 2 3
";
        let got = parse_diskstats(text);
        let names: Vec<&str> = got.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["loop0", "vda", "sda", "sdb", "nvme0n1", "mmcblk0", "dm-0", "md127"]
        );
        let vda = &got[1];
        assert_eq!(vda.dev, dev(254, 0));
        assert_eq!(vda.reads, 2367395);
        assert_eq!(vda.read_bytes, 2082098082 * 512);
        assert_eq!(vda.writes, 148448);
        assert_eq!(vda.write_bytes, 217178360 * 512);
        assert!(parse_diskstats("").is_empty());
        assert_eq!(
            parse_diskstats(" 8 0 sda 1 0 18446744073709551615 0 0 0 0 0 0 0 0")[0].read_bytes,
            u64::MAX
        );
    }

    /// Byte-exact copies from a Linux 6.18 hybrid host; see
    /// `tests/data/kernel-files/README.md`.
    macro_rules! real {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/kernel-files/linux-6.18-hybrid/",
                $name
            ))
        };
    }

    fn dev(major: u32, minor: u32) -> DevNum {
        DevNum { major, minor }
    }

    fn psi_line(avg10: f64, avg60: f64, avg300: f64, total: u64) -> PsiLine {
        PsiLine {
            avg10,
            avg60,
            avg300,
            total,
        }
    }

    // === single values ===

    #[test]
    fn single_u64_values_parse() {
        let cases: &[(&str, Result<u64, usize>)] = &[
            (real!("v1.memory.usage_in_bytes"), Ok(7_108_882_432)),
            (real!("v1.cpu.cfs_period_us"), Ok(100_000)),
            (real!("v1.cpu.shares"), Ok(1024)),
            ("4096\n", Ok(4096)),
            ("4096", Ok(4096)),
            ("4096\r\n", Ok(4096)),
            ("  0 \n", Ok(0)),
            ("18446744073709551615\n", Ok(u64::MAX)),
            ("18446744073709551616\n", Err(1)),
            ("", Err(0)),
            ("\n", Err(0)),
            ("max\n", Err(1)),
            ("-1\n", Err(1)),
            ("+5\n", Err(1)),
            ("12 34\n", Err(1)),
            ("12\0\n", Err(1)),
            ("1.5\n", Err(1)),
        ];
        for (text, want) in cases {
            let got = parse_u64(text).map_err(|e| e.line);
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn limits_map_max_and_v1_sentinels_to_max() {
        let cases: &[(&str, Result<Limit, usize>)] = &[
            ("max\n", Ok(Limit::Max)),
            ("max", Ok(Limit::Max)),
            ("1073741824\n", Ok(Limit::Value(1 << 30))),
            ("0\n", Ok(Limit::Value(0))),
            // v1 memory.limit_in_bytes unlimited, 4 KiB pages (real file).
            (real!("v1.memory.limit_in_bytes"), Ok(Limit::Max)),
            ("9223372036854771712\n", Ok(Limit::Max)),
            // 64 KiB pages, and LONG_MAX itself (older kernels).
            ("9223372036854710272\n", Ok(Limit::Max)),
            ("9223372036854775807\n", Ok(Limit::Max)),
            ("18446744073709551615\n", Ok(Limit::Max)),
            // Just below the sentinel range: a real (absurd) limit.
            (
                "9223372036854710271\n",
                Ok(Limit::Value(9_223_372_036_854_710_271)),
            ),
            // v1 cpu.cfs_quota_us unlimited (real file), memsw.
            (real!("v1.cpu.cfs_quota_us"), Ok(Limit::Max)),
            ("-1\n", Ok(Limit::Max)),
            ("-2\n", Err(1)),
            ("18446744073709551616\n", Err(1)),
            ("MAX\n", Err(1)),
            ("", Err(0)),
            ("max max\n", Err(1)),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_limit(text).map_err(|e| e.line), want, "{text:?}");
        }
    }

    #[test]
    fn cpu_max_parses_quota_and_period() {
        let cases: &[(&str, Result<CpuMax, usize>)] = &[
            (
                "max 100000\n",
                Ok(CpuMax {
                    quota: Limit::Max,
                    period: 100_000,
                }),
            ),
            (
                "50000 100000\n",
                Ok(CpuMax {
                    quota: Limit::Value(50_000),
                    period: 100_000,
                }),
            ),
            ("max\n", Err(1)),
            ("max 0\n", Err(1)),
            ("max 100000 1\n", Err(1)),
            ("50000 max\n", Err(1)),
            ("", Err(0)),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_cpu_max(text).map_err(|e| e.line), want, "{text:?}");
        }
    }

    #[test]
    fn freezer_states_parse() {
        assert_eq!(parse_freezer_state("THAWED\n"), Ok(FreezerState::Thawed));
        assert_eq!(
            parse_freezer_state("FREEZING\n"),
            Ok(FreezerState::Freezing)
        );
        assert_eq!(parse_freezer_state("FROZEN"), Ok(FreezerState::Frozen));
        assert!(parse_freezer_state("frozen\n").is_err());
        assert!(parse_freezer_state("").is_err());
        assert!(parse_freezer_state("FROZEN FROZEN\n").is_err());
    }

    // === flat keyed ===

    #[test]
    fn flat_keyed_skips_bad_lines_and_keeps_good_ones() {
        let text = "a 1\nb -2\nc\nd 3 4\ne 18446744073709551616\n\nf 5";
        let mut seen = Vec::new();
        parse_flat_keyed(text, |k, v| seen.push((k, v))).unwrap();
        assert_eq!(seen, [("a", 1), ("f", 5)]);
    }

    #[test]
    fn flat_keyed_without_any_good_line_is_an_error() {
        assert_eq!(parse_flat_keyed("", |_, _| {}).unwrap_err().line, 0);
        assert_eq!(parse_flat_keyed("\n\n", |_, _| {}).unwrap_err().line, 0);
        assert_eq!(parse_flat_keyed("\nnope\n", |_, _| {}).unwrap_err().line, 2);
    }

    #[test]
    fn v1_memory_stat_real_file_parses_every_key() {
        let mut n = 0;
        let mut rss = None;
        let mut limit = None;
        parse_flat_keyed(real!("v1.memory.stat"), |k, v| {
            n += 1;
            match k {
                "rss" => rss = Some(v),
                "hierarchical_memory_limit" => limit = Some(v),
                _ => {}
            }
        })
        .unwrap();
        assert_eq!(n, real!("v1.memory.stat").lines().count());
        assert!(rss.is_some());
        assert_eq!(limit, Some(9_223_372_036_854_771_712));
    }

    #[test]
    fn v2_memory_stat_with_unknown_keys_parses() {
        // Written after docs.kernel.org cgroup-v2 `memory.stat`, 6.x key set,
        // plus a key no kernel has.
        let text = "anon 10817536\nfile 64872448\nkernel 2719744\nkernel_stack 147456\n\
                    pagetables 364544\nsec_pagetables 0\npercpu 120\nsock 0\nvmalloc 0\n\
                    shmem 0\nzswap 0\nzswapped 0\nfile_mapped 40632320\nfile_dirty 0\n\
                    file_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\n\
                    inactive_anon 10682368\nactive_anon 98304\ninactive_file 30027776\n\
                    active_file 34844672\nunevictable 0\nslab_reclaimable 1709208\n\
                    slab_unreclaimable 420024\nslab 2129232\nworkingset_refault_anon 0\n\
                    pgscan 0\npgsteal 0\npgfault 118932\npgmajfault 457\n\
                    thp_fault_alloc 0\nfuture_key_from_2030 42\n";
        let mut inactive_file = None;
        let mut unknown = None;
        parse_flat_keyed(text, |k, v| match k {
            "inactive_file" => inactive_file = Some(v),
            "future_key_from_2030" => unknown = Some(v),
            _ => {}
        })
        .unwrap();
        assert_eq!(inactive_file, Some(30_027_776));
        assert_eq!(unknown, Some(42));
    }

    #[test]
    fn cpu_stat_parses_real_and_written_files() {
        // Real: the v2 root in hybrid mode has no cpu controller, so only
        // the usage keys (and nice_usec) are there.
        let root = parse_cpu_stat(real!("unified.cpu.stat")).unwrap();
        assert!(root.usage_usec.is_some() && root.user_usec.is_some());
        assert!(root.system_usec.is_some());
        assert_eq!(root.nr_periods, None);
        assert_eq!(root.throttled_usec, None);

        // Written after docs.kernel.org: a v2 cgroup with the cpu controller
        // (6.x adds nice_usec, nr_bursts, burst_usec: ignored).
        let text = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n\
                    nice_usec 0\ncore_sched.force_idle_usec 0\nnr_periods 100\n\
                    nr_throttled 7\nthrottled_usec 89000\nnr_bursts 0\nburst_usec 0\n";
        assert_eq!(
            parse_cpu_stat(text),
            Ok(CpuStat {
                usage_usec: Some(1_234_567),
                user_usec: Some(1_000_000),
                system_usec: Some(234_567),
                nr_periods: Some(100),
                nr_throttled: Some(7),
                throttled_usec: Some(89_000),
            })
        );
        // Truncated last line: the partial key is skipped.
        let cut = parse_cpu_stat("usage_usec 5\nuser_usec 3\nsystem_u").unwrap();
        assert_eq!(cut.usage_usec, Some(5));
        assert_eq!(cut.system_usec, None);
        assert!(parse_cpu_stat("").is_err());
        assert!(parse_cpu_stat("garbage\n").is_err());
        assert!(
            parse_cpu_stat("nr_descendants 0\n").is_err(),
            "foreign keys only"
        );
    }

    #[test]
    fn a_known_key_whose_value_does_not_parse_fails_the_file_with_its_line() {
        let e = parse_cpu_stat("usage_usec 5\nuser_usec 12x4\nsystem_usec 1\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "bad value of a known key"));
        // An unknown key with a non-integer value is a newer kernel's.
        let ok = parse_cpu_stat("usage_usec 5\nsome_new_key 1.5\n").expect("parses");
        assert_eq!(ok.usage_usec, Some(5));
        assert!(parse_memory_events("low 0\nmax -1\n").is_err());
        assert!(parse_cgroup_events("populated x\n").is_err());
        assert_eq!(
            parse_cgroup_events("populated 2\n").map(|e| e.populated),
            Ok(None),
            "a number that is not a state stays absent"
        );
    }

    #[test]
    fn cpu_stat_v1_parses_real_file_and_ignores_bursts() {
        assert_eq!(
            parse_cpu_stat_v1(real!("v1.cpu.stat")),
            Ok(CpuStatV1 {
                nr_periods: Some(0),
                nr_throttled: Some(0),
                throttled_time: Some(0),
            })
        );
        let text = "nr_periods 3051\nnr_throttled 412\nthrottled_time 58118451903\n\
                    nr_bursts 0\nburst_time 0\n";
        assert_eq!(
            parse_cpu_stat_v1(text),
            Ok(CpuStatV1 {
                nr_periods: Some(3051),
                nr_throttled: Some(412),
                throttled_time: Some(58_118_451_903),
            })
        );
    }

    #[test]
    fn cpuacct_stat_parses_real_file() {
        let s = parse_cpuacct_stat(real!("v1.cpuacct.stat")).unwrap();
        assert!(s.user.is_some() && s.system.is_some());
        assert_eq!(
            parse_cpuacct_stat("user 86082\r\nsystem 27659\r\n"),
            Ok(CpuacctStat {
                user: Some(86_082),
                system: Some(27_659),
            })
        );
    }

    #[test]
    fn memory_events_parse_with_and_without_oom_group_kill() {
        let text = "low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(
            parse_memory_events(text),
            Ok(MemoryEvents {
                low: Some(0),
                high: Some(12),
                max: Some(3),
                oom: Some(1),
                oom_kill: Some(1),
                oom_group_kill: Some(0),
            })
        );
        // Before 5.17: no oom_group_kill line, and no trailing newline.
        let old = parse_memory_events("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0").unwrap();
        assert_eq!(old.oom_group_kill, None);
        assert_eq!(old.oom_kill, Some(0));
    }

    #[test]
    fn oom_control_parses_real_file() {
        assert_eq!(
            parse_oom_control(real!("v1.memory.oom_control")),
            Ok(OomControl {
                oom_kill_disable: Some(0),
                under_oom: Some(0),
                oom_kill: Some(0),
            })
        );
        // Before 4.13: no oom_kill.
        let old = parse_oom_control("oom_kill_disable 1\nunder_oom 1\n").unwrap();
        assert_eq!(old.oom_kill, None);
        assert_eq!(old.under_oom, Some(1));
    }

    #[test]
    fn cgroup_events_parse_to_bools() {
        assert_eq!(
            parse_cgroup_events("populated 1\nfrozen 0\n"),
            Ok(CgroupEvents {
                populated: Some(true),
                frozen: Some(false),
            })
        );
        // Before 5.2: no frozen line.
        assert_eq!(
            parse_cgroup_events("populated 0\n"),
            Ok(CgroupEvents {
                populated: Some(false),
                frozen: None,
            })
        );
        assert_eq!(
            parse_cgroup_events("populated 2\n").unwrap().populated,
            None
        );
        assert!(parse_cgroup_events("").is_err());
    }

    // === PSI ===

    #[test]
    fn psi_real_files_parse_with_both_lines() {
        for text in [
            real!("unified.cpu.pressure"),
            real!("unified.io.pressure"),
            real!("unified.memory.pressure"),
            real!("proc.pressure.cpu"),
            real!("proc.pressure.io"),
            real!("proc.pressure.memory"),
        ] {
            let psi = parse_psi(text).unwrap();
            assert!(psi.some.is_some() && psi.full.is_some(), "{text:?}");
        }
        let io = parse_psi(real!("proc.pressure.io")).unwrap();
        assert_eq!(io.some, Some(psi_line(2.14, 2.64, 2.22, 34_318_056)));
        assert_eq!(io.full, Some(psi_line(1.85, 1.73, 1.41, 26_782_558)));
    }

    #[test]
    fn cpu_pressure_without_full_line_parses() {
        // Before 5.13 cpu.pressure had only `some`.
        let psi = parse_psi("some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n").unwrap();
        assert_eq!(psi.some, Some(psi_line(1.5, 0.25, 0.0, 123_456)));
        assert_eq!(psi.full, None);
    }

    #[test]
    fn irq_pressure_with_only_full_line_parses() {
        // /proc/pressure/irq (6.1+, CONFIG_IRQ_TIME_ACCOUNTING) has only `full`.
        let psi = parse_psi("full avg10=0.00 avg60=0.00 avg300=0.00 total=3791044").unwrap();
        assert_eq!(psi.some, None);
        assert_eq!(psi.full, Some(psi_line(0.0, 0.0, 0.0, 3_791_044)));
    }

    #[test]
    fn psi_edge_cases() {
        let ok = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n";
        let cases: &[(&str, Result<(), usize>)] = &[
            // Unknown prefixes and unknown fields are ignored.
            (
                "bogus x=1\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
                Ok(()),
            ),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 avg1=9.99 total=1\n",
                Ok(()),
            ),
            ("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\r\n", Ok(())),
            (ok, Ok(())),
            // cgroup.pressure is the PSI on/off switch, not a PSI file.
            (real!("unified.cgroup.pressure"), Err(0)),
            ("", Err(0)),
            ("garbage\n", Err(0)),
            // Truncated lines.
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg6",
                Err(2),
            ),
            ("some avg10=0.00 avg60=0.00 avg300=0.00 total=\n", Err(1)),
            ("some\n", Err(1)),
            // Values f64::from_str would take but the kernel never writes.
            ("some avg10=inf avg60=0.00 avg300=0.00 total=1\n", Err(1)),
            ("some avg10=NaN avg60=0.00 avg300=0.00 total=1\n", Err(1)),
            ("some avg10=-1.00 avg60=0.00 avg300=0.00 total=1\n", Err(1)),
            ("some avg10=1e3 avg60=0.00 avg300=0.00 total=1\n", Err(1)),
            ("some avg10=.5 avg60=0.00 avg300=0.00 total=1\n", Err(1)),
            ("some avg10=1.2.3 avg60=0.00 avg300=0.00 total=1\n", Err(1)),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616\n",
                Err(1),
            ),
            ("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\0\n", Err(1)),
        ];
        for (text, want) in cases {
            assert_eq!(
                &parse_psi(text).map(|_| ()).map_err(|e| e.line),
                want,
                "{text:?}"
            );
        }
    }

    // === io ===

    #[test]
    fn io_stat_parses_devices_and_empty_loop_lines() {
        // Written after docs.kernel.org `io.stat`; `7:0 ` is what an idle
        // loop device looks like (trailing space included), and iocost adds
        // `cost.*` keys.
        let text = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
                    8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 \
                    dios=3021 cost.vrate=135.04 cost.usage=8209 cost.wait=0 cost.indebt=0\n\
                    7:0 \n\
                    253:1 rbytes=4096 rios=1\n";
        let got = parse_io_stat(text).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            IoStatEntry {
                dev: dev(8, 16),
                rbytes: Some(1_459_200),
                wbytes: Some(314_773_504),
                rios: Some(192),
                wios: Some(353),
                dbytes: Some(0),
                dios: Some(0),
            }
        );
        assert_eq!(got[1].dios, Some(3021));
        assert_eq!(
            got[2],
            IoStatEntry {
                dev: dev(7, 0),
                ..IoStatEntry::default()
            }
        );
        assert_eq!(got[3].rbytes, Some(4096));
        assert_eq!(got[3].wbytes, None);
    }

    #[test]
    fn io_stat_edge_cases() {
        // An idle cgroup's io.stat is empty.
        assert_eq!(parse_io_stat(""), Ok(vec![]));
        assert_eq!(parse_io_stat("\n"), Ok(vec![]));
        assert_eq!(parse_io_stat("garbage\n").unwrap_err().line, 1);
        // Bad device lines are skipped, good ones kept; no trailing newline.
        let got = parse_io_stat("x:y rbytes=1\n8:0 rbytes=18446744073709551616 wbytes=2").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rbytes, None, "overflow leaves the field absent");
        assert_eq!(got[0].wbytes, Some(2));
        // Truncated mid-key: the partial key is ignored.
        let got = parse_io_stat("8:0 rbytes=1 wbyt").unwrap();
        assert_eq!(got[0].rbytes, Some(1));
        assert_eq!(got[0].wbytes, None);
        assert!(parse_io_stat("4294967296:0 rbytes=1\n").is_err());
    }

    #[test]
    fn io_max_parses_limits() {
        let text = "8:16 rbps=2097152 wbps=max riops=max wiops=120\n\
                    8:0 rbps=max wbps=max riops=1000 wiops=max\n";
        assert_eq!(
            parse_io_max(text),
            Ok(vec![
                IoMaxEntry {
                    dev: dev(8, 16),
                    rbps: Limit::Value(2_097_152),
                    wbps: Limit::Max,
                    riops: Limit::Max,
                    wiops: Limit::Value(120),
                },
                IoMaxEntry {
                    dev: dev(8, 0),
                    rbps: Limit::Max,
                    wbps: Limit::Max,
                    riops: Limit::Value(1000),
                    wiops: Limit::Max,
                },
            ])
        );
        assert_eq!(parse_io_max(""), Ok(vec![]));
        // A bad value drops the whole line.
        assert!(parse_io_max("8:0 rbps=lots wbps=max riops=max wiops=max\n").is_err());
        let got = parse_io_max("8:0 rbps=x\n8:1 rbps=1\n").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].dev, dev(8, 1));
    }

    #[test]
    fn io_weight_parses_v2_and_v1() {
        assert_eq!(
            parse_io_weight("default 100\n8:0 200\n8:16 50\n"),
            Ok(IoWeight {
                default: Some(100),
                devices: vec![(dev(8, 0), 200), (dev(8, 16), 50)],
            })
        );
        assert_eq!(
            parse_io_weight("500\n"),
            Ok(IoWeight {
                default: Some(500),
                devices: vec![],
            })
        );
        // v1 blkio.weight_device with no overrides.
        assert_eq!(parse_io_weight(""), Ok(IoWeight::default()));
        assert_eq!(parse_io_weight("default\n").unwrap_err().line, 1);
        assert_eq!(parse_io_weight("default max\n").unwrap_err().line, 1);
    }

    #[test]
    fn blkio_throttle_parses_read_and_write_per_device() {
        // Real root files on an idle host: only the Total line.
        assert_eq!(
            parse_blkio_throttle(real!("v1.blkio.throttle.io_service_bytes")),
            Ok(vec![])
        );
        assert_eq!(
            parse_blkio_throttle(real!("v1.blkio.throttle.io_serviced")),
            Ok(vec![])
        );
        // Written after the v1 blkio docs (4.x+ rows, Discard since 4.19).
        let text = "8:16 Read 4096\n8:16 Write 1048576\n8:16 Sync 1048576\n8:16 Async 4096\n\
                    8:16 Discard 0\n8:16 Total 1052672\n8:0 Read 0\n8:0 Write 8192\n\
                    8:0 Sync 0\n8:0 Async 8192\n8:0 Discard 0\n8:0 Total 8192\nTotal 1060864\n";
        assert_eq!(
            parse_blkio_throttle(text),
            Ok(vec![
                BlkioEntry {
                    dev: dev(8, 16),
                    read: Some(4096),
                    write: Some(1_048_576),
                },
                BlkioEntry {
                    dev: dev(8, 0),
                    read: Some(0),
                    write: Some(8192),
                },
            ])
        );
        // Interleaved devices still merge; truncated tail skipped.
        let got = parse_blkio_throttle("8:0 Read 1\n8:1 Read 2\n8:0 Write 3\n8:1 Wri").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].write, Some(3));
        assert_eq!(got[1].write, None);
        assert_eq!(parse_blkio_throttle("").unwrap_err().line, 0);
        assert_eq!(parse_blkio_throttle("nonsense here\n").unwrap_err().line, 1);
    }

    #[test]
    fn blkio_device_limits_parse() {
        assert_eq!(
            parse_blkio_device_limits(real!("v1.blkio.throttle.read_bps_device")),
            Ok(vec![])
        );
        assert_eq!(
            parse_blkio_device_limits("8:0 1048576\n8:16 10\n"),
            Ok(vec![(dev(8, 0), 1_048_576), (dev(8, 16), 10)])
        );
        assert!(parse_blkio_device_limits("8:0\n").is_err());
        assert!(parse_blkio_device_limits("8:0 1 2\n").is_err());
    }

    // === cpuset ===

    #[test]
    fn cpuset_lists_count_cpus() {
        let cases: &[(&str, Result<u32, ()>)] = &[
            (real!("v1.cpuset.cpus"), Ok(2)),
            (real!("v1.cpuset.mems"), Ok(1)),
            ("0-3,8,10-11\n", Ok(7)),
            ("0\n", Ok(1)),
            ("5", Ok(1)),
            ("0-0\n", Ok(1)),
            ("0-127\n", Ok(128)),
            ("0-999999\n", Ok(1_000_000)),
            ("", Ok(0)),
            ("\n", Ok(0)),
            ("3-0\n", Err(())),
            ("0-3,2\n", Err(())),
            ("4,2\n", Err(())),
            ("0-1000000\n", Err(())),
            ("0-4294967295\n", Err(())),
            ("0-4294967296\n", Err(())),
            ("0-7:2/4\n", Err(())),
            ("0-3,\n", Err(())),
            (",\n", Err(())),
            ("-\n", Err(())),
            ("0--3\n", Err(())),
            ("a-b\n", Err(())),
            ("0-3 8\n", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_cpuset_count(text).map_err(|_| ()), want, "{text:?}");
        }
    }

    // === numa_stat ===

    #[test]
    fn numa_stat_v1_real_file_skips_hierarchical() {
        let got = parse_numa_stat(real!("v1.memory.numa_stat")).unwrap();
        let names: Vec<_> = got.entries.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["total", "file", "anon", "unevictable"]);
        for (_, nodes) in &got.entries {
            assert_eq!(nodes.len(), 1);
            assert_eq!(nodes[0].0, 0);
        }
    }

    #[test]
    fn numa_stat_v2_parses_nodes() {
        // Written after docs.kernel.org `memory.numa_stat`, two nodes.
        let text = "anon 2670592 N0=2670592 N1=0\n";
        assert!(parse_numa_stat(text).is_err(), "value without node");
        let text = "anon N0=2670592 N1=0\nfile N0=1048576 N1=4096\nkernel_stack N0=32768 N1=0\n\
                    workingset_refault_anon N0=0 N1=0\n";
        let got = parse_numa_stat(text).unwrap();
        assert_eq!(got.entries.len(), 4);
        assert_eq!(got.entries[0], ("anon", vec![(0, 2_670_592), (1, 0)]));
        assert_eq!(got.entries[1], ("file", vec![(0, 1_048_576), (1, 4096)]));
        // Bad lines are skipped, good ones kept.
        let got = parse_numa_stat("anon N0=1 Nx=2\nfile N0=3\ntotal=x N0=1\n").unwrap();
        assert_eq!(got.entries, vec![("file", vec![(0, 3)])]);
        assert!(parse_numa_stat("").is_err());
        assert!(parse_numa_stat("anon\n").is_err());
    }

    // === partitions ===

    #[test]
    fn partitions_parse_real_file() {
        assert_eq!(
            parse_partitions(real!("proc.partitions")),
            vec![Partition {
                dev: dev(254, 0),
                name: "vda".into(),
            }]
        );
        let text = "major minor  #blocks  name\n\n   8        0   20971520 sda\n   \
                    8        1   20969472 sda1\n 259        0  500107608 nvme0n1\n   7  ";
        let got = parse_partitions(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].dev, dev(259, 0));
        assert_eq!(got[2].name, "nvme0n1");
        assert!(parse_partitions("").is_empty());
    }
}
