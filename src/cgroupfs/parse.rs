//! Pure parsers, one per kernel file format. No I/O here: every function
//! takes the file's text and returns typed values, so each is tested on real
//! file contents and fuzzed.
//!
//! Conventions: fields are named after the kernel's keys; unknown keys and
//! unknown lines are ignored (new kernels add them); a value the kernel does
//! not give is `None` (an absent series), never `0` or `-1`.
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

/// A block device as `io.stat` and `blkio.*` name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// `freezer.state` (v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    Freezing,
    Frozen,
}

/// A single unsigned integer (`memory.current`, `pids.current`, ...).
pub fn parse_u64(text: &str) -> Result<u64, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseError::new(1, "empty"));
    }
    t.parse()
        .map_err(|_| ParseError::new(1, "not an unsigned integer"))
}

/// A v1 "unlimited" value: `PAGE_COUNTER_MAX` pages printed in bytes
/// (`i64::MAX` rounded down to the page size, 9223372036854771712 with
/// 4 KiB pages) or `i64::MAX` itself.
const V1_UNLIMITED_MIN: u64 = 0x7FFF_FFFF_FFFF_F000;

/// A single value that may be `max` (`memory.max`, `pids.max`, ...). v1's
/// "unlimited" (`memory.limit_in_bytes` near `i64::MAX` rounded down to a
/// page, `cpu.cfs_quota_us` = `-1`) is also `Limit::Max`.
pub fn parse_limit(text: &str) -> Result<Limit, ParseError> {
    let t = text.trim();
    match t {
        "" => Err(ParseError::new(1, "empty")),
        "max" | "-1" => Ok(Limit::Max),
        _ => {
            let v: u64 = t
                .parse()
                .map_err(|_| ParseError::new(1, "not a number or max"))?;
            if v >= V1_UNLIMITED_MIN {
                Ok(Limit::Max)
            } else {
                Ok(Limit::Value(v))
            }
        }
    }
}

/// `cpu.max`.
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, ParseError> {
    let mut it = text.split_ascii_whitespace();
    let quota = match it.next() {
        Some("max") => Limit::Max,
        Some(q) => Limit::Value(
            q.parse()
                .map_err(|_| ParseError::new(1, "quota is not a number or max"))?,
        ),
        None => return Err(ParseError::new(1, "empty")),
    };
    let period = match it.next() {
        Some(p) => p
            .parse()
            .map_err(|_| ParseError::new(1, "period is not a number"))?,
        // Kernel quirk: a bare quota is accepted on write; the period then
        // defaults to 100 ms.
        None => 100_000,
    };
    Ok(CpuMax { quota, period })
}

/// Flat keyed files (`key value` per line): an iterator-free helper that
/// calls `f(key, value)` per well-formed line and skips lines whose value is
/// not a u64. Errors only on a file with no well-formed line at all.
pub fn parse_flat_keyed<'a>(
    text: &'a str,
    mut f: impl FnMut(&'a str, u64),
) -> Result<(), ParseError> {
    let mut any = false;
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if let Ok(v) = v.parse::<u64>() {
            any = true;
            f(k, v);
        }
    }
    if any {
        Ok(())
    } else {
        Err(ParseError::new(0, "no key value line"))
    }
}

pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, ParseError> {
    let mut s = CpuStat::default();
    parse_flat_keyed(text, |k, v| match k {
        "usage_usec" => s.usage_usec = Some(v),
        "user_usec" => s.user_usec = Some(v),
        "system_usec" => s.system_usec = Some(v),
        "nr_periods" => s.nr_periods = Some(v),
        "nr_throttled" => s.nr_throttled = Some(v),
        "throttled_usec" => s.throttled_usec = Some(v),
        _ => {}
    })?;
    Ok(s)
}

pub fn parse_cpu_stat_v1(text: &str) -> Result<CpuStatV1, ParseError> {
    let mut s = CpuStatV1::default();
    parse_flat_keyed(text, |k, v| match k {
        "nr_periods" => s.nr_periods = Some(v),
        "nr_throttled" => s.nr_throttled = Some(v),
        "throttled_time" => s.throttled_time = Some(v),
        _ => {}
    })?;
    Ok(s)
}

