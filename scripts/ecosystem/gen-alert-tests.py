#!/usr/bin/env python3
"""Writes alerts/tests/cgroup-psi-exporter.tests.yaml: for every alert in
alerts/cgroup-psi-exporter.rules.yaml, one promtool test group with input
series where the alert fires (for one "hot" series) and does not (a "cool"
series, and an evaluation before the `for:` duration has passed).

The series and thresholds below are written by hand; only the expected
annotations are rendered from the rules file (with the few template
functions the rules use), so an annotation typo still shows up as a diff in
review. Run it after changing the rules; check-ecosystem then runs
`promtool test rules` on the output.
"""
import math
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "alerts", "cgroup-psi-exporter.rules.yaml")
OUT = os.path.join(ROOT, "alerts", "tests", "cgroup-psi-exporter.tests.yaml")

J = 'job="cgroup-psi-exporter"'
N1 = 'instance="node-1:9753"'
N2 = 'instance="node-2:9753"'
POD = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-abc.scope"
POD2 = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5678.slice/cri-containerd-def.scope"


def lbl(d):
    return ", ".join(f'{k}="{v}"' for k, v in d.items())


def humanize(v):
    # Go's template humanize for the magnitudes used here
    if v == 0:
        return "0"
    if abs(v) >= 1:
        for p in ["", "k", "M", "G", "T"]:
            if abs(v) < 1000:
                return f"{v:.4g}{p}"
            v /= 1000
        return f"{v:.4g}P"
    for p in ["", "m", "u", "n"]:
        if abs(v) >= 1:
            return f"{v:.4g}{p}"
        v *= 1000
    return f"{v:.4g}p"


def render(text, labels, value):
    def sub(m):
        expr = m.group(1).strip()
        if expr.startswith("$labels."):
            return labels.get(expr[len("$labels."):], "")
        if expr == "$value":
            return f"{value:g}"
        if expr == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        if expr == "$value | humanize":
            return humanize(value)
        raise SystemExit(f"unsupported template {expr!r}")
    return re.sub(r"\{\{(.*?)\}\}", sub, text)


def pressure(alert, res, kind, host, thr):
    metric = f"cgroup_pressure_{res}_{kind}_seconds_total"
    hot = {"cgroup": "/" if host else POD, "instance": "node-1:9753", "job": "cgroup-psi-exporter"}
    cool = {"cgroup": "/" if host else POD2, "instance": "node-2:9753" if host else "node-1:9753",
            "job": "cgroup-psi-exporter"}
    step = round((thr + 0.05) * 60)  # stalled seconds per minute
    series = [(f"{metric}{{{lbl(hot)}}}", f"0+{step}x50"),
              (f"{metric}{{{lbl(cool)}}}", f"0+{max(1, int(thr * 60) - 3)}x50")]
    if not host:
        # aggregate slices above the hot cgroup are as hot, but left out
        for agg in ("/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice", "/kubepods/burstable",
                    "/system.slice"):
            series.append((f'{metric}{{cgroup="{agg}", instance="node-1:9753", job="cgroup-psi-exporter"}}',
                           f"0+{step}x50"))
    return series, [(hot, step / 60)]


