#!/usr/bin/python3
"""Offline checks of deploy/: the manifests' cross-references (labels, ports, secrets, config
maps, volumes) and the worker flags they and the systemd unit pass, which must exist.
Usage: check_manifests.py DEPLOY_DIR WORKER_FLAGS_FILE EXPERIMENT_OUT"""
import os
import re
import sys

import yaml

deploy, flags_file, experiment_out = sys.argv[1:4]
known_flags = set(re.findall(r"--([a-z_]+)", open(flags_file).read()))
problems = []
docs = []
for name in sorted(os.listdir(os.path.join(deploy, "kubernetes"))):
    if name.endswith(".yaml"):
        with open(os.path.join(deploy, "kubernetes", name)) as f:
            docs += [(name, d) for d in yaml.safe_load_all(f) if d]
by_kind = {}
for name, d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

secrets = {d["metadata"]["name"] for d in by_kind.get("Secret", [])}
configmaps = {d["metadata"]["name"] for d in by_kind.get("ConfigMap", [])}
claims = {d["metadata"]["name"] for d in by_kind.get("PersistentVolumeClaim", [])}


def check_pod(where, spec):
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for v in volumes.values():
        if "secret" in v and v["secret"]["secretName"] not in secrets:
            problems.append(f"{where}: volume {v['name']} uses undefined secret {v['secret']['secretName']}")
        if "configMap" in v and v["configMap"]["name"] not in configmaps:
            problems.append(f"{where}: volume {v['name']} uses undefined config map {v['configMap']['name']}")
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in claims:
            problems.append(f"{where}: volume {v['name']} uses undefined claim")
    for c in spec["containers"]:
        if not c.get("image"):
            problems.append(f"{where}: container {c['name']} has no image")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"{where}: mount {m['name']} has no volume")
        for a in c.get("args", []):
            for flag in re.findall(r"--([a-z_]+)", a):
                if flag not in known_flags and "search" not in a:
                    problems.append(f"{where}: unknown worker flag --{flag}")


for d in by_kind.get("Deployment", []):
    spec = d["spec"]
    labels = spec["template"]["metadata"]["labels"]
    for k, v in spec["selector"]["matchLabels"].items():
        if labels.get(k) != v:
            problems.append(f"Deployment {d['metadata']['name']}: selector {k}={v} does not match the pod labels")
    if not isinstance(spec["replicas"], int) or spec["replicas"] < 1:
        problems.append("Deployment: replicas must be a positive integer")
    check_pod(f"Deployment {d['metadata']['name']}", spec["template"]["spec"])
    # The kubelet's gRPC probes speak plaintext only: with TLS on the main port they must
    # target the plaintext health-only listener (--health_listen).
    for c in spec["template"]["spec"]["containers"]:
        args = " ".join(c.get("args", []))
        main = re.search(r"--listen=\S*:(\d+)", args)
        health = re.search(r"--health_listen=\S*:(\d+)", args)
        named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for kind in ("readinessProbe", "livenessProbe"):
            probe = c.get(kind, {}).get("grpc")
            if probe is None:
                continue
            port = named.get(probe["port"], probe["port"])
            if "--tls_cert" in args and (not health or int(health.group(1)) != port):
                problems.append(f"{c['name']}: {kind} uses gRPC on port {port}, but the worker serves TLS there; "
                                "point it at --health_listen")
            elif not (main and int(main.group(1)) == port) and not (health and int(health.group(1)) == port):
                problems.append(f"{c['name']}: {kind} port {port} is not a port the worker listens on")
    ports = {p["name"] for c in spec["template"]["spec"]["containers"] for p in c.get("ports", [])}
    for s in by_kind.get("Service", []):
        if s["spec"].get("clusterIP") != "None":
            problems.append(f"Service {s['metadata']['name']}: must be headless (clusterIP: None) for dns:/// targets")
        if any(labels.get(k) != v for k, v in s["spec"]["selector"].items()):
            problems.append(f"Service {s['metadata']['name']}: selector matches no worker pod")
        for p in s["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                problems.append(f"Service {s['metadata']['name']}: target port {p['targetPort']} is not a container port")
for d in by_kind.get("Job", []):
    if d["spec"]["template"]["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("Job: restartPolicy must be Never or OnFailure")
    check_pod(f"Job {d['metadata']['name']}", d["spec"]["template"]["spec"])
# The experiment the search job runs, for the caller to validate with `search --validate_only`.
cm = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == "fecsearch-experiment"]
if not cm:
    problems.append("no fecsearch-experiment config map")
else:
    with open(experiment_out, "w") as f:
        f.write(cm[0]["data"]["experiment.textproto"])
unit = open(os.path.join(deploy, "systemd", "fecsearch-worker.service")).read()
exec_start = re.search(r"^ExecStart=(.*(?:\\\n.*)*)", unit, re.M)
if not exec_start:
    problems.append("systemd unit: no ExecStart")
for flag in re.findall(r"--([a-z_]+)", exec_start.group(1) if exec_start else ""):
    if flag not in known_flags:
        problems.append(f"systemd unit: unknown worker flag --{flag}")
for p in problems:
    print("PROBLEM:", p)
print(f"{len(docs)} manifests checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
