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

pub use crate::kernel::ParseError;

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

/// `memory.numa_stat` rows with owned names: `(stat, [(node, value)])`.
pub type NumaRows = Vec<(Box<str>, Vec<(u32, u64)>)>;

/// A `blkio.throttle.*_device` file: `(device, value)` per line.
pub type DeviceLimits = Vec<(DevNum, u64)>;

impl NumaStat<'_> {
    /// The rows with owned names, to keep beyond the read buffer.
    pub fn into_owned(self) -> NumaRows {
        self.entries
            .into_iter()
            .map(|(name, nodes)| (Box::from(name), nodes))
            .collect()
    }
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

// === memory.stat: in parse/memory.rs ===

mod memory;
pub use memory::*;

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
pub fn parse_blkio_device_limits(text: &str) -> Result<DeviceLimits, ParseError> {
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
/// lines and malformed rows are skipped. Not procfs-core's `PartitionEntry`:
/// it holds minors in a `u16` (the kernel's are 20 bits) and fails the whole
/// file on one bad row.
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
/// Rows are parsed by procfs-core (`DiskStat::from_line`); infallible:
/// malformed rows are skipped.
pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    let mut rows: Vec<DiskStat> = text
        .lines()
        .filter_map(|line| procfs::DiskStat::from_line(line).ok())
        .filter_map(|d| {
            Some(DiskStat {
                dev: DevNum {
                    major: u32::try_from(d.major).ok()?,
                    minor: u32::try_from(d.minor).ok()?,
                },
                name: d.name,
                reads: d.reads,
                read_bytes: d.sectors_read.saturating_mul(512),
                writes: d.writes,
                write_bytes: d.sectors_written.saturating_mul(512),
            })
        })
        .collect();
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
mod tests;
