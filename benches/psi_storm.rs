//! The storm: 1,000 cgroups under a PSI rule, real pressure in every one of
//! them at once, as when a node runs out of a resource and every pod's rule
//! fires. Pressure is CPU: one busy loop per cgroup, the 1,000 of them in a
//! parent whose CPU weight is the smallest (v1 `cpu.shares` 2, v2
//! `cpu.weight` 1), so each loop waits for a CPU nearly all the time (a real
//! `some` stall in its own `cpu.pressure`) while the rest of the machine,
//! the exporter included, keeps its share.
//!
//! Reported: how long each alert took from its trigger (`startsAt`) to a
//! real Alertmanager and to a webhook receiver, the requests each receiver
//! got for the first 1,000 alerts, drops, the exporter's CPU and memory
//! during the storm, and its scrape duration before and during it.
//!
//! Root, `prometheus-alertmanager`: `cargo bench --bench psi_storm`
//! (`CGPE_STORM_CGROUPS`, default 1000).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support_psi/pager.rs"]
mod pager;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::KernelCgroup;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &str, args: &[String]) -> Proc {
    Proc(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}")),
    )
}

/// utime + stime of `pid`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn scrape(port: u16) -> (Duration, String) {
    let t = Instant::now();
    let body = common::http_get(port, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    (t.elapsed(), body)
}

