#!/usr/bin/env python3
"""Renders and lints the Helm chart with helm-python-sdk (Helm's own engine,
no helm binary), then validates what it renders.

usage: helm_check.py CHART OUTDIR [VALUES.yaml ...]

For the chart's default values and for each values file: values.schema.json
validation, `helm lint --strict` (any warning or error fails), render, then
every manifest is written to OUTDIR/<set>/NN-<Kind>-<name>.yaml for
kubernetes-validate. The prometheus-operator kinds have no schema in
kubernetes-validate: PrometheusRule groups are written to
OUTDIR/<set>/prometheusrule-groups.yaml for `promtool check rules`, and
ServiceMonitor gets a structural check here. A few policy assertions on the
DaemonSet (the security contract of the chart) run too.
"""
import os
import sys

import helm_python as helm
import yaml

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
SM_ENDPOINT_KEYS = {"port", "path", "interval", "scrapeTimeout", "honorLabels", "relabelings",
                    "metricRelabelings", "scheme", "tlsConfig", "bearerTokenSecret", "authorization",
                    "basicAuth", "params", "targetPort", "honorTimestamps", "followRedirects",
                    "enableHttp2", "proxyUrl", "filterRunning", "oauth2", "trackTimestampsStaleness"}
SM_SPEC_KEYS = {"jobLabel", "namespaceSelector", "selector", "endpoints", "targetLabels", "podTargetLabels",
                "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
                "attachMetadata", "scrapeProtocols", "keepDroppedTargets", "bodySizeLimit", "scrapeClass",
                "selectorMechanism", "fallbackScrapeProtocol"}
RELABEL_KEYS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def check_servicemonitor(obj):
    check(obj.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
    spec = obj.get("spec", {})
    extra = set(spec) - SM_SPEC_KEYS
    check(not extra, f"ServiceMonitor spec: unknown keys {sorted(extra)}")
    check(spec.get("selector", {}).get("matchLabels"), "ServiceMonitor needs selector.matchLabels")
    eps = spec.get("endpoints")
    check(isinstance(eps, list) and eps, "ServiceMonitor needs endpoints")
    for ep in eps:
        extra = set(ep) - SM_ENDPOINT_KEYS
        check(not extra, f"ServiceMonitor endpoint: unknown keys {sorted(extra)}")
        check(ep.get("port") == "metrics", "ServiceMonitor endpoint must use the named port 'metrics'")
        for r in (ep.get("relabelings") or []) + (ep.get("metricRelabelings") or []):
            extra = set(r) - RELABEL_KEYS
            check(not extra, f"relabeling: unknown keys {sorted(extra)} (camelCase in ServiceMonitors)")


def check_daemonset(obj, values):
    pod = obj["spec"]["template"]["spec"]
    check(pod.get("hostPID") is True, "DaemonSet must use hostPID")
    c = [c for c in pod["containers"] if c["name"] == "exporter"][0]
    args = c.get("args", [])
    for a in ("--path.procfs=/host/proc", "--path.cgroupfs=/host/sys/fs/cgroup",
              "--config.file=/etc/cgroup-psi-exporter/config.yaml"):
        check(a in args, f"exporter args lack {a}")
    sc = c.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    check(not sc.get("privileged"), "must not be privileged")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], "capabilities must drop ALL")
    allowed = {"DAC_READ_SEARCH", "SYS_PTRACE", "SYS_RESOURCE"}
    check(set(caps.get("add", [])) <= allowed, f"unexpected capabilities {caps.get('add')}")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    check(mounts["proc"]["mountPath"] == "/host/proc" and mounts["proc"].get("readOnly"), "/host/proc read-only")
    rules = ((values.get("config") or {}).get("psi") or {}).get("rules")
    forced = (values.get("hostPaths") or {}).get("cgroupfsReadWrite")
    cg = mounts["cgroupfs"]
    check(cg["mountPath"] == "/host/sys/fs/cgroup", "cgroupfs mount path")
    check(bool(cg.get("readOnly")) == (not rules and not forced),
          "cgroupfs must be read-only unless PSI rules are configured or hostPaths.cgroupfsReadWrite")
    env = {e["name"]: e for e in c.get("env", [])}
    field = lambda name: env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    check(field("NODE_NAME") == "spec.nodeName", "NODE_NAME from the downward API")
    # The exporter expands ${NODE_IP} in kubernetes.kubelet_url itself: no
    # init container (and no second image) rewrites the config.
    check(field("NODE_IP") == "status.hostIP", "NODE_IP from the downward API (status.hostIP)")
    names = [e["name"] for e in c.get("env", [])]
    check(len(names) == len(set(names)), f"duplicate env names {names}")
    check(not pod.get("initContainers"), "no init containers")
    check(len(pod["containers"]) == 1, "one container")
    check(mounts["config"]["mountPath"] == "/etc/cgroup-psi-exporter" and mounts["config"].get("readOnly"),
          "config mounted read-only at /etc/cgroup-psi-exporter")
    vols = {v["name"]: v for v in pod["volumes"]}
    check(vols["config"].get("configMap", {}).get("name") == obj["metadata"]["name"],
          "the config volume is the chart's ConfigMap")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness /healthz")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness /readyz")
    check([t for t in pod.get("tolerations", []) if t.get("operator") == "Exists" and not t.get("key")],
          "default tolerations must cover every taint")


