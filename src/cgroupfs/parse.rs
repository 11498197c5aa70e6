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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

impl Default for DevNum {
    fn default() -> Self {
        DevNum { major: 0, minor: 0 }
    }
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
    todo_parser(text)
}

/// A single value that may be `max` (`memory.max`, `pids.max`, ...). v1's
/// "unlimited" (`memory.limit_in_bytes` near `i64::MAX` rounded down to a
/// page, `cpu.cfs_quota_us` = `-1`) is also `Limit::Max`.
pub fn parse_limit(text: &str) -> Result<Limit, ParseError> {
    todo_parser(text)
}

/// `cpu.max`.
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, ParseError> {
    todo_parser(text)
}

/// Flat keyed files (`key value` per line): an iterator-free helper that
/// calls `f(key, value)` per well-formed line and skips lines whose value is
/// not a u64. Errors only on a file with no well-formed line at all.
pub fn parse_flat_keyed<'a>(text: &'a str, f: impl FnMut(&'a str, u64)) -> Result<(), ParseError> {
    let _ = f;
    todo_parser(text)
}

pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, ParseError> {
    todo_parser(text)
}

pub fn parse_cpu_stat_v1(text: &str) -> Result<CpuStatV1, ParseError> {
    todo_parser(text)
}

pub fn parse_cpuacct_stat(text: &str) -> Result<CpuacctStat, ParseError> {
    todo_parser(text)
}

pub fn parse_memory_events(text: &str) -> Result<MemoryEvents, ParseError> {
    todo_parser(text)
}

pub fn parse_oom_control(text: &str) -> Result<OomControl, ParseError> {
    todo_parser(text)
}

pub fn parse_cgroup_events(text: &str) -> Result<CgroupEvents, ParseError> {
    todo_parser(text)
}

/// PSI files. Unknown line prefixes are ignored; a file with neither `some`
/// nor `full` is an error.
pub fn parse_psi(text: &str) -> Result<Psi, ParseError> {
    todo_parser(text)
}

/// v2 `io.stat` (nested keyed). Lines with no keys (`7:0 ` for an idle
/// loop device) give an entry with all fields `None`.
pub fn parse_io_stat(text: &str) -> Result<Vec<IoStatEntry>, ParseError> {
    todo_parser(text)
}

pub fn parse_io_max(text: &str) -> Result<Vec<IoMaxEntry>, ParseError> {
    todo_parser(text)
}

/// v2 `io.weight` (`default 100` then `8:0 200` lines) and v1
/// `blkio.weight` (a bare number, returned as the default).
pub fn parse_io_weight(text: &str) -> Result<IoWeight, ParseError> {
    todo_parser(text)
}

/// v1 `blkio.throttle.io_service_bytes` and `blkio.throttle.io_serviced`
/// (`8:0 Read 123` rows; `Total` rows and the final `Total N` ignored).
pub fn parse_blkio_throttle(text: &str) -> Result<Vec<BlkioEntry>, ParseError> {
    todo_parser(text)
}

/// v1 `blkio.throttle.{read,write}_{bps,iops}_device`: `8:0 1048576` per
/// line; an empty file means no limits.
pub fn parse_blkio_device_limits(text: &str) -> Result<Vec<(DevNum, u64)>, ParseError> {
    todo_parser(text)
}

/// `cpuset.cpus.effective` / `cpuset.cpus`: a CPU list (`0-3,8,10-11`),
/// returned as the count of CPUs. Empty means none (0).
pub fn parse_cpuset_count(text: &str) -> Result<u32, ParseError> {
    todo_parser(text)
}

/// v2 `memory.numa_stat` (`anon N0=1 N1=2`) and v1 (`total=3 N0=1 N1=2`,
/// `hierarchical_*` lines ignored).
pub fn parse_numa_stat(text: &str) -> Result<NumaStat<'_>, ParseError> {
    todo_parser(text)
}

pub fn parse_freezer_state(text: &str) -> Result<FreezerState, ParseError> {
    todo_parser(text)
}

/// `/proc/partitions`: maps device numbers to names for the `device` label.
pub fn parse_partitions(text: &str) -> Vec<Partition> {
    let _ = text;
    Vec::new()
}

fn todo_parser<T>(_text: &str) -> Result<T, ParseError> {
    Err(ParseError::new(0, "not implemented"))
}
