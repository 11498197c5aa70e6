"""Shared by check-ecosystem and check-dashboard-queries.py (stdlib only).

Walks Grafana dashboard JSON, yields every PromQL target (panels nested in
rows too) and substitutes the dashboard variables so the result is plain
PromQL: regex-matched variables become ".*", time variables a duration.
"""
import json
import re

# Grafana's built-in variables, replaced by a value of the right type.
BUILTIN = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
# Dashboard variables that are not label regexes.
SPECIAL = {"topn": "10"}

VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


def panels(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        for sub in p.get("panels", []) or []:
            yield sub


def targets(dashboard):
    """(panel title, refId, raw expr) for each Prometheus target."""
    for p in panels(dashboard):
        for t in p.get("targets", []) or []:
            if "expr" in t:
                yield p.get("title", ""), t.get("refId", ""), t["expr"]


def variables(dashboard):
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr, defined=None):
    """Returns (promql, unknown variable names)."""
    unknown = []

    def sub(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTIN:
            return BUILTIN[name]
        if name in SPECIAL:
            return SPECIAL[name]
        if defined is not None and name not in defined:
            unknown.append(name)
        return ".*"

    return VAR_RE.sub(sub, expr), unknown


def load(path):
    with open(path) as f:
        return json.load(f)


def all_queries(paths):
    """[(file, panel title, refId, raw expr, promql, unknown vars)]."""
    out = []
    for path in paths:
        d = load(path)
        defined = set(variables(d))
        for title, ref, expr in targets(d):
            q, unknown = substitute(expr, defined)
            out.append((path, title, ref, expr, q, unknown))
    return out
