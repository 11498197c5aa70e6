#!/usr/bin/env python3
"""Runs every dashboard query against a live Prometheus and reports which
return data.

usage: check-dashboard-queries.py PROM_URL [DASHBOARD.json ...]

Variables are substituted as in check-ecosystem ($node, $cgroup, ... -> .*,
$__rate_interval -> 1m). Each query goes to PROM_URL/api/v1/query (instant,
now). Exits 1 if fewer than 90% of the queries return data (or any fails to
run), 2 on usage errors. Python 3 standard library only.
"""
import glob
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_exprs  # noqa: E402

THRESHOLD = 0.9


def query(base, promql, timeout=30):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except ValueError:
            return None, f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        return 1, None
    return len(result), None


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base = argv[1]
    paths = argv[2:]
    if not paths:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        paths = sorted(glob.glob(os.path.join(root, "dashboards", "*.json")))
    qs = dashboard_exprs.all_queries(paths)
    if not qs:
        print("no dashboard queries found", file=sys.stderr)
        return 2
    with_data, empty, errors = [], [], []
    for path, title, ref, expr, promql, _ in qs:
        n, err = query(base, promql)
        where = f"{os.path.basename(path)} / {title} / {ref}"
        if err:
            errors.append((where, promql, err))
            print(f"ERROR  {where}: {err}\n       {promql}")
        elif n:
            with_data.append(where)
            print(f"data   {where} ({n} series)")
        else:
            empty.append((where, promql))
            print(f"empty  {where}")
    total = len(qs)
    share = len(with_data) / total
    print(f"\n{len(with_data)}/{total} dashboard queries returned data ({share:.0%}), "
          f"{len(empty)} empty, {len(errors)} failed")
    if empty:
        print("returned nothing:")
        for where, promql in empty:
            print(f"  {where}\n    {promql}")
    if errors or share < THRESHOLD:
        print(f"FAIL: need at least {THRESHOLD:.0%} with data and no errors")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