/// The sum of the samples of `name` whose line contains every `want`.
fn metric(text: &str, name: &str, want: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Active alerts of `alertname` in Alertmanager: cgroup -> startsAt.
fn am_alerts(port: u16, alertname: &str) -> BTreeMap<String, SystemTime> {
    let Ok((200, body)) = common::http_get(port, "/api/v2/alerts?active=true") else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == alertname)
                .filter_map(|x| {
                    let cg = x["labels"]["cgroup"].as_str()?.to_string();
                    let t = humantime::parse_rfc3339_weak(x["startsAt"].as_str()?).ok()?;
                    Some((cg, t))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `some total` (µs) of a cgroup's `cpu.pressure`.
fn some_total(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("cpu.pressure"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("some"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("total=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A burner's pid, time on a CPU (ns) and switch-ins so far.
type Burner = (u32, u64, u64);

/// The first process of a cgroup: its pid, and from `/proc/<pid>/schedstat`
/// its time on a CPU (ns) and how many times it was switched in.
fn burner(dir: &Path) -> Option<Burner> {
    let pid: u32 = std::fs::read_to_string(dir.join("cgroup.procs"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let f: Vec<u64> = s
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((pid, *f.first()?, *f.get(2)?))
}

fn main() {
    if let Some(r) = common::kernel_unavailable() {
        eprintln!("skipped: {r}");
        return;
    }
    if Command::new("prometheus-alertmanager")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: prometheus-alertmanager not installed");
        return;
    }
    let n: usize = std::env::var("CGPE_STORM_CGROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (am_port, ex_port) = (common::free_port(), common::free_port());
    std::fs::write(
        d.join("am.yml"),
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .expect("am config");
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", d.join("am.yml").display()),
            format!("--storage.path={}", d.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
    );
    common::wait_ok(am_port, "/-/ready", Duration::from_secs(30));
    let hook = pager::Pager::start();

    // The parent and its n children, in the unified and the CPU hierarchy.
    let parent = KernelCgroup::new("storm");
    let cpu_dirs: Vec<&PathBuf> = parent
        .dirs
        .iter()
        .filter(|p| {
            common::pure_v2()
                || p.parent()
                    .is_some_and(|r| r.ends_with("unified") || r.ends_with("cpu"))
        })
        .collect();
    // Starving the parent (the smallest CPU weight) is what makes the storm;
    // until then its loops start and wait at the normal weight.
    let starve = |on: bool| {
        for p in &cpu_dirs {
            if common::pure_v2() {
                let _ = std::fs::write(p.join("cpu.weight"), if on { "1" } else { "100" });
            } else if p.parent().is_some_and(|r| r.ends_with("cpu")) {
                let _ = std::fs::write(p.join("cpu.shares"), if on { "2" } else { "1024" });
            }
        }
    };
    for p in &cpu_dirs {
        if common::pure_v2() {
            let _ = std::fs::write(p.join("cgroup.subtree_control"), "+cpu");
        }
        for i in 0..n {
            std::fs::create_dir(p.join(format!("c{i}"))).expect("mkdir child");
        }
    }
    let glob = format!("{}/*", parent.path());
    std::fs::write(
        d.join("exporter.yml"),
        format!(
            "namespaces: {{ enabled: false }}\npsi:\n  rules:\n    - name: StormCpuPressure\n      cgroups: [\"{glob}\"]\n      resource: cpu\n      kind: some\n      threshold: 100ms\n      window: 2s\n      resolve_after: 10s\nalerting:\n  alertmanagers: [\"http://127.0.0.1:{am_port}\"]\n  webhooks: [\"{}\"]\n  oom_kills: false\n  resend_interval: 4m\n",
            hook.url
        ),
    )
    .expect("exporter config");
    // Debug logs name every request ("alerts delivered", receiver, alerts).
    let log = d.join("exporter.log");
    let ex = Proc(
        Command::new(env!("CARGO_BIN_EXE_cgroup-psi-exporter"))
            .arg(format!("--web.listen-address=127.0.0.1:{ex_port}"))
            .arg(format!(
                "--config.file={}",
                d.join("exporter.yml").display()
            ))
            .arg("--log.level=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("exporter"),
    );
    let pid = ex.0.id();
    common::wait_ok(ex_port, "/readyz", Duration::from_secs(60));
    let t_arm = Instant::now();
    loop {
        let (_, text) = scrape(ex_port);
        if metric(&text, "psi_triggers_armed", &["StormCpuPressure"]) as usize >= n {
            break;
        }
        assert!(
            t_arm.elapsed() < Duration::from_secs(60),
            "triggers not armed on {n} cgroups"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The burners, each in its cgroup, blocked on a FIFO: no pressure yet.
    // Opening the FIFO for writing and closing it releases them all at once.
    let fifo = d.join("go");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo");
    // Held open read-write (which never blocks on Linux): the loops' opens
    // succeed at once and their reads wait for its close (EOF).
    let gate = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .expect("open fifo");
    let mut script = String::new();
    for i in 0..n {
        let mut join = String::new();
        for p in &cpu_dirs {
            join.push_str(&format!("echo $$ > {}/c{i}/cgroup.procs; ", p.display()));
        }
        script.push_str(&format!(
            "sh -c '{join} read x < {}; exec sh -c \"while :; do :; done\"' &\n",
            fifo.display()
        ));
    }
    script.push_str("wait\n");
    std::fs::write(d.join("burners.sh"), &script).expect("burners script");
    let _burners = Proc(
        Command::new("sh")
            .arg(d.join("burners.sh"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("burners"),
    );
    let t_spawn = Instant::now();
    let first = cpu_dirs[0];
    while (0..n).any(|i| {
        std::fs::read_to_string(first.join(format!("c{i}/cgroup.procs")))
            .map(|s| s.trim().is_empty())
            .unwrap_or(true)
    }) {
        assert!(
            t_spawn.elapsed() < Duration::from_secs(300),
            "burners not in place"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Alerts from the spawning's own stalls (a loaded machine) resolve
    // first (resolve_after 10s), so the storm starts from quiet: nothing
    // firing in the agent nor in Alertmanager for 6 s on end (longer than
    // a trigger window plus the storm hold), because a trigger of those
    // stalls fires up to a window later and its alert reaches Alertmanager
    // later still. An alert still firing from before would hide that
    // cgroup's storm alert (same labels, older startsAt).
    let (mut quiet, t_quiet, mut calm) = (0usize, Instant::now(), Instant::now());
    while calm.elapsed() < Duration::from_secs(6) {
        let firing = metric(
            &scrape(ex_port).1,
            "psi_alerts_firing",
            &["StormCpuPressure"],
        );
        let in_am = am_alerts(am_port, "StormCpuPressure").len();
        quiet = quiet.max(in_am).max(firing as usize);
        if firing > 0.0 || in_am > 0 {
            calm = Instant::now();
        }
        assert!(t_quiet.elapsed() < Duration::from_secs(180), "never quiet");
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut before: Vec<f64> = (0..5)
        .map(|_| scrape(ex_port).0.as_secs_f64() * 1000.0)
        .collect();
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    // Per cgroup at the start: the kernel's stall total and the burner's
    // switch-ins, to explain any trigger that stays silent.
    let unified_dir = cpu_dirs
        .iter()
        .find(|p| common::pure_v2() || p.parent().is_some_and(|r| r.ends_with("unified")))
        .map(|p| p.to_path_buf())
        .expect("a cgroup2 directory");
    let at_start: Vec<(u64, Option<Burner>)> = (0..n)
        .map(|i| {
            let d = unified_dir.join(format!("c{i}"));
            (some_total(&d), burner(&d))
        })
        .collect();
    let log_start = std::fs::metadata(&log)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let started = SystemTime::now();
    // The storm: every loop starts now, in a starved parent.
    starve(true);
    drop(gate);

    let mut seen_am: BTreeMap<String, (SystemTime, SystemTime)> = BTreeMap::new();
    let mut during: Vec<f64> = Vec::new();
    let mut last_scrape = Instant::now();
    let mut last_new = Instant::now();
    while seen_am.len() < n
        && t0.elapsed() < Duration::from_secs(90)
        && last_new.elapsed() < Duration::from_secs(20)
    {
        let had = seen_am.len();
        let now = SystemTime::now();
        for (cg, starts) in am_alerts(am_port, "StormCpuPressure") {
            if starts + Duration::from_secs(1) >= started {
                seen_am.entry(cg).or_insert((starts, now));
            }
        }
        if seen_am.len() > had {
            last_new = Instant::now();
        }
        if last_scrape.elapsed() >= Duration::from_secs(1) {
            during.push(scrape(ex_port).0.as_secs_f64() * 1000.0);
            last_scrape = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let storm = t0.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mem = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.trim_start_matches(k).trim().to_string())
            .unwrap_or_default()
    };
    let (_, text) = scrape(ex_port);
    let dropped = metric(&text, "psi_alert_notifications_total", &["dropped"]);
    let am_metrics = common::http_get(am_port, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    let am_received = metric(&am_metrics, "alertmanager_alerts_received_total", &[]);
    // Requests to Alertmanager until the first n alerts were out.
    let am_url = format!("receiver=http://127.0.0.1:{am_port} ");
    let (mut am_posts, mut am_sent) = (0, 0usize);
    let total = seen_am.len();
    let text_log = std::fs::read_to_string(&log).unwrap_or_default();
    for l in text_log.get(log_start..).unwrap_or("").lines() {
        if am_sent >= total {
            break;
        }
        if l.contains("alerts delivered") && l.contains(&am_url) {
            am_posts += 1;
            am_sent += l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("alerts="))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
        }
    }

    // Webhook: the requests that carried the first n distinct alerts.
    let mut hook_lat = Vec::new();
    let mut distinct = BTreeSet::new();
    let mut hook_posts = 0;
    let storm_pages: Vec<pager::Page> = hook.pages().into_iter().filter(|p| p.at >= t0).collect();
    for p in storm_pages {
        if distinct.len() >= total {
            break;
        }
        hook_posts += 1;
        for a in p.alerts() {
            // Firing states only: a resolve (or a re-fire) is not a trigger's first alert.
            if a["status"] != "firing" {
                continue;
            }
            let Some(cg) = a["labels"]["cgroup"].as_str() else {
                continue;
            };
            if distinct.insert(cg.to_string()) {
                if let Some(s) = a["startsAt"]
                    .as_str()
                    .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                {
                    let arrived = SystemTime::now() - p.at.elapsed();
                    hook_lat.push(arrived.duration_since(s).unwrap_or_default().as_secs_f64());
                }
            }
        }
    }
    let mut am_lat: Vec<f64> = seen_am
        .values()
        .map(|(s, seen)| seen.duration_since(*s).unwrap_or_default().as_secs_f64())
        .collect();
    let mut first_trigger: Vec<f64> = seen_am
        .values()
        .map(|(s, _)| s.duration_since(started).unwrap_or_default().as_secs_f64())
        .collect();

    println!("storm: {n} cgroups, CPU pressure in each (rule cpu some 100ms/2s)");
    println!(
        "- alerts before the storm (stalls while spawning the loops, resolved before it): {quiet} at most at once"
    );
    println!(
        "- alerts in Alertmanager: {} of {n} within {:.1} s of the burners starting; triggers fired {:.1}-{:.1} s after the start",
        seen_am.len(),
        storm.as_secs_f64(),
        pct(&mut first_trigger, 0.0),
        pct(&mut first_trigger, 1.0)
    );
    println!(
        "- trigger -> Alertmanager (startsAt to first seen by a 50 ms poll): median {:.2} s, p99 {:.2} s, max {:.2} s",
        pct(&mut am_lat, 0.5),
        pct(&mut am_lat, 0.99),
        pct(&mut am_lat, 1.0)
    );
    println!(
        "- trigger -> webhook receiver: median {:.2} s, p99 {:.2} s, max {:.2} s ({} alerts)",
        pct(&mut hook_lat, 0.5),
        pct(&mut hook_lat, 0.99),
        pct(&mut hook_lat, 1.0),
        hook_lat.len()
    );
    println!(
        "- requests for the first {n} alerts: webhook {hook_posts}; Alertmanager {am_posts} (the agent's log; Alertmanager counted {am_received} alerts received)"
    );
    println!("- dropped: {}", dropped.abs());
    println!(
        "- exporter CPU during the storm: {:.2} s over {:.1} s ({:.0}% of one core); VmRSS {}, VmHWM {}",
        cpu.as_secs_f64(),
        storm.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / storm.as_secs_f64(),
        mem("VmRSS:"),
        mem("VmHWM:")
    );
    println!(
        "- scrape duration: before median {:.1} ms (max {:.1}); during median {:.1} ms (max {:.1}, {} scrapes)",
        pct(&mut before, 0.5),
        pct(&mut before, 1.0),
        pct(&mut during, 0.5),
        pct(&mut during, 1.0),
        during.len()
    );
    // Cgroups whose alert never reached Alertmanager: what the agent and
    // the kernel say about them.
    let errors = metric(&text, "psi_trigger_errors_total", &[]);
    let silent: Vec<usize> = (0..n)
        .filter(|i| !seen_am.contains_key(&format!("{}/c{i}", parent.path())))
        .collect();
    println!(
        "- silent cgroups: {} (psi_trigger_errors_total {errors}, psi_triggers_armed {})",
        silent.len(),
        metric(&text, "psi_triggers_armed", &["StormCpuPressure"])
    );
    let switches = |i: usize| -> Option<(u64, u64)> {
        let d = unified_dir.join(format!("c{i}"));
        let (_, run0, sw0) = at_start[i].1?;
        let (_, run1, sw1) = burner(&d)?;
        Some((
            run1.saturating_sub(run0) / 1_000_000,
            sw1.saturating_sub(sw0),
        ))
    };
    let mut heard: Vec<f64> = (0..n)
        .filter(|i| !silent.contains(i))
        .filter_map(|i| switches(i).map(|s| s.1 as f64))
        .collect();
    println!(
        "  (the alerted cgroups' burners were switched in median {:.0}, min {:.0} times during the storm)",
        pct(&mut heard, 0.5),
        pct(&mut heard, 0.0)
    );
    let am_end = am_alerts(am_port, "StormCpuPressure");
    for i in silent.iter().take(10) {
        let d = unified_dir.join(format!("c{i}"));
        let cg = format!("{}/c{i}", parent.path());
        let events = metric(
            &text,
            "psi_trigger_events_total",
            &[&format!("cgroup=\"{cg}\"")],
        );
        let stall = some_total(&d).saturating_sub(at_start[*i].0) / 1000;
        let line = std::fs::read_to_string(d.join("cpu.pressure")).unwrap_or_default();
        // Negative: an alert firing since before the storm.
        let am_start = am_end.get(&cg).map(|t| match t.duration_since(started) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        });
        println!(
            "  {cg}: trigger events {events}, kernel some stall +{stall} ms during the storm, burner (ms on CPU, switch-ins) {:?}, cpu.pressure {:?}, Alertmanager startsAt - storm start {am_start:?} s",
            switches(*i),
            line.lines().next().unwrap_or("")
        );
    }
    drop(_burners);
    // The parent's guard kills every burner and removes the children.
    drop(parent);
    let _ = Path::new(d);
}
