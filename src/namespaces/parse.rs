//! Pure parsers for the per-process procfs files the namespace scan reads:
//! the `ns/<type>` link targets, `cgroup`, `stat`, `status`, `uid_map` and
//! `net/dev`. No I/O here, so every format is tested on copied real contents.
//!
//! Kernel reference: <https://man7.org/linux/man-pages/man5/proc_pid_ns.5.html>,
//! <https://man7.org/linux/man-pages/man7/cgroups.7.html>,
//! <https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html>,
//! <https://man7.org/linux/man-pages/man7/user_namespaces.7.html>.

use std::fmt;

/// Why a procfs file's content was rejected: the shared core's type. It
/// carries no path: the scanner adds it, because these parsers never see
/// one.
pub use crate::kernel::ParseError;

/// The namespace types a process has links for, in `ns/` directory order
/// as `ls` shows it. `pid_for_children` and `time_for_children` are left out
/// on purpose: they describe the children a process will create, not the
/// process itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NsType {
    Cgroup,
    Ipc,
    Mnt,
    Net,
    Pid,
    Time,
    User,
    Uts,
}

impl NsType {
    pub const ALL: [NsType; 8] = [
        NsType::Cgroup,
        NsType::Ipc,
        NsType::Mnt,
        NsType::Net,
        NsType::Pid,
        NsType::Time,
        NsType::User,
        NsType::Uts,
    ];

    /// The link name under `ns/`, which is also the prefix of its target
    /// and the value of the `type` label.
    pub fn as_str(self) -> &'static str {
        match self {
            NsType::Cgroup => "cgroup",
            NsType::Ipc => "ipc",
            NsType::Mnt => "mnt",
            NsType::Net => "net",
            NsType::Pid => "pid",
            NsType::Time => "time",
            NsType::User => "user",
            NsType::Uts => "uts",
        }
    }

    /// Position in [`NsType::ALL`], for fixed-size per-type arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for NsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a `/proc/<pid>/ns/<type>` link target, `net:[4026531840]`, into
/// the namespace inode. The prefix must name the expected type: a link
/// pointing elsewhere means the tree is not what we think it is.
pub fn parse_ns_link(expected: NsType, target: &str) -> Result<u64, ParseError> {
    let rest = target
        .strip_prefix(expected.as_str())
        .and_then(|r| r.strip_prefix(":["))
        .ok_or(ParseError::new(
            1,
            "ns link target is not `<type>:[<inode>]`",
        ))?;
    let digits = rest
        .strip_suffix(']')
        .ok_or(ParseError::new(1, "ns link target lacks the closing `]`"))?;
    digits
        .parse::<u64>()
        .map_err(|_| ParseError::new(1, "ns inode is not a number"))
}

/// Controllers whose v1 hierarchy places a process in a resource cgroup.
/// Named hierarchies (`name=systemd`) and `devices`/`net_cls`/`perf_event`
/// are left out: they say nothing about where the process's resources are
/// accounted, and systemd's tree often differs from the resource tree.
const RESOURCE_CONTROLLERS: [&str; 8] = [
    "cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "hugetlb", "freezer",
];

/// Picks the cgroup of a process from `/proc/<pid>/cgroup`.
///
/// Lines are `hierarchy-ID:controller-list:path`; `0::/path` is cgroup v2,
/// the others v1. On a hybrid host the v2 line is often `/` while the v1
/// `memory` line is specific (and the reverse happens when only v2 is
/// delegated), so the most specific path wins: the longest among the v2
/// line and the v1 lines of resource controllers. On a tie the v2 line wins,
/// as it comes last and comparisons are strict.
///
/// Returns the path as the kernel printed it, minus a ` (deleted)` suffix,
/// borrowed from `content`: procfs-core's `ProcessCGroups` would allocate a
/// `String` per controller and path for every new process of a scan.
pub fn parse_proc_cgroup(content: &str) -> Result<&str, ParseError> {
    let mut best: Option<&str> = None;
    let mut v2: Option<&str> = None;
    for (i, line) in content.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::new(i + 1, "expected `id:controllers:path`"));
        };
        if id.parse::<u32>().is_err() {
            return Err(ParseError::new(i + 1, "hierarchy id is not a number"));
        }
        if !path.starts_with('/') {
            return Err(ParseError::new(i + 1, "cgroup path is not absolute"));
        }
        // Kernel quirk: a process whose v2 cgroup was removed (only zombies
        // can be left there) shows ` (deleted)` after the path
        // (kernel/cgroup/cgroup.c, proc_cgroup_show).
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
            continue;
        }
        let is_resource = controllers
            .split(',')
            .any(|c| RESOURCE_CONTROLLERS.contains(&c));
        if is_resource && best.is_none_or(|b| path.len() > b.len()) {
            best = Some(path);
        }
    }
    match (v2, best) {
        (Some(v), Some(b)) if b.len() > v.len() => Ok(b),
        (Some(v), _) => Ok(v),
        (None, Some(b)) => Ok(b),
        (None, None) => Err(ParseError::new(
            0,
            "no v2 line and no resource controller line",
        )),
    }
}

