//! Parser tests on real kernel file contents.
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

#[test]
fn memory_stat_keeps_byte_keys_in_file_order_and_fails_on_a_bad_one() {
    let m = parse_memory_stat(
        "file 8\nanon 4\npgfault 99\nzswap_incomp 3\nhugetlb 2097152\nnew_key x\n",
    )
    .expect("parses");
    assert_eq!(
        m.values,
        vec![("file", 8), ("anon", 4), ("hugetlb", 2097152)]
    );
    assert_eq!(m.get("anon"), Some(4));
    assert_eq!(
        parse_memory_stat("anon 4\nfile -1\n"),
        Err(ParseError::new(2, "bad value of a known key"))
    );
    let v1 = parse_memory_stat_v1("rss 1\ntotal_rss 2\ntotal_pgfault 3\ntotal_inactive_file 4\n")
        .expect("parses");
    assert_eq!(
        v1.values,
        vec![("total_rss", 2), ("total_inactive_file", 4)]
    );
}