def cases():
    # alert -> (input series, [(labels of a firing alert, its value)], eval time)
    c = {}
    for name, res, kind, host, thr in [
        ("HostCPUPressureWaiting", "cpu", "waiting", True, 0.80),
        ("HostMemoryPressureWaiting", "memory", "waiting", True, 0.20),
        ("HostMemoryPressureStalled", "memory", "stalled", True, 0.10),
        ("HostIOPressureWaiting", "io", "waiting", True, 0.50),
        ("HostIOPressureStalled", "io", "stalled", True, 0.30),
        ("CgroupCPUPressureWaiting", "cpu", "waiting", False, 0.50),
        ("CgroupCPUPressureStalled", "cpu", "stalled", False, 0.25),
        ("CgroupMemoryPressureWaiting", "memory", "waiting", False, 0.20),
        ("CgroupMemoryPressureStalled", "memory", "stalled", False, 0.10),
        ("CgroupIOPressureWaiting", "io", "waiting", False, 0.50),
        ("CgroupIOPressureStalled", "io", "stalled", False, 0.30),
    ]:
        c[name] = pressure(name, res, kind, host, thr)
    hot = {"cgroup": POD, "instance": "node-1:9753", "job": "cgroup-psi-exporter"}
    cool = {"cgroup": POD2, "instance": "node-1:9753", "job": "cgroup-psi-exporter"}
    c["CgroupCPUThrottlingHigh"] = (
        [(f"cgroup_cpu_periods_total{{{lbl(hot)}}}", "0+600x50"),
         (f"cgroup_cpu_throttled_periods_total{{{lbl(hot)}}}", "0+300x50"),
         (f"cgroup_cpu_periods_total{{{lbl(cool)}}}", "0+600x50"),
         (f"cgroup_cpu_throttled_periods_total{{{lbl(cool)}}}", "0+6x50"),
         # an idle cgroup (no periods) must not divide by zero into an alert
         ('cgroup_cpu_periods_total{cgroup="/idle.slice", ' + N1 + ", " + J + "}", "0x50"),
         ('cgroup_cpu_throttled_periods_total{cgroup="/idle.slice", ' + N1 + ", " + J + "}", "0x50")],
        [(hot, 0.5)])
    oh = dict(hot, event="oom_kill")
    c["CgroupOOMKilled"] = (
        [(f"cgroup_memory_events_total{{{lbl(oh)}}}", "0x20 1x30"),
         (f'cgroup_memory_events_total{{{lbl(dict(cool, event="oom_kill"))}}}', "3x50"),
         (f'cgroup_memory_events_total{{{lbl(dict(hot, event="max"))}}}', "0+5x50")],
        [(oh, 1.0)])
    c["CgroupMemoryNearLimit"] = (
        [(f"cgroup_memory_working_set_bytes{{{lbl(hot)}}}", "950x50"),
         (f"cgroup_memory_limit_bytes{{{lbl(hot)}}}", "1000x50"),
         (f"cgroup_memory_working_set_bytes{{{lbl(cool)}}}", "100x50"),
         (f"cgroup_memory_limit_bytes{{{lbl(cool)}}}", "1000x50"),
         # no limit series: unlimited, never alerts
         ('cgroup_memory_working_set_bytes{cgroup="/system.slice", ' + N1 + ", " + J + "}", "5000x50")],
        [(hot, 0.95)])
    c["CgroupPidsNearLimit"] = (
        [(f"cgroup_pids_current{{{lbl(hot)}}}", "95x50"),
         (f"cgroup_pids_limit{{{lbl(hot)}}}", "100x50"),
         (f"cgroup_pids_current{{{lbl(cool)}}}", "10x50"),
         (f"cgroup_pids_limit{{{lbl(cool)}}}", "100x50")],
        [(hot, 0.95)])
    rh = dict(hot, container_id="abc", pod_uid="1234", qos_class="burstable")
    rc = dict(cool, container_id="def", pod_uid="5678", qos_class="besteffort")
    rm = {"cgroup": "/kubepods.slice/x.scope", "container_id": "ghi", "instance": "node-1:9753",
          "job": "cgroup-psi-exporter"}
    c["CgroupContainerRunningAsHostRoot"] = (
        [(f"cgroup_host_root_processes{{{lbl(rh)}}}", "2x50"),
         (f'cgroup_host_namespace{{{lbl(dict(rh, type="user"))}}}', "1x50"),
         (f"cgroup_host_root_processes{{{lbl(rc)}}}", "0x50"),
         (f'cgroup_host_namespace{{{lbl(dict(rc, type="user"))}}}', "1x50"),
         # root inside its own (remapped) user namespace: not host root
         (f"cgroup_host_root_processes{{{lbl(rm)}}}", "3x50"),
         (f'cgroup_host_namespace{{{lbl(dict(rm, type="user"))}}}', "0x50")],
        [(rh, 2.0)])
    c["CgroupPSIExporterDown"] = (
        [(f"up{{{J}, {N1}}}", "0x50"), (f"up{{{J}, {N2}}}", "1x50"),
         (f'up{{job="node-exporter", {N1}}}', "0x50")],
        [({"instance": "node-1:9753", "job": "cgroup-psi-exporter"}, 0.0)])
    c["CgroupPSIExporterReadErrors"] = (
        [(f'cgroup_psi_exporter_read_errors_total{{{J}, {N1}, file="memory.stat"}}', "0+6x50"),
         (f'cgroup_psi_exporter_read_errors_total{{{J}, {N2}, file="memory.stat"}}', "4x50")],
        [({"instance": "node-1:9753", "file": "memory.stat"}, 0.1)])
    c["CgroupPSIExporterDiscoveryFallback"] = (
        [(f"cgroup_psi_exporter_discovery_fallback{{{J}, {N1}}}", "1x50"),
         (f"cgroup_psi_exporter_discovery_fallback{{{J}, {N2}}}", "0x50")],
        [({"instance": "node-1:9753", "job": "cgroup-psi-exporter"}, 1.0)])
    c["CgroupPSIExporterTriggerErrors"] = (
        [(f'psi_trigger_errors_total{{{J}, {N1}, rule="memory-pressure", reason="einval"}}', "0+1x50"),
         (f'psi_trigger_errors_total{{{J}, {N2}, rule="memory-pressure", reason="einval"}}', "7x50")],
        [({"instance": "node-1:9753", "rule": "memory-pressure", "reason": "einval"}, 10.0)])
    c["CgroupPSIExporterNotificationsFailing"] = (
        [(f'psi_alert_notifications_total{{{J}, {N1}, receiver="am-0", outcome="failure"}}', "0+6x50"),
         (f'psi_alert_notifications_total{{{J}, {N1}, receiver="am-0", outcome="success"}}', "0+60x50"),
         (f'psi_alert_notifications_total{{{J}, {N2}, receiver="am-0", outcome="success"}}', "0+60x50"),
         (f'psi_alert_notifications_total{{{J}, {N2}, receiver="am-0", outcome="failure"}}', "2x50")],
        [({"instance": "node-1:9753", "receiver": "am-0"}, 0.1)])
    c["CgroupPSIExporterKubeletDown"] = (
        [(f"cgroup_psi_exporter_kubelet_up{{{J}, {N1}}}", "0x50"),
         (f"cgroup_psi_exporter_kubelet_up{{{J}, {N2}}}", "1x50")],
        [({"instance": "node-1:9753", "job": "cgroup-psi-exporter"}, 0.0)])
    c["CgroupPSIExporterConfigReloadFailed"] = (
        [(f"cgroup_psi_exporter_config_last_reload_successful{{{J}, {N1}}}", "0x50"),
         (f"cgroup_psi_exporter_config_last_reload_successful{{{J}, {N2}}}", "1x50")],
        [({"instance": "node-1:9753", "job": "cgroup-psi-exporter"}, 0.0)])
    return c