pub fn parse_cpuacct_stat(text: &str) -> Result<CpuacctStat, ParseError> {
    let mut s = CpuacctStat::default();
    parse_flat_keyed(text, |k, v| match k {
        "user" => s.user = Some(v),
        "system" => s.system = Some(v),
        _ => {}
    })?;
    Ok(s)
}

pub fn parse_memory_events(text: &str) -> Result<MemoryEvents, ParseError> {
    let mut s = MemoryEvents::default();
    parse_flat_keyed(text, |k, v| match k {
        "low" => s.low = Some(v),
        "high" => s.high = Some(v),
        "max" => s.max = Some(v),
        "oom" => s.oom = Some(v),
        "oom_kill" => s.oom_kill = Some(v),
        "oom_group_kill" => s.oom_group_kill = Some(v),
        _ => {}
    })?;
    Ok(s)
}

pub fn parse_oom_control(text: &str) -> Result<OomControl, ParseError> {
    let mut s = OomControl::default();
    parse_flat_keyed(text, |k, v| match k {
        "oom_kill_disable" => s.oom_kill_disable = Some(v),
        "under_oom" => s.under_oom = Some(v),
        "oom_kill" => s.oom_kill = Some(v),
        _ => {}
    })?;
    Ok(s)
}

pub fn parse_cgroup_events(text: &str) -> Result<CgroupEvents, ParseError> {
    let mut s = CgroupEvents::default();
    parse_flat_keyed(text, |k, v| match k {
        "populated" => s.populated = Some(v != 0),
        "frozen" => s.frozen = Some(v != 0),
        _ => {}
    })?;
    Ok(s)
}

fn parse_psi_line(rest: &str, line: usize) -> Result<PsiLine, ParseError> {
    let mut avg10 = None;
    let mut avg60 = None;
    let mut avg300 = None;
    let mut total = None;
    for field in rest.split_ascii_whitespace() {
        let Some((k, v)) = field.split_once('=') else {
            return Err(ParseError::new(line, "field without ="));
        };
        match k {
            "avg10" => avg10 = v.parse::<f64>().ok().filter(|x| x.is_finite()),
            "avg60" => avg60 = v.parse::<f64>().ok().filter(|x| x.is_finite()),
            "avg300" => avg300 = v.parse::<f64>().ok().filter(|x| x.is_finite()),
            "total" => {
                total = Some(
                    v.parse::<u64>()
                        .map_err(|_| ParseError::new(line, "total is not an integer"))?,
                )
            }
            _ => {}
        }
    }
    match (avg10, avg60, avg300, total) {
        (Some(avg10), Some(avg60), Some(avg300), Some(total)) => Ok(PsiLine {
            avg10,
            avg60,
            avg300,
            total,
        }),
        _ => Err(ParseError::new(
            line,
            "missing avg10, avg60, avg300 or total",
        )),
    }
}

/// PSI files. Unknown line prefixes are ignored; a file with neither `some`
/// nor `full` is an error.
pub fn parse_psi(text: &str) -> Result<Psi, ParseError> {
    let mut p = Psi::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if let Some(rest) = line.strip_prefix("some ") {
            p.some = Some(parse_psi_line(rest, line_no)?);
        } else if let Some(rest) = line.strip_prefix("full ") {
            p.full = Some(parse_psi_line(rest, line_no)?);
        }
    }
    if p.some.is_none() && p.full.is_none() {
        return Err(ParseError::new(0, "neither some nor full line"));
    }
    Ok(p)
}

fn parse_dev(s: &str, line: usize) -> Result<DevNum, ParseError> {
    let (ma, mi) = s
        .split_once(':')
        .ok_or(ParseError::new(line, "device is not major:minor"))?;
    Ok(DevNum {
        major: ma
            .parse()
            .map_err(|_| ParseError::new(line, "bad major number"))?,
        minor: mi
            .parse()
            .map_err(|_| ParseError::new(line, "bad minor number"))?,
    })
}

