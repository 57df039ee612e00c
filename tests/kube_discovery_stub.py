#!/usr/bin/python3
"""A stand-in for a Kubernetes API server's discovery endpoints, so that
`kubectl create --dry-run=client` can map kinds to resources with no cluster (nothing is
created: client dry-run never writes). Serves only what the manifests in deploy/ use.
Usage: kube_discovery_stub.py PORT_FILE"""
import http.server
import json
import sys

CORE = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": n, "singularName": s, "namespaced": True, "kind": k, "verbs": ["create", "get", "list"]}
    for n, s, k in [("services", "service", "Service"), ("configmaps", "configmap", "ConfigMap"),
                    ("secrets", "secret", "Secret"), ("persistentvolumeclaims", "persistentvolumeclaim",
                                                       "PersistentVolumeClaim"), ("pods", "pod", "Pod")]]}
GROUPS = {"apps": ("v1", [("deployments", "deployment", "Deployment")]),
          "batch": ("v1", [("jobs", "job", "Job")])}


def payload(path):
    path = path.split("?")[0]
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/api/v1":
        return CORE
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, (v, _) in GROUPS.items()]}
    for g, (v, resources) in GROUPS.items():
        if path == f"/apis/{g}/{v}":
            return {"kind": "APIResourceList", "groupVersion": f"{g}/{v}", "resources": [
                {"name": n, "singularName": s, "namespaced": True, "kind": k, "verbs": ["create", "get", "list"]}
                for n, s, k in resources]}
    if path == "/version":
        return {"major": "1", "minor": "28", "gitVersion": "v1.28.0-stub"}
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = payload(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
