#!/usr/bin/env python3
"""Lints the Grafana dashboards and writes their queries as a Prometheus
rules file, one recording rule per query with the variables substituted, so
that `promtool check rules` parses every expression with Prometheus's own
parser.

usage: dashboards_lint.py RULES_OUT DASHBOARD.json...

Lint: JSON parses; schemaVersion 39; no __inputs; a `datasource` variable of
type datasource/prometheus and every panel and target using ${datasource};
a `node` variable; unique panel ids; gridPos inside 24 columns; each target
has a refId unique in its panel; every $variable used is defined.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_exprs  # noqa: E402

DS = {"type": "prometheus", "uid": "${datasource}"}


def lint(path):
    errs = []
    d = dashboard_exprs.load(path)
    if "__inputs" in d:
        errs.append("has __inputs (must be import-free)")
    if d.get("schemaVersion") != 39:
        errs.append(f"schemaVersion {d.get('schemaVersion')} != 39")
    for k in ("uid", "title"):
        if not d.get(k):
            errs.append(f"missing {k}")
    vs = dashboard_exprs.variables(d)
    ds = vs.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errs.append("needs a `datasource` variable of type datasource, query prometheus")
    if "node" not in vs:
        errs.append("needs a `node` variable")
    for name, v in vs.items():
        if v.get("type") == "query" and v.get("datasource") != DS:
            errs.append(f"variable {name}: datasource must be {DS}")
    ids = set()
    for p in dashboard_exprs.panels(d):
        t = p.get("title", "?")
        if p.get("id") in ids:
            errs.append(f"panel {t}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24:
            errs.append(f"panel {t}: gridPos beyond 24 columns")
        if p.get("type") == "row":
            continue
        if p.get("datasource") != DS:
            errs.append(f"panel {t}: datasource must be {DS}")
        refs = set()
        for tg in p.get("targets", []):
            if tg.get("datasource") != DS:
                errs.append(f"panel {t}: target datasource must be {DS}")
            if not tg.get("expr", "").strip():
                errs.append(f"panel {t}: empty expr")
            if tg.get("refId") in refs:
                errs.append(f"panel {t}: duplicate refId {tg.get('refId')}")
            refs.add(tg.get("refId"))
        if not p.get("targets"):
            errs.append(f"panel {t}: no targets")
    return errs


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out, paths = argv[1], argv[2:]
    errs = []
    for p in paths:
        errs += [f"{os.path.basename(p)}: {e}" for e in lint(p)]
    qs = dashboard_exprs.all_queries(paths)
    lines = ["groups:"]
    for path, title, ref, expr, promql, unknown in qs:
        if unknown:
            errs.append(f"{os.path.basename(path)} / {title}: undefined variable(s) {unknown}")
    for path in paths:
        base = os.path.basename(path).removesuffix(".json")
        lines += [f"  - name: dashboard-{base}", "    rules:"]
        for i, (p, title, ref, expr, promql, _) in enumerate(q for q in qs if q[0] == path):
            lines.append(f"      - record: dashboard:{base.replace('-', '_')}:q{i:03d}")
            lines.append("        expr: |-")
            lines += ["          " + ln for ln in promql.splitlines()]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    for e in errs:
        print("  " + e)
    print(f"  {len(paths)} dashboards, {len(qs)} queries written to {out}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