/// v2 `io.stat` (nested keyed). Lines with no keys (`7:0 ` for an idle
/// loop device) give an entry with all fields `None`.
pub fn parse_io_stat(text: &str) -> Result<Vec<IoStatEntry>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(dev) = it.next() else { continue };
        let mut e = IoStatEntry {
            dev: parse_dev(dev, i + 1)?,
            ..IoStatEntry::default()
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => e.rbytes = Some(v),
                "wbytes" => e.wbytes = Some(v),
                "rios" => e.rios = Some(v),
                "wios" => e.wios = Some(v),
                "dbytes" => e.dbytes = Some(v),
                "dios" => e.dios = Some(v),
                _ => {}
            }
        }
        out.push(e);
    }
    Ok(out)
}

fn limit_field(v: &str, line: usize) -> Result<Limit, ParseError> {
    if v == "max" {
        Ok(Limit::Max)
    } else {
        v.parse()
            .map(Limit::Value)
            .map_err(|_| ParseError::new(line, "limit is not a number or max"))
    }
}

pub fn parse_io_max(text: &str) -> Result<Vec<IoMaxEntry>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(dev) = it.next() else { continue };
        let mut e = IoMaxEntry {
            dev: parse_dev(dev, i + 1)?,
            rbps: Limit::Max,
            wbps: Limit::Max,
            riops: Limit::Max,
            wiops: Limit::Max,
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "rbps" => e.rbps = limit_field(v, i + 1)?,
                "wbps" => e.wbps = limit_field(v, i + 1)?,
                "riops" => e.riops = limit_field(v, i + 1)?,
                "wiops" => e.wiops = limit_field(v, i + 1)?,
                _ => {}
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// v2 `io.weight` (`default 100` then `8:0 200` lines) and v1
/// `blkio.weight` (a bare number, returned as the default).
pub fn parse_io_weight(text: &str) -> Result<IoWeight, ParseError> {
    let mut w = IoWeight::default();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        match (it.next(), it.next()) {
            (Some("default"), Some(v)) => {
                w.default = Some(
                    v.parse()
                        .map_err(|_| ParseError::new(i + 1, "bad default weight"))?,
                )
            }
            (Some(bare), None) => {
                w.default = Some(
                    bare.parse()
                        .map_err(|_| ParseError::new(i + 1, "bad weight"))?,
                )
            }
            (Some(dev), Some(v)) => {
                let dev = parse_dev(dev, i + 1)?;
                w.devices.push((
                    dev,
                    v.parse()
                        .map_err(|_| ParseError::new(i + 1, "bad device weight"))?,
                ));
            }
            _ => {}
        }
    }
    if w.default.is_none() && w.devices.is_empty() {
        return Err(ParseError::new(0, "empty"));
    }
    Ok(w)
}

/// v1 `blkio.throttle.io_service_bytes` and `blkio.throttle.io_serviced`
/// (`8:0 Read 123` rows; `Total` rows and the final `Total N` ignored).
pub fn parse_blkio_throttle(text: &str) -> Result<Vec<BlkioEntry>, ParseError> {
    let mut out: Vec<BlkioEntry> = Vec::new();
    let mut saw_total = false;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some("Total"), Some(_), None) => saw_total = true,
            (Some(dev), Some(op), Some(v)) => {
                let dev = parse_dev(dev, i + 1)?;
                let v: u64 = v
                    .parse()
                    .map_err(|_| ParseError::new(i + 1, "bad counter"))?;
                let idx = match out.iter().position(|e| e.dev == dev) {
                    Some(p) => p,
                    None => {
                        out.push(BlkioEntry {
                            dev,
                            read: None,
                            write: None,
                        });
                        out.len() - 1
                    }
                };
                match op {
                    "Read" => out[idx].read = Some(v),
                    "Write" => out[idx].write = Some(v),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if out.is_empty() && !saw_total {
        return Err(ParseError::new(0, "no device rows and no Total"));
    }
    Ok(out)
}

/// v1 `blkio.throttle.{read,write}_{bps,iops}_device`: `8:0 1048576` per
/// line; an empty file means no limits.
pub fn parse_blkio_device_limits(text: &str) -> Result<Vec<(DevNum, u64)>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let (Some(dev), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        out.push((
            parse_dev(dev, i + 1)?,
            v.parse().map_err(|_| ParseError::new(i + 1, "bad limit"))?,
        ));
    }
    Ok(out)
}