/// Reads `starttime` (field 22, clock ticks since boot) from
/// `/proc/<pid>/stat`. Together with the pid it names one process for its
/// whole life, which is what the scan caches on.
pub fn parse_stat_starttime(content: &str) -> Result<u64, ParseError> {
    // Field 2 (`comm`) is in parentheses and may itself hold spaces and
    // parentheses; the kernel never escapes them, so the last `)` is the
    // only safe anchor.
    let close = content
        .rfind(')')
        .ok_or(ParseError::new(1, "no `)` closing the comm field"))?;
    // After `)`: field 3 (state) is index 0, so field 22 is index 19.
    content[close + 1..]
        .split_ascii_whitespace()
        .nth(19)
        .ok_or(ParseError::new(1, "fewer than 22 fields"))?
        .parse::<u64>()
        .map_err(|_| ParseError::new(1, "starttime is not a number"))
}

/// Whether `/proc/<pid>/stat` is that of a task that has exited: state `Z`
/// (zombie, not reaped yet) or `X`/`x` (dead). Such a task keeps its
/// `/proc/<pid>/cgroup` line, naming a cgroup that `cgroup.kill` emptied
/// and `rmdir` may already have removed, but it runs nothing and the
/// kernel's own `cgroup.procs` no longer lists it.
pub fn stat_is_exited(content: &str) -> bool {
    content
        .rfind(')')
        .and_then(|close| content[close + 1..].split_ascii_whitespace().next())
        .is_some_and(|state| matches!(state, "Z" | "X" | "x"))
}

/// Reads the real uid (first field of `Uid:`) from `/proc/<pid>/status`,
/// as seen from the reader's user namespace.
pub fn parse_status_uid(content: &str) -> Result<u32, ParseError> {
    for (i, line) in content.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            return rest
                .split_ascii_whitespace()
                .next()
                .ok_or(ParseError::new(i + 1, "empty Uid: line"))?
                .parse::<u32>()
                .map_err(|_| ParseError::new(i + 1, "real uid is not a number"));
        }
    }
    Err(ParseError::new(0, "no Uid: line"))
}

/// One line of `/proc/<pid>/uid_map`: `count` ids from `inside` in the
/// process's user namespace map to `outside` in the reader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidMapEntry {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Parses `/proc/<pid>/uid_map`. Empty content is valid: a fresh user
/// namespace has no mapping until someone writes one.
pub fn parse_uid_map(content: &str) -> Result<Vec<UidMapEntry>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in content.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        let Some(first) = f.next() else { continue };
        let num = |s: Option<&str>| {
            s.and_then(|s| s.parse::<u32>().ok())
                .ok_or(ParseError::new(i + 1, "expected `inside outside count`"))
        };
        let inside = num(Some(first))?;
        let outside = num(f.next())?;
        let count = num(f.next())?;
        out.push(UidMapEntry {
            inside,
            outside,
            count,
        });
    }
    Ok(out)
}

/// True when uid 0 inside the namespace is uid 0 outside it: the container's
/// root is the reader's root (the host's, when the exporter runs in the
/// host's user namespace).
pub fn root_maps_to_root(map: &[UidMapEntry]) -> bool {
    map.iter()
        .any(|e| e.inside == 0 && e.outside == 0 && e.count > 0)
}

