#!/usr/bin/python3
"""Helpers of scripts/check-monitoring (Debian's python3 with python3-yaml).

  monitoring.py promtool-config SRC OUT SDFILE RULES
      SRC's kubernetes_sd_configs checked (role pod, namespace signal-factory)
      and swapped for a file_sd_configs reading SDFILE (Debian's Prometheus
      is built without Kubernetes discovery); rule_files -> RULES; 1 s scrape.
  monitoring.py relabel-pods SDFILE        pods as Kubernetes discovery lists them
  monitoring.py relabel-check URL          the targets Prometheus kept, as expected?
  monitoring.py live-config TARGETS RULES OUT
      a static config scraping each "<job> <host:port>" line of TARGETS.
  monitoring.py eval URL DASHBOARD RULES TIME
      every dashboard query and recording rule at TIME: error or empty = fail.
  monitoring.py render URL DASHBOARD START END OUTDIR
      each panel's queries over [START, END] as a PNG (gnuplot).
Exit 0 when all is well, 1 with one line per problem otherwise.
"""
import json
import math
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

import yaml

RATE_INTERVAL = "15s"
NAMESPACE = "signal-factory"


def die(msg):
    print(msg)
    sys.exit(1)


def promtool_config(src, out, sdfile, rules):
    cfg = yaml.safe_load(open(src))
    problems = []
    for job in cfg.get("scrape_configs", []):
        sds = job.pop("kubernetes_sd_configs", None)
        if sds is None:
            continue
        for sd in sds:
            if sd.get("role") != "pod":
                problems.append(f"{job['job_name']}: kubernetes_sd_configs role is {sd.get('role')!r}, not 'pod'")
            names = (sd.get("namespaces") or {}).get("names")
            if names != [NAMESPACE]:
                problems.append(f"{job['job_name']}: kubernetes_sd_configs namespaces {names!r}, not [{NAMESPACE!r}]")
            unknown = set(sd) - {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
            if unknown:
                problems.append(f"{job['job_name']}: kubernetes_sd_configs unknown keys {sorted(unknown)}")
        job["file_sd_configs"] = [{"files": [sdfile], "refresh_interval": "1s"}]
        # The token file is mounted from a secret in the cluster; here a
        # stand-in next to OUT, so promtool's check that it exists passes.
        auth = job.get("authorization") or {}
        if "credentials_file" in auth:
            if not auth["credentials_file"].startswith("/etc/prometheus/secrets/"):
                problems.append(f"{job['job_name']}: credentials_file {auth['credentials_file']!r} is not a mounted secret")
            token = os.path.join(os.path.dirname(os.path.abspath(out)), "metrics-token")
            with open(token, "w") as f:
                f.write("check-monitoring-stand-in\n")
            auth["credentials_file"] = token
    if not any("file_sd_configs" in j for j in cfg.get("scrape_configs", [])):
        problems.append("no scrape job uses kubernetes_sd_configs")
    cfg["rule_files"] = [rules]
    g = cfg.setdefault("global", {})
    g.update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    yaml.safe_dump(cfg, open(out, "w"), sort_keys=False)
    for p in problems:
        print(f"{src}: {p}")
    return 1 if problems else 0


# Pods as Prometheus's Kubernetes discovery (role: pod) lists them: one
# target per container port. Addresses are TEST-NET (never answer).
# expected job (None: dropped), address, labels
PODS = [
    ("sf-api", "192.0.2.1:8080", {"pod": "sf-api-1", "annotation_scrape": "true", "app": "sf-api", "port": "http"}),
    ("sf-worker", "192.0.2.2:9100", {"pod": "sf-worker-1", "label_scrape": "true", "app": "sf-worker", "port": "metrics"}),
    (None, "192.0.2.2:6060", {"pod": "sf-worker-1", "label_scrape": "true", "app": "sf-worker", "port": "pprof"}),
    ("sf-scheduler", "192.0.2.3:9100",
     {"pod": "sf-scheduler-1", "annotation_scrape": "true", "app": "sf-scheduler", "port": "metrics", "path": "/m"}),
    (None, "192.0.2.4:5432", {"pod": "postgres-0", "app": "postgres", "port": "metrics"}),
    (None, "192.0.2.5:9100", {"pod": "sf-worker-2", "annotation_scrape": "true", "app": "sf-worker",
                              "port": "metrics", "phase": "Pending"}),
    (None, "192.0.2.6:9100", {"pod": "stray-1", "annotation_scrape": "true", "port": "metrics"}),
    ("sf-worker", "192.0.2.8:9400", {"pod": "sf-worker-4", "annotation_scrape": "true", "name": "sf-worker",
                                     "port": "metrics"}),
    ("sf-api", "192.0.2.9:3000", {"pod": "sf-api-2", "annotation_scrape": "true", "name": "api-server",
                                  "app": "sf-api", "port": "http"}),
    (None, "192.0.2.7:9100", {"pod": "sf-worker-3", "annotation_scrape": "false", "app": "sf-worker", "port": "metrics"}),
]


def relabel_pods(sdfile):
    groups = []
    for _, addr, p in PODS:
        m = "__meta_kubernetes_"
        lab = {m + "namespace": NAMESPACE, m + "pod_name": p["pod"], m + "pod_phase": p.get("phase", "Running"),
               m + "pod_container_name": "main", m + "pod_container_port_name": p["port"],
               m + "pod_container_port_number": addr.split(":")[1], m + "pod_node_name": "node-1"}
        if "app" in p:
            lab[m + "pod_label_app"] = p["app"]
        if "name" in p:
            lab[m + "pod_label_app_kubernetes_io_name"] = p["name"]
        if "annotation_scrape" in p:
            lab[m + "pod_annotation_prometheus_io_scrape"] = p["annotation_scrape"]
        if "label_scrape" in p:
            lab[m + "pod_label_prometheus_io_scrape"] = p["label_scrape"]
        if "path" in p:
            lab[m + "pod_annotation_prometheus_io_path"] = p["path"]
        groups.append({"targets": [addr], "labels": lab})
    json.dump(groups, open(sdfile + ".tmp", "w"))
    os.rename(sdfile + ".tmp", sdfile)
    return 0


def get(url, params=None):
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def relabel_check(url):
    data = get(url + "/api/v1/targets", {"state": "any"})["data"]
    got = {(t["labels"].get("job"), t["labels"].get("instance"), t["scrapeUrl"]) for t in data["activeTargets"]}
    if not got and not data["droppedTargets"]:
        print("relabel: no target discovered yet")
        return 2
    want = set()
    for job, addr, p in PODS:
        if job:
            want.add((job, addr, f"http://{addr}{p.get('path', '/metrics')}"))
    problems = [f"relabel: expected target {w} is missing" for w in sorted(want - got)]
    problems += [f"relabel: unexpected target {g}" for g in sorted(got - want, key=str)]
    for t in data["activeTargets"]:
        lab = t["labels"]
        if lab.get("namespace") != NAMESPACE or not lab.get("pod"):
            problems.append(f"relabel: target {lab.get('instance')} lacks namespace/pod labels: {lab}")
    for p in problems:
        print(p)
    if not problems:
        print(f"relabel: {len(got)} targets kept as expected (jobs {sorted({g[0] for g in got})}), "
              f"{len(data['droppedTargets'])} dropped")
    return 1 if problems else 0


def live_config(targets, rules, out):
    jobs = {}
    for line in open(targets):
        parts = line.split()
        if len(parts) == 2:
            jobs.setdefault(parts[0], []).append(parts[1])
    if not jobs:
        die(f"{targets}: no '<job> <host:port>' line")
    cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
           "rule_files": [rules],
           "scrape_configs": [{"job_name": j, "static_configs": [{"targets": t}]} for j, t in sorted(jobs.items())]}
    yaml.safe_dump(cfg, open(out, "w"), sort_keys=False)
    print(" ".join(f"{j}x{len(t)}" for j, t in sorted(jobs.items())))
    return 0


