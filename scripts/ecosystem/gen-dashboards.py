#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ (schemaVersion 39, no
__inputs: the data source is the ${datasource} variable). Edit the panels
here, run it, commit both; check-ecosystem type-checks and lints the JSON.
"""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DS = {"type": "prometheus", "uid": "${datasource}"}
# Output folder: dashboards/ unless given as the first argument.
OUTDIR = os.path.join(ROOT, "dashboards")


class Board:
    def __init__(self, uid, title, description, tags):
        self.d = {
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "description": description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [{"asDropdown": True, "includeVars": True, "keepTime": True, "tags": ["cgroup-psi-exporter"],
                       "targetBlank": False, "title": "cgroup-psi-exporter", "tooltip": "", "type": "dashboards",
                       "icon": "external link", "url": ""}],
            "panels": [],
            "refresh": "30s",
            "schemaVersion": 39,
            "tags": ["cgroup-psi-exporter"] + tags,
            "templating": {"list": [{
                "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                "hide": 0, "includeAll": False, "multi": False, "options": [],
                "refresh": 1, "regex": "", "skipUrlSync": False}]},
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": title,
            "uid": uid,
            "version": 1,
            "weekStart": "",
        }
        self.x = 0
        self.y = 0
        self.rowh = 0
        self.next_id = 1

    def var(self, name, label, query, multi=False, include_all=False, all_value=None, description=""):
        v = {"name": name, "label": label, "type": "query", "datasource": DS,
             "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
             "hide": 0, "includeAll": include_all, "multi": multi, "options": [],
             "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "description": description}
        if all_value is not None:
            v["allValue"] = all_value
        self.d["templating"]["list"].append(v)

    def _place(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.rowh
            self.rowh = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.rowh = max(self.rowh, h)
        return pos

    def row(self, title):
        if self.x:
            self.x = 0
            self.y += self.rowh
            self.rowh = 0
        self.d["panels"].append({"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                                 "id": self.next_id, "panels": [], "title": title, "type": "row"})
        self.next_id += 1
        self.y += 1

    def panel(self, kind, title, targets, unit="short", w=12, h=8, description="", min_=0, max_=None,
              options=None, custom=None, instant=False, thresholds=None):
        tg = []
        for i, t in enumerate(targets):
            expr, legend = t
            q = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
            if instant:
                q.update({"instant": True, "range": False, "format": "table"})
            else:
                q.update({"range": True})
            tg.append(q)
        defaults = {"unit": unit, "color": {"mode": "palette-classic" if kind == "timeseries" else "thresholds"}}
        if min_ is not None:
            defaults["min"] = min_
        if max_ is not None:
            defaults["max"] = max_
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds or [{"color": "green", "value": None}]}
        if kind == "timeseries":
            defaults["custom"] = dict({"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                       "showPoints": "never", "spanNulls": False, "axisSoftMin": 0,
                                       "stacking": {"group": "A", "mode": "none"}}, **(custom or {}))
            opts = {"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                               "calcs": ["mean", "max", "lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}}
        elif kind == "stat":
            opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
                    "textMode": "auto"}
        elif kind == "bargauge":
            opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True}
        elif kind == "table":
            opts = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
        else:
            opts = {}
        opts.update(options or {})
        p = {"datasource": DS, "description": description,
             "fieldConfig": {"defaults": defaults, "overrides": []},
             "gridPos": self._place(w, h), "id": self.next_id, "options": opts,
             "targets": tg, "title": title, "type": kind}
        if kind == "table":
            p["transformations"] = [{"id": "organize", "options": {
                "excludeByName": {"Time": True, "__name__": True, "job": True}, "indexByName": {}, "renameByName": {}}}]
        self.next_id += 1
        self.d["panels"].append(p)

    def write(self, name):
        path = os.path.join(OUTDIR, name)
        with open(path, "w") as f:
            json.dump(self.d, f, indent=2)
            f.write("\n")
        print("wrote", path)


N = 'instance=~"$node"'
RI = "$__rate_interval"
PCT = "percentunit"
RES = [("cpu", "CPU"), ("memory", "Memory"), ("io", "IO")]
NODE_VAR = ("node", "Node", "label_values(cgroup_psi_exporter_build_info, instance)")


def node_overview():
    b = Board("cgroup-psi-node", "cgroup-psi-exporter / Node overview",
              "Host and per-cgroup pressure (PSI), throttling, OOM kills and namespaces of the selected nodes.",
              ["psi", "cgroups"])
    b.var(*NODE_VAR, multi=True, include_all=True, all_value=".*")
    b.d["templating"]["list"].append({
        "name": "topn", "label": "Top N", "type": "custom", "query": "5,10,20,50",
        "current": {"selected": True, "text": "10", "value": "10"}, "hide": 0, "includeAll": False,
        "multi": False, "options": [{"selected": o == "10", "text": o, "value": o} for o in ["5", "10", "20", "50"]],
        "skipUrlSync": False})
    b.row("Host pressure (cgroup=\"/\")")
    for res, name in RES:
        b.panel("stat", f"Host {name} waiting (now)",
                [(f'max(rate(cgroup_pressure_{res}_waiting_seconds_total{{{N}, cgroup="/"}}[{RI}]))', "")],
                unit=PCT, w=4, h=4, max_=1,
                description=f"Share of time some task on the worst selected node waited for {name} (PSI some).",
                thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.1},
                            {"color": "red", "value": 0.3}])
    for res, name in RES[1:]:
        b.panel("stat", f"Host {name} stalled (now)",
                [(f'max(rate(cgroup_pressure_{res}_stalled_seconds_total{{{N}, cgroup="/"}}[{RI}]))', "")],
                unit=PCT, w=4, h=4, max_=1,
                description=f"Share of time all non-idle tasks were stalled on {name} at once (PSI full).",
                thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.05},
                            {"color": "red", "value": 0.1}])
    b.panel("stat", "Cgroups tracked", [(f"sum(cgroup_psi_exporter_cgroups{{{N}}})", "")], w=4, h=4)
    b.panel("timeseries", "Host pressure: waiting (PSI some)",
            [(f'rate(cgroup_pressure_{r}_waiting_seconds_total{{{N}, cgroup="/"}}[{RI}])', "{{instance}} " + r)
             for r, _ in RES], unit=PCT,
            description="Fraction of wall time at least one task was stalled on the resource.")
    b.panel("timeseries", "Host pressure: stalled (PSI full)",
            [(f'rate(cgroup_pressure_{r}_stalled_seconds_total{{{N}, cgroup="/"}}[{RI}])', "{{instance}} " + r)
             for r in ("memory", "io")], unit=PCT,
            description="Fraction of wall time all non-idle tasks were stalled at once. CPU full is not "
                        "defined for the whole host.")
    b.row("Top cgroups by pressure")
    for res, name in RES:
        b.panel("timeseries", f"Top $topn cgroups: {name} waiting",
                [(f'topk($topn, rate(cgroup_pressure_{res}_waiting_seconds_total{{{N}, cgroup!="/"}}[{RI}]))',
                  "{{cgroup}}")], unit=PCT, w=8,
                description="Parent cgroups include their children's stalls.")
    for res, name in RES:
        b.panel("timeseries", f"Top $topn cgroups: {name} stalled",
                [(f'topk($topn, rate(cgroup_pressure_{res}_stalled_seconds_total{{{N}, cgroup!="/"}}[{RI}]))',
                  "{{cgroup}}")], unit=PCT, w=8)
    b.row("CPU throttling and memory")
    b.panel("timeseries", "Top $topn cgroups: throttled periods",
            [(f"topk($topn, rate(cgroup_cpu_throttled_periods_total{{{N}}}[{RI}]) / "
              f"(rate(cgroup_cpu_periods_total{{{N}}}[{RI}]) > 0))", "{{cgroup}}")], unit=PCT,
            description="Share of CFS periods in which the cgroup hit its CPU quota (cpu.max).")
    b.panel("timeseries", "Top $topn cgroups: throttled time",
            [(f"topk($topn, rate(cgroup_cpu_throttled_seconds_total{{{N}}}[{RI}]))", "{{cgroup}}")],
            unit="s", description="Seconds per second the cgroup's tasks were held back by the CPU quota.")
    b.panel("timeseries", "OOM kills",
            [(f'sum by (instance, cgroup) (increase(cgroup_memory_events_total{{{N}, event="oom_kill"}}[{RI}])) > 0',
              "{{instance}} {{cgroup}}"),
             (f'sum by (instance) (increase(cgroup_memory_events_total{{{N}, event="oom_kill", cgroup="/"}}[{RI}]))',
              "{{instance}} total")],
            custom={"drawStyle": "bars", "fillOpacity": 80},
            description="Processes killed by the kernel OOM killer (memory.events oom_kill).")
    b.panel("timeseries", "Top $topn cgroups: working set / memory limit",
            [(f"topk($topn, cgroup_memory_working_set_bytes{{{N}}} / (cgroup_memory_limit_bytes{{{N}}} > 0))",
              "{{cgroup}}")], unit=PCT, max_=1)
    b.row("Namespaces and privilege")
    b.panel("bargauge", "Namespaces by type", [(f"sum by (type) (namespaces{{{N}}})", "{{type}}")], w=8)
    b.panel("stat", "Containers with processes as real root",
            [(f'count(cgroup_host_root_processes{{{N}, container_id!=""}} > 0) or vector(0)', "")], w=4,
            description="Container cgroups with at least one process running as uid 0 on the host.",
            thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}])
    b.panel("stat", "User namespaces mapping root to host root",
            [(f"count(namespace_user_root_mapped_to_host{{{N}}} == 1) or vector(0)", "")], w=4)
    b.panel("stat", "Processes as host root",
            [(f'sum(cgroup_host_root_processes{{{N}, cgroup="/"}})', "")], w=4,
            description="Processes whose real uid is 0 on the host (whole node).")
    b.panel("stat", "Cgroups in the host network namespace",
            [(f'count(cgroup_host_namespace{{{N}, type="net"}} == 1) or vector(0)', "")], w=4)
    b.panel("table", "Cgroups with processes running as host root",
            [(f'cgroup_host_root_processes{{{N}, cgroup!="/"}} > 0', "")], w=24, h=8, instant=True,
            description="Per cgroup, processes whose real uid is 0 on the host.")
    b.row("Exporter")
    b.panel("timeseries", "Scrape duration", [(f"cgroup_psi_exporter_scrape_duration_seconds{{{N}}}", "{{instance}}")],
            unit="s", w=8)
    b.panel("timeseries", "Read errors",
            [(f"sum by (instance, file) (rate(cgroup_psi_exporter_read_errors_total{{{N}}}[{RI}]))",
              "{{instance}} {{file}}")], unit="ops", w=8)
    b.panel("timeseries", "Rescans and inotify watches",
            [(f"sum by (instance, reason) (increase(cgroup_psi_exporter_rescans_total{{{N}}}[{RI}]))",
              "{{instance}} rescan {{reason}}"),
             (f"cgroup_psi_exporter_inotify_watches{{{N}}}", "{{instance}} watches")], w=8)
    b.write("node-overview.json")


def cgroup_detail():
    b = Board("cgroup-psi-cgroup", "cgroup-psi-exporter / Cgroup detail",
              "Usage against limits, throttling, OOM events, IO, pids and pressure of one cgroup.",
              ["psi", "cgroups"])
    b.var(*NODE_VAR)
    b.var("pod", "Pod UID", 'label_values(cgroup_cpu_usage_seconds_total{instance=~"$node"}, pod_uid)',
          include_all=True, all_value=".*", description="Narrows the cgroup list to one pod's cgroups.")
    b.var("cgroup", "Cgroup",
          'label_values(cgroup_cpu_usage_seconds_total{instance=~"$node", pod_uid=~"$pod"}, cgroup)')
    C = 'instance=~"$node", cgroup=~"$cgroup"'
    b.row("CPU")
    b.panel("timeseries", "CPU usage vs limit",
            [(f"rate(cgroup_cpu_usage_seconds_total{{{C}}}[{RI}])", "usage"),
             (f"rate(cgroup_cpu_user_seconds_total{{{C}}}[{RI}])", "user"),
             (f"rate(cgroup_cpu_system_seconds_total{{{C}}}[{RI}])", "system"),
             (f"cgroup_cpu_limit_cores{{{C}}}", "limit (cpu.max)"),
             (f"cgroup_cpuset_cpus{{{C}}}", "cpuset CPUs")], unit="short",
            description="CPU cores used. The limit is absent when cpu.max is 'max'.")
    b.panel("timeseries", "CPU throttling",
            [(f"rate(cgroup_cpu_throttled_periods_total{{{C}}}[{RI}]) / (rate(cgroup_cpu_periods_total{{{C}}}[{RI}]) > 0)",
              "throttled periods"),
             (f"rate(cgroup_cpu_throttled_seconds_total{{{C}}}[{RI}])", "throttled seconds/s")], unit=PCT)
    b.row("Memory")
    b.panel("timeseries", "Memory usage vs limit",
            [(f"cgroup_memory_usage_bytes{{{C}}}", "usage"),
             (f"cgroup_memory_working_set_bytes{{{C}}}", "working set"),
             (f"cgroup_memory_limit_bytes{{{C}}}", "limit (memory.max)"),
             (f"cgroup_memory_high_bytes{{{C}}}", "high (memory.high)"),
             (f"cgroup_memory_peak_bytes{{{C}}}", "peak"),
             (f"cgroup_memory_swap_usage_bytes{{{C}}}", "swap")], unit="bytes")
    b.panel("timeseries", "Memory by type (memory.stat)",
            [(f'cgroup_memory_stat_bytes{{{C}, stat=~"anon|file|kernel|kernel_stack|shmem|sock|slab"}}',
              "{{stat}}")], unit="bytes", custom={"stacking": {"group": "A", "mode": "normal"}})
    b.panel("timeseries", "Memory events",
            [(f"increase(cgroup_memory_events_total{{{C}}}[{RI}])", "{{event}}")],
            custom={"drawStyle": "bars", "fillOpacity": 80},
            description="high: throttled at memory.high; max: hit memory.max; oom / oom_kill: the OOM killer ran.")
    b.panel("timeseries", "Processes",
            [(f"cgroup_processes{{{C}}}", "processes"), (f"cgroup_host_root_processes{{{C}}}", "as host root"),
             (f"cgroup_pids_current{{{C}}}", "pids (tasks)"), (f"cgroup_pids_limit{{{C}}}", "pids.max")])
    b.row("IO")
    b.panel("timeseries", "IO bytes",
            [(f"rate(cgroup_io_read_bytes_total{{{C}}}[{RI}])", "read {{device}}"),
             (f"rate(cgroup_io_write_bytes_total{{{C}}}[{RI}])", "write {{device}}")], unit="Bps")
    b.panel("timeseries", "IO operations",
            [(f"rate(cgroup_io_reads_total{{{C}}}[{RI}])", "reads {{device}}"),
             (f"rate(cgroup_io_writes_total{{{C}}}[{RI}])", "writes {{device}}")], unit="iops")
    b.row("Pressure (PSI)")
    b.panel("timeseries", "Pressure: waiting (some)",
            [(f"rate(cgroup_pressure_{r}_waiting_seconds_total{{{C}}}[{RI}])", r) for r, _ in RES], unit=PCT)
    b.panel("timeseries", "Pressure: stalled (full)",
            [(f"rate(cgroup_pressure_{r}_stalled_seconds_total{{{C}}}[{RI}])", r) for r, _ in RES], unit=PCT)
    b.write("cgroup-detail.json")


def psi_agent():
    b = Board("cgroup-psi-agent", "cgroup-psi-exporter / PSI alerting agent",
              "PSI triggers armed and fired by the agent, alerts firing, and their delivery to Alertmanager.",
              ["psi", "alerting"])
    b.var(*NODE_VAR, multi=True, include_all=True, all_value=".*")
    b.var("rule", "Rule", 'label_values(psi_triggers_armed{instance=~"$node"}, rule)', multi=True,
          include_all=True, all_value=".*")
    b.var("cgroup", "Cgroup", 'label_values(psi_trigger_events_total{instance=~"$node", rule=~"$rule"}, cgroup)',
          multi=True, include_all=True, all_value=".*")
    R = 'instance=~"$node", rule=~"$rule"'
    b.row("Triggers")
    b.panel("stat", "Triggers armed", [(f"sum(psi_triggers_armed{{{R}}})", "")], w=6, h=4)
    b.panel("stat", "Alerts firing", [(f"sum(psi_alerts_firing{{{R}}})", "")], w=6, h=4,
            thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}])
    b.panel("stat", "Trigger errors (range)", [(f"sum(increase(psi_trigger_errors_total{{{R}}}[$__range]))", "")],
            w=6, h=4, thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}])
    b.panel("stat", "Alert queue", [(f'sum(psi_alert_queue_length{{instance=~"$node"}})', "")], w=6, h=4)
    b.panel("timeseries", "Trigger events by rule",
            [(f'sum by (rule, resource, kind) (rate(psi_trigger_events_total{{{R}, cgroup=~"$cgroup"}}[{RI}]))',
              "{{rule}} {{resource}} {{kind}}")], unit="ops",
            description="Each event is one POLLPRI from a kernel PSI trigger: the threshold was crossed within one window.")
    b.panel("timeseries", "Top cgroups by trigger events",
            [(f'topk(10, sum by (cgroup) (increase(psi_trigger_events_total{{{R}, cgroup=~"$cgroup"}}[{RI}])))',
              "{{cgroup}}")])
    b.panel("timeseries", "Triggers armed by rule", [(f"sum by (rule) (psi_triggers_armed{{{R}}})", "{{rule}}")])
    b.panel("timeseries", "Alerts firing by rule", [(f"sum by (rule) (psi_alerts_firing{{{R}}})", "{{rule}}")])
    b.panel("timeseries", "Trigger errors",
            [(f"sum by (rule, reason) (increase(psi_trigger_errors_total{{{R}}}[{RI}]))", "{{rule}} {{reason}}")],
            w=24, custom={"drawStyle": "bars", "fillOpacity": 80})
    b.row("Delivery")
    b.panel("timeseries", "Notifications by outcome",
            [(f'sum by (receiver, outcome) (rate(psi_alert_notifications_total{{instance=~"$node"}}[{RI}]))',
              "{{receiver}} {{outcome}}")], unit="ops")
    b.panel("timeseries", "Queue length", [(f'psi_alert_queue_length{{instance=~"$node"}}', "{{instance}} {{receiver}}")])
    b.write("psi-agent.json")


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1:
        OUTDIR = sys.argv[1]
        os.makedirs(OUTDIR, exist_ok=True)
    node_overview()
    cgroup_detail()
    psi_agent()
