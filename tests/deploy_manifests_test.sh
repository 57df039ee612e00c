#!/usr/bin/env bash
# deploy/ validated offline: `kubectl create --dry-run=client` over every manifest (kind and
# schema decoding, against a stub of the API server's discovery endpoints, since no cluster
# runs here), the manifests' cross-references and flags, and the search job's experiment.
set -uo pipefail
ROOT=$PWD
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/deploy.XXXXXX")
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
KUBECTL=$(command -v kubectl || true)
[ -n "$KUBECTL" ] || { echo "FAIL: kubectl is not installed (tools/setup.sh installs kubernetes-client)"; exit 1; }

/usr/bin/python3 "$ROOT/tests/kube_discovery_stub.py" "$WORK/port" &
stub=$!
trap 'kill $stub 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
cat > "$WORK/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: stub, cluster: {server: "http://127.0.0.1:$(cat "$WORK/port")"}}]
contexts: [{name: stub, context: {cluster: stub, namespace: default}}]
current-context: stub
users: []
KC
export KUBECONFIG="$WORK/kubeconfig" HOME="$WORK"
out=$("$KUBECTL" create --dry-run=client --validate=false -f "$ROOT/deploy/kubernetes/" -o name 2>&1) || fail "kubectl: $out"
echo "$out"
for want in deployment.apps/fecsearch-worker service/fecsearch-workers job.batch/fecsearch-search \
            configmap/fecsearch-experiment persistentvolumeclaim/fecsearch-state secret/fecsearch-token pod/fecsearch-results; do
  grep -q "^$want\$" <<<"$out" || fail "kubectl did not produce $want"
done
# Client dry-run without the server's OpenAPI schema decodes kinds, not field types: the
# structural checks below cover those. A manifest kubectl cannot map is refused.
printf 'apiVersion: apps/v1\nkind: Deploymant\nmetadata: {name: x}\n' > "$WORK/bad.yaml"
"$KUBECTL" create --dry-run=client --validate=false -f "$WORK/bad.yaml" -o name >/dev/null 2>&1 && fail "kubectl accepted an unknown kind"

"$ROOT/workers/worker" --helpfull > "$WORK/flags.txt" 2>&1
/usr/bin/python3 "$ROOT/tests/check_manifests.py" "$ROOT/deploy" "$WORK/flags.txt" "$WORK/experiment.textproto" || fail "manifest checks"
# The checks can fail: a copy with a broken selector, a wrong type and an unknown flag.
cp -r "$ROOT/deploy" "$WORK/broken"
sed -i 's/replicas: 8/replicas: "eight"/; s/--capacity=2/--capacty=2/; s/grpc: {port: 8081}/grpc: {port: 50051}/' "$WORK/broken/kubernetes/worker-deployment.yaml"
sed -i 's/selector: {app: fecsearch-worker}/selector: {app: something-else}/' "$WORK/broken/kubernetes/worker-service.yaml"
/usr/bin/python3 "$ROOT/tests/check_manifests.py" "$WORK/broken" "$WORK/flags.txt" "$WORK/x.textproto" > "$WORK/broken.out" 2>&1 \
  && fail "the checks accepted broken manifests"
for want in "replicas must be a positive integer" "unknown worker flag --capacty" "selector matches no worker pod" \
            "the worker serves TLS there"; do
  grep -q "$want" "$WORK/broken.out" || fail "broken manifests: no '$want' in $(cat "$WORK/broken.out")"
done
(cd "$ROOT" && "$ROOT/search/search" --experiment="$WORK/experiment.textproto" --validate_only) || fail "the search job's experiment is invalid"
echo "$fails failures"
[ "$fails" -eq 0 ]