/// One interface line of `/proc/<pid>/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevLine {
    pub interface: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

/// Parses `/proc/<pid>/net/dev`: two header lines, then
/// `iface: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed
/// multicast tx_bytes tx_packets tx_errs tx_drop ...`. Not procfs-core's
/// `InterfaceDeviceStatus`: a `HashMap` loses the kernel's interface order
/// (the order of the series), and it splits `eth0:123` wrongly.
pub fn parse_net_dev(content: &str) -> Result<Vec<NetDevLine>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in content.lines().enumerate() {
        // The header is two lines containing `|`; a data line never does.
        if i < 2 && line.contains('|') {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        // Kernel quirk: old kernels printed `eth0:123` with no space once the
        // byte count filled the column, so split on the colon, not on
        // whitespace. Interface names cannot contain `:` (dev_valid_name).
        let (name, rest) = line
            .split_once(':')
            .ok_or(ParseError::new(i + 1, "no `:` after the interface name"))?;
        let mut v = [0u64; 12];
        let mut fields = rest.split_ascii_whitespace();
        for slot in &mut v {
            *slot = fields
                .next()
                .ok_or(ParseError::new(i + 1, "fewer than 12 counters"))?
                .parse::<u64>()
                .map_err(|_| ParseError::new(i + 1, "counter is not a number"))?;
        }
        out.push(NetDevLine {
            interface: name.trim().to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errs: v[2],
            rx_drop: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errs: v[10],
            tx_drop: v[11],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_link_targets_parse_and_wrong_types_are_rejected() {
        assert_eq!(
            parse_ns_link(NsType::Net, "net:[4026531840]"),
            Ok(4026531840)
        );
        assert_eq!(
            parse_ns_link(NsType::Cgroup, "cgroup:[4026531835]"),
            Ok(4026531835)
        );
        assert!(parse_ns_link(NsType::Net, "uts:[4026531838]").is_err());
        assert!(parse_ns_link(NsType::Net, "net:[]").is_err());
        assert!(parse_ns_link(NsType::Net, "net:[12").is_err());
        assert!(parse_ns_link(NsType::Net, "garbage").is_err());
        // `pid_for_children` shares the `pid:` prefix; it is never asked for.
        assert_eq!(
            parse_ns_link(NsType::Pid, "pid:[4026531836]"),
            Ok(4026531836)
        );
    }

    #[test]
    fn hybrid_cgroup_file_picks_the_specific_memory_path() {
        // Copied from this hybrid host: v2 line `/`, memory line specific.
        let c = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n\
                 4:memory:/process_api/a0347065e39779bd62e8cceab13589c8\n3:cpuset:/\n\
                 2:cpuacct:/\n1:cpu:/\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(c),
            Ok("/process_api/a0347065e39779bd62e8cceab13589c8")
        );
    }

    #[test]
    fn pure_v2_and_named_hierarchies() {
        assert_eq!(
            parse_proc_cgroup("0::/system.slice/sshd.service\n"),
            Ok("/system.slice/sshd.service")
        );
        // A longer systemd-named path does not count: not a resource hierarchy.
        let c =
            "2:name=systemd:/user.slice/user-0.slice/session-1.scope\n1:devices:/x/y/z/w\n0::/a\n";
        assert_eq!(parse_proc_cgroup(c), Ok("/a"));
        // v2 wins a tie.
        assert_eq!(parse_proc_cgroup("4:memory:/ab\n0::/cd\n"), Ok("/cd"));
        // Comma-joined v1 controllers.
        assert_eq!(parse_proc_cgroup("3:cpu,cpuacct:/k/p\n0::/\n"), Ok("/k/p"));
        // Pure v1 host.
        assert_eq!(
            parse_proc_cgroup("5:memory:/docker/abc\n"),
            Ok("/docker/abc")
        );
    }

    #[test]
    fn deleted_v2_cgroup_suffix_is_stripped() {
        assert_eq!(parse_proc_cgroup("0::/gone (deleted)\n"), Ok("/gone"));
    }

    #[test]
    fn garbage_cgroup_files_are_errors() {
        assert!(parse_proc_cgroup("").is_err());
        assert!(parse_proc_cgroup("hello\n").is_err());
        assert!(parse_proc_cgroup("x::/a\n").is_err());
        assert!(parse_proc_cgroup("0::relative\n").is_err());
        assert!(parse_proc_cgroup("5:devices:/a\n").is_err());
    }

    #[test]
    fn starttime_survives_comm_with_spaces_and_parens() {
        // Real line from this kernel (sleep), starttime 123456.
        let real = "4242 (sleep) S 1055 4242 1055 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 123456 \
                    2482176 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(parse_stat_starttime(real), Ok(123456));
        let weird = real.replace("(sleep)", "(a) b (c) d)");
        assert_eq!(parse_stat_starttime(&weird), Ok(123456));
        assert!(parse_stat_starttime("1 (x) S 0 0\n").is_err());
        assert!(parse_stat_starttime("no parens at all").is_err());
    }

    #[test]
    fn exited_tasks_are_told_apart_by_their_state() {
        // Real line from this kernel: `true` exited, its parent has not
        // reaped it yet.
        let zombie = "18718 (true) Z 18567 18565 9319 0 -1 4227084 50 0 1 0 0 0 0 0 20 0 1 0 282004 \
                      0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert!(stat_is_exited(zombie));
        assert_eq!(parse_stat_starttime(zombie), Ok(282004));
        assert!(stat_is_exited(&zombie.replace(") Z ", ") X ")));
        // A comm that looks like a state does not fool it.
        assert!(!stat_is_exited(&zombie.replace("(true) Z", "(a) Z b) S")));
        for running in ["R", "S", "D", "T", "t", "I"] {
            assert!(!stat_is_exited(
                &zombie.replace(") Z ", &format!(") {running} "))
            ));
        }
        assert!(!stat_is_exited("garbage"));
    }

    #[test]
    fn status_real_uid_is_the_first_uid_field() {
        let s = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_status_uid(s), Ok(1000));
        assert!(parse_status_uid("Name:\tx\n").is_err());
        assert!(parse_status_uid("Uid:\tabc\n").is_err());
    }

    #[test]
    fn uid_maps_tell_real_root_from_mapped_root() {
        let init = parse_uid_map("         0          0 4294967295\n").unwrap();
        assert!(root_maps_to_root(&init));
        let rootless = parse_uid_map("         0     100000      65536\n").unwrap();
        assert!(!root_maps_to_root(&rootless));
        // `unshare --map-root-user` run by root maps 0 to 0: real root.
        assert!(root_maps_to_root(&parse_uid_map("0 0 1\n").unwrap()));
        let split = parse_uid_map("1 1000 1\n0 0 1\n").unwrap();
        assert!(root_maps_to_root(&split));
        assert!(!root_maps_to_root(&parse_uid_map("").unwrap()));
        assert!(parse_uid_map("0 0\n").is_err());
    }

    #[test]
    fn net_dev_real_content_parses() {
        let c = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n  \
eth0: 9876543   12345    1    2    0     0          0         7   123456     987    3    4    0     0       0          0\n";
        let d = parse_net_dev(c).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].interface, "lo");
        assert_eq!((d[0].rx_bytes, d[0].rx_packets), (3193, 29));
        assert_eq!(d[1].interface, "eth0");
        assert_eq!(
            (
                d[1].rx_errs,
                d[1].rx_drop,
                d[1].tx_bytes,
                d[1].tx_packets,
                d[1].tx_errs,
                d[1].tx_drop
            ),
            (1, 2, 123456, 987, 3, 4)
        );
    }

    #[test]
    fn net_dev_without_space_after_colon_and_truncated_lines() {
        let c = "h1|\nh2|\neth0:123 1 0 0 0 0 0 0 456 2 0 0 0 0 0 0\n";
        let d = parse_net_dev(c).unwrap();
        assert_eq!((d[0].rx_bytes, d[0].tx_bytes), (123, 456));
        assert!(parse_net_dev("h1|\nh2|\neth0: 1 2 3\n").is_err());
        assert!(parse_net_dev("h1|\nh2|\neth0 1 2 3\n").is_err());
        assert_eq!(parse_net_dev("h1|\nh2|\n").unwrap(), vec![]);
    }
}