/// Upper bound on CPU numbers in a list: far above any real machine, low
/// enough that a corrupt range cannot make us count for long.
const MAX_CPU: u32 = 1 << 20;

/// `cpuset.cpus.effective` / `cpuset.cpus`: a CPU list (`0-3,8,10-11`),
/// returned as the count of CPUs. Empty means none (0).
pub fn parse_cpuset_count(text: &str) -> Result<u32, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    let mut n: u32 = 0;
    for part in t.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a
            .parse()
            .map_err(|_| ParseError::new(1, "bad CPU number"))?;
        let b: u32 = b
            .parse()
            .map_err(|_| ParseError::new(1, "bad CPU number"))?;
        if a > b || b >= MAX_CPU {
            return Err(ParseError::new(1, "bad CPU range"));
        }
        n = n.saturating_add(b - a + 1);
    }
    Ok(n)
}

/// v2 `memory.numa_stat` (`anon N0=1 N1=2`) and v1 (`total=3 N0=1 N1=2`,
/// `hierarchical_*` lines ignored).
pub fn parse_numa_stat(text: &str) -> Result<NumaStat<'_>, ParseError> {
    let mut out = NumaStat::default();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(first) = it.next() else { continue };
        // v1: `total=3 N0=1`; v2: `anon N0=1`.
        let (name, nodes_from_first) = match first.split_once('=') {
            Some((n, _)) => (n, true),
            None => (first, false),
        };
        if name.starts_with("hierarchical_") {
            continue;
        }
        let _ = nodes_from_first;
        let mut nodes = Vec::new();
        for kv in it {
            let Some((n, v)) = kv.split_once('=') else {
                continue;
            };
            let Some(node) = n.strip_prefix('N').and_then(|x| x.parse::<u32>().ok()) else {
                continue;
            };
            nodes.push((
                node,
                v.parse()
                    .map_err(|_| ParseError::new(i + 1, "bad node value"))?,
            ));
        }
        out.entries.push((name, nodes));
    }
    if out.entries.is_empty() {
        return Err(ParseError::new(0, "empty"));
    }
    Ok(out)
}

pub fn parse_freezer_state(text: &str) -> Result<FreezerState, ParseError> {
    match text.trim() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        _ => Err(ParseError::new(1, "not THAWED, FREEZING or FROZEN")),
    }
}