def dur_minutes(s):
    m = re.fullmatch(r"(\d+)([smh])", s)
    n, u = int(m.group(1)), m.group(2)
    return {"s": n / 60, "m": n, "h": n * 60}[u]


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else OUT
    rules = {}
    for g in yaml.safe_load(open(RULES))["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                rules[r["alert"]] = r
    cs = cases()
    missing = set(rules) - set(cs)
    extra = set(cs) - set(rules)
    if missing or extra:
        sys.exit(f"tests out of step with rules: missing {sorted(missing)}, unknown {sorted(extra)}")
    out = ["# Generated by scripts/ecosystem/gen-alert-tests.py from hand-written cases;",
           "# run with: promtool test rules alerts/tests/cgroup-psi-exporter.tests.yaml",
           "rule_files:", "  - ../cgroup-psi-exporter.rules.yaml", "evaluation_interval: 1m", "tests:"]
    for name, rule in rules.items():
        series, fires = cs[name]
        fr = dur_minutes(rule.get("for", "0m"))
        # pending from ~1m (first rate), firing after `for`; the OOM series
        # steps up at 21m
        fire_at = 23 if name == "CgroupOOMKilled" else int(fr) + 10
        out.append(f"  # {name}: fires for the hot series only, and not before its for: {rule.get('for')}")
        out.append("  - interval: 1m")
        out.append("    input_series:")
        for s, v in series:
            out.append(f"      - series: '{s}'")
            out.append(f"        values: '{v}'")
        out.append("    alert_rule_test:")
        if fr >= 2:
            out.append(f"      - eval_time: {int(fr) - 1 if fr > 1 else 0}m")
            out.append(f"        alertname: {name}")
            out.append("        exp_alerts: []")
        out.append(f"      - eval_time: {fire_at}m")
        out.append(f"        alertname: {name}")
        out.append("        exp_alerts:")
        for labels, value in fires:
            lab = dict(labels)
            lab.update(rule.get("labels", {}))
            out.append("          - exp_labels:")
            for k, v in lab.items():
                out.append(f"              {k}: {yaml.safe_dump(v, default_style=chr(34)).strip()}")
            out.append("            exp_annotations:")
            for k, v in rule["annotations"].items():
                text = render(v, labels, value)
                out.append(f"              {k}: {yaml.safe_dump(text, default_style=chr(34), width=10000).strip()}")
        if name == "CgroupOOMKilled":
            # the kill is 10 minutes old: no longer an increase in 5m
            out.append("      - eval_time: 40m")
            out.append(f"        alertname: {name}")
            out.append("        exp_alerts: []")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {out_path}: {len(rules)} alerts")


if __name__ == "__main__":
    main()