def substitute(expr):
    """Grafana's variables as the live check evaluates them: all kinds, 15 s."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("${__rate_interval}", RATE_INTERVAL)
    expr = expr.replace("$__interval", RATE_INTERVAL)
    return re.sub(r"\$\{?kind\}?", ".*", expr)


def panels(dash):
    out = []
    for p in json.load(open(dash))["panels"]:
        for q in [p] + p.get("panels", []):
            if q.get("type") != "row" and q.get("targets"):
                out.append(q)
    return out


def queries(dash, rules):
    qs = []
    for p in panels(dash):
        for t in p["targets"]:
            qs.append((f"panel {p['id']} \"{p['title']}\" {t['refId']}", substitute(t["expr"])))
    for g in yaml.safe_load(open(rules))["groups"]:
        for r in g["rules"]:
            if "record" in r:
                qs.append((f"rule {r['record']}", r["expr"]))
    return qs


def evaluate(url, dash, rules, at):
    failed = nan_only = 0
    for name, expr in queries(dash, rules):
        try:
            res = get(url + "/api/v1/query", {"query": expr, "time": at})
        except Exception as e:  # an HTTP 400 carries Prometheus's error
            body = getattr(e, "read", lambda: b"")().decode(errors="replace")
            print(f"FAILED (error): {name}: {expr}: {e} {body}")
            failed += 1
            continue
        result = res["data"]["result"]
        if res.get("status") != "success":
            print(f"FAILED (error): {name}: {expr}: {res.get('error')}")
            failed += 1
        elif not result:
            print(f"FAILED (no data): {name}: {expr}")
            failed += 1
        else:
            vals = [s["value"][1] for s in result]
            if all(v == "NaN" for v in vals):
                nan_only += 1
                print(f"  note: {name}: {len(result)} series, all NaN (no observation in the window)")
            else:
                print(f"  ok: {name}: {len(result)} series")
    total = len(queries(dash, rules))
    print(f"queries: {total - failed} with data, {failed} failed ({nan_only} only NaN)")
    return 1 if failed else 0


def legend(fmt, metric):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in sorted(metric.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)


def render(url, dash, start, end, outdir):
    os.makedirs(outdir, exist_ok=True)
    step = max(1, int((float(end) - float(start)) / 300))
    made = []
    for p in panels(dash):
        base = os.path.join(outdir, f"panel-{p['id']:02d}")
        series = []
        for t in p["targets"]:
            res = get(url + "/api/v1/query_range",
                      {"query": substitute(t["expr"]), "start": start, "end": end, "step": step})
            for s in res["data"]["result"]:
                pts = [(float(ts) - float(start), float(v)) for ts, v in s["values"] if not math.isnan(float(v))]
                series.append((legend(t.get("legendFormat", ""), s["metric"]), s["metric"], pts))
        if p["type"] == "heatmap":
            script = heatmap(p, base, series)
        else:
            script = lines(p, base, series)
        if script is None:
            print(f"  {base}.png: nothing to draw ({p['title']})")
            continue
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        made.append(base + ".png")
        print(f"  {base}.png: {p['title']} ({len(series)} series)")
    return 0 if made else 1


def header(p, base):
    title = p["title"].replace('"', "'")
    unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    return (f'set terminal pngcairo size 900,420 font "sans,9"\nset output "{base}.png"\n'
            f'set title "{title}"\nset xlabel "seconds since the start of the run"\n'
            f'set ylabel "{unit}"\nset grid\nset key outside right top\n')


def lines(p, base, series):
    series = [s for s in series if s[2]]
    if not series:
        return None
    plots = []
    for i, (name, _, pts) in enumerate(series):
        with open(f"{base}-{i}.dat", "w") as f:
            f.writelines(f"{x} {y}\n" for x, y in pts)
        plots.append(f'"{base}-{i}.dat" using 1:2 with lines lw 2 title "{name.replace(chr(34), "")}"')
    return header(p, base) + "set yrange [0:*]\nplot " + ", ".join(plots) + "\n"


def heatmap(p, base, series):
    """Cumulative buckets (le) to counts per bucket, drawn as cells."""
    def le(s):
        return math.inf if s[1].get("le") == "+Inf" else float(s[1].get("le", "nan"))
    series = sorted((s for s in series if s[2]), key=le)
    if not series:
        return None
    times = sorted({x for s in series for x, _ in s[2]})
    val = [dict(s[2]) for s in series]
    with open(base + ".dat", "w") as f:
        for x in times:
            prev = 0.0
            for i, v in enumerate(val):
                c = v.get(x, 0.0)
                f.write(f"{x} {i} {max(c - prev, 0.0)}\n")
                prev = max(prev, c)
            f.write("\n")
    tics = ", ".join(f'"{s[1].get("le")}" {i}' for i, s in enumerate(series))
    return (header(p, base) + f"set ylabel \"bucket (le, {p.get('fieldConfig', {}).get('defaults', {}).get('unit', '')})\"\n"
            f"set ytics ({tics})\nset palette defined (0 'white', 1 'orange', 2 'dark-red')\n"
            f"set cblabel 'jobs'\nset view map\nunset key\n"
            f'plot "{base}.dat" using 1:2:3 with image\n')


def main(argv):
    cmds = {"promtool-config": (promtool_config, 4), "relabel-pods": (relabel_pods, 1),
            "relabel-check": (relabel_check, 1), "live-config": (live_config, 3),
            "eval": (evaluate, 4), "render": (render, 5)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        print(__doc__)
        return 2
    return cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