/// `/proc/partitions`: maps device numbers to names for the `device` label.
pub fn parse_partitions(text: &str) -> Vec<Partition> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            let major = it.next()?.parse().ok()?;
            let minor = it.next()?.parse().ok()?;
            let _blocks = it.next()?;
            let name = it.next()?;
            Some(Partition {
                dev: DevNum { major, minor },
                name: name.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from this project's hybrid development machine (Linux 6.18).
    const CPU_PRESSURE: &str = "some avg10=0.00 avg60=0.43 avg300=0.54 total=19419991\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    const IO_PRESSURE: &str = "some avg10=0.03 avg60=0.15 avg300=0.25 total=9891610\nfull avg10=0.01 avg60=0.12 avg300=0.24 total=9326581\n";
    const V1_MEMORY_STAT: &str = "cache 9502720\nrss 7770112\nrss_huge 0\nshmem 9084928\nmapped_file 7573504\ndirty 36864\nwriteback 0\nworkingset_refault_anon 0\nworkingset_refault_file 275\nswap 0\nhierarchical_memory_limit 9223372036854771712\ntotal_cache 1454329856\ntotal_inactive_file 559964160\n";
    const V1_OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
    const V1_CPU_STAT: &str =
        "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n";
    const UNIFIED_CPU_STAT: &str =
        "usage_usec 322137034\nuser_usec 233417489\nsystem_usec 88719545\nnice_usec 0\n";
    const PARTITIONS: &str = "major minor  #blocks  name\n\n 254        0  268435456 vda\n";
    // In the shapes of cgroup-v2.rst as a v2 host prints them.
    const V2_CPU_STAT: &str = "usage_usec 1186093\nuser_usec 745066\nsystem_usec 441027\ncore_sched.force_idle_usec 0\nnr_periods 120\nnr_throttled 9\nthrottled_usec 313581\nnr_bursts 0\nburst_usec 0\n";
    const IO_STAT: &str = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n7:0 \n";

    #[test]
    fn psi_with_and_without_full_and_irq_full_only() {
        let p = parse_psi(CPU_PRESSURE).expect("cpu");
        assert_eq!(p.some.map(|l| l.total), Some(19419991));
        assert_eq!(p.some.map(|l| l.avg60), Some(0.43));
        assert_eq!(p.full.map(|l| l.total), Some(0));
        let io = parse_psi(IO_PRESSURE).expect("io");
        assert_eq!(io.full.map(|l| l.total), Some(9326581));
        // cpu.pressure before 5.13: no full line.
        let old = parse_psi("some avg10=1.00 avg60=0.50 avg300=0.10 total=1234\n").expect("old");
        assert!(old.full.is_none());
        // irq.pressure has only full.
        let irq = parse_psi("full avg10=0.00 avg60=0.00 avg300=0.00 total=8494").expect("irq");
        assert!(irq.some.is_none() && irq.full.map(|l| l.total) == Some(8494));
        // Unknown prefixes are ignored.
        assert!(
            parse_psi("future avg10=1\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=1\n").is_ok()
        );
        assert!(parse_psi("").is_err());
        assert!(parse_psi("some avg10=0.00 total=x\n").is_err());
        assert!(
            parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 tot").is_err(),
            "truncated line"
        );
    }

    #[test]
    fn cpu_stat_v2_v1_and_unified_without_controller() {
        let c = parse_cpu_stat(V2_CPU_STAT).expect("v2");
        assert_eq!(
            (c.usage_usec, c.nr_periods, c.nr_throttled, c.throttled_usec),
            (Some(1186093), Some(120), Some(9), Some(313581))
        );
        let u = parse_cpu_stat(UNIFIED_CPU_STAT).expect("unified");
        assert_eq!(u.usage_usec, Some(322137034));
        assert_eq!(u.nr_periods, None, "absent without the cpu controller");
        let v1 = parse_cpu_stat_v1(V1_CPU_STAT).expect("v1");
        assert_eq!(v1.throttled_time, Some(0));
        assert_eq!(
            parse_cpuacct_stat("user 24100\nsystem 9159\n")
                .expect("cpuacct")
                .user,
            Some(24100)
        );
        assert!(parse_cpu_stat("garbage\n").is_err());
        assert!(parse_cpu_stat("").is_err());
    }

    #[test]
    fn limits_max_and_v1_sentinels() {
        assert_eq!(parse_limit("max\n"), Ok(Limit::Max));
        assert_eq!(parse_limit("-1\n"), Ok(Limit::Max));
        assert_eq!(parse_limit("9223372036854771712\n"), Ok(Limit::Max));
        assert_eq!(parse_limit("9223372036854775807"), Ok(Limit::Max));
        assert_eq!(parse_limit("268435456\n"), Ok(Limit::Value(268435456)));
        assert!(parse_limit("").is_err());
        assert!(
            parse_limit("99999999999999999999999").is_err(),
            "overflow is an error, not a panic"
        );
        assert_eq!(
            parse_cpu_max("max 100000\n").expect("max").quota,
            Limit::Max
        );
        assert_eq!(
            parse_cpu_max("150000 100000\n").expect("q"),
            CpuMax {
                quota: Limit::Value(150000),
                period: 100000
            }
        );
        assert!(parse_cpu_max("abc 100000").is_err());
        assert_eq!(parse_u64("4096\n"), Ok(4096));
        assert!(parse_u64("").is_err() && parse_u64("-3").is_err());
    }

    #[test]
    fn flat_keyed_skips_unknown_and_malformed_lines() {
        let mut seen = Vec::new();
        parse_flat_keyed(V1_MEMORY_STAT, |k, v| seen.push((k, v))).expect("stat");
        assert!(seen.contains(&("total_inactive_file", 559964160)));
        assert!(seen.contains(&("hierarchical_memory_limit", 9223372036854771712)));
        let mut n = 0;
        parse_flat_keyed("anon 1\nweird line here\nfile x\nshmem 2", |_, _| n += 1)
            .expect("partial");
        assert_eq!(n, 2);
        let ev = parse_memory_events(
            "low 0\nhigh 3\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\nsomething_new 5\n",
        )
        .expect("events");
        assert_eq!(
            (ev.high, ev.oom_kill, ev.oom_group_kill),
            (Some(3), Some(1), Some(0))
        );
        let oc = parse_oom_control(V1_OOM_CONTROL).expect("oom_control");
        assert_eq!(oc.oom_kill, Some(0));
        assert_eq!(
            parse_cgroup_events("populated 1\nfrozen 0\n")
                .expect("events")
                .populated,
            Some(true)
        );
    }

    #[test]
    fn io_stat_max_and_weight() {
        let s = parse_io_stat(IO_STAT).expect("io.stat");
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].dev, DevNum { major: 8, minor: 0 });
        assert_eq!(s[1].rbytes, Some(90430464));
        assert_eq!(s[2].rbytes, None, "idle loop device line");
        assert!(parse_io_stat("x:y rbytes=1\n").is_err());
        let m = parse_io_max("8:16 rbps=2097152 wbps=max riops=max wiops=120\n").expect("io.max");
        assert_eq!(
            (m[0].rbps, m[0].wbps, m[0].wiops),
            (Limit::Value(2097152), Limit::Max, Limit::Value(120))
        );
        assert!(parse_io_max("").expect("empty").is_empty());
        let w = parse_io_weight("default 100\n8:0 200\n").expect("weight");
        assert_eq!(w.default, Some(100));
        assert_eq!(w.devices, vec![(DevNum { major: 8, minor: 0 }, 200)]);
        assert_eq!(parse_io_weight("500\n").expect("v1").default, Some(500));
    }

    #[test]
    fn blkio_throttle_rows() {
        let b = parse_blkio_throttle("8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n").expect("blkio");
        assert_eq!(
            b,
            vec![BlkioEntry {
                dev: DevNum { major: 8, minor: 0 },
                read: Some(4096),
                write: Some(8192)
            }]
        );
        // This machine's root: no device rows, only the Total.
        assert!(parse_blkio_throttle("Total 0\n")
            .expect("total only")
            .is_empty());
        assert!(parse_blkio_throttle("").is_err());
        assert_eq!(
            parse_blkio_device_limits("8:0 1048576\n").expect("limits"),
            vec![(DevNum { major: 8, minor: 0 }, 1048576)]
        );
        assert!(parse_blkio_device_limits("").expect("no limits").is_empty());
    }

    #[test]
    fn cpuset_lists() {
        assert_eq!(parse_cpuset_count("0-1\n"), Ok(2));
        assert_eq!(parse_cpuset_count("0-3,8,10-11\n"), Ok(7));
        assert_eq!(parse_cpuset_count("\n"), Ok(0));
        assert!(parse_cpuset_count("3-1").is_err());
        assert!(parse_cpuset_count("0-4294967295").is_err());
        assert!(parse_cpuset_count("a-b").is_err());
    }

    #[test]
    fn numa_freezer_and_partitions() {
        let v2 = parse_numa_stat("anon N0=1234 N1=0\nfile N0=99\n").expect("v2");
        assert_eq!(v2.entries[0], ("anon", vec![(0, 1234), (1, 0)]));
        let v1 =
            parse_numa_stat("total=3 N0=3\nfile=1 N0=1\nhierarchical_total=9 N0=9\n").expect("v1");
        assert_eq!(v1.entries.len(), 2);
        assert_eq!(v1.entries[0], ("total", vec![(0, 3)]));
        assert_eq!(parse_freezer_state("FROZEN\n"), Ok(FreezerState::Frozen));
        assert!(parse_freezer_state("MELTED").is_err());
        let p = parse_partitions(PARTITIONS);
        assert_eq!(
            p,
            vec![Partition {
                dev: DevNum {
                    major: 254,
                    minor: 0
                },
                name: "vda".into()
            }]
        );
    }
}