def check_config(obj, values):
    cfg = yaml.safe_load(obj["data"]["config.yaml"]) or {}
    kubelet = values.get("kubelet") or {}
    url = (cfg.get("kubernetes") or {}).get("kubelet_url")
    if not kubelet.get("enabled"):
        check(url is None, "kubernetes section without kubelet.enabled")
    elif "url" not in kubelet:
        # Left for the exporter to expand from the pod's NODE_IP.
        check(url == "https://${NODE_IP}:10250", f"default kubelet_url {url!r}")


def run_set(chart, label, values, outdir):
    d = os.path.join(outdir, label)
    os.makedirs(d, exist_ok=True)
    report = helm.lint(chart, values, strict=True, namespace="monitoring")
    msgs = report.get("messages", [])
    for m in msgs:
        print(f"  lint [{ {0: 'unknown', 1: 'info', 2: 'warning', 3: 'error'}.get(m['severity'])}] "
              f"{m['path']}: {m['error']}")
    bad = [m for m in msgs if m["severity"] >= 2] + report.get("errors", [])
    check(not bad, f"helm lint --strict: {len(bad)} warning(s)/error(s)")
    with helm.Chart.load(chart) as c:
        c.validate_schema(values)
        manifests = c.render(values, name="cgroup-psi-exporter", namespace="monitoring", is_install=True)
    n = 0
    kinds = {}
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            check(manifests[path].strip(), "NOTES.txt renders empty")
            continue
        for obj in yaml.safe_load_all(manifests[path]):
            if not obj:
                continue
            n += 1
            kind = obj["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
            name = obj["metadata"]["name"]
            fn = os.path.join(d, f"{n:02d}-{kind}-{name}.yaml")
            if kind in CRD_KINDS:
                fn = os.path.join(d, f"crd-{n:02d}-{kind}-{name}.yaml")
            with open(fn, "w") as f:
                yaml.safe_dump(obj, f, sort_keys=False)
            if kind == "ServiceMonitor":
                check_servicemonitor(obj)
            elif kind == "PrometheusRule":
                with open(os.path.join(d, "prometheusrule-groups.yaml"), "w") as f:
                    yaml.safe_dump({"groups": obj["spec"]["groups"]}, f, sort_keys=False)
            elif kind == "DaemonSet":
                check_daemonset(obj, values)
            elif kind == "ConfigMap" and "config.yaml" in obj.get("data", {}):
                check_config(obj, values)
    print(f"  {label}: {n} objects: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
    return kinds


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    chart, outdir = argv[1], argv[2]
    sets = [("default", {})]
    for vf in argv[3:]:
        with open(vf) as f:
            sets.append((os.path.basename(vf).removesuffix(".yaml"), yaml.safe_load(f) or {}))
    print(f"  helm-python-sdk: helm-c {helm.helm_c_version()}, Helm SDK {helm.helm_sdk_version()}")
    failed = False
    for label, values in sets:
        try:
            kinds = run_set(chart, label, values, outdir)
            if label != "default":
                missing = {"ServiceMonitor", "PrometheusRule", "ClusterRole", "ClusterRoleBinding"} - set(kinds)
                check(not missing, f"{label}: expected kinds not rendered: {sorted(missing)}")
                check(kinds.get("ConfigMap", 0) >= 2, f"{label}: dashboard ConfigMaps not rendered")
            else:
                check("ClusterRole" not in kinds and "ServiceMonitor" not in kinds,
                      "default values must render no RBAC and no ServiceMonitor")
        except (Failed, helm.HelmError) as e:
            print(f"  FAIL {label}: {e}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
